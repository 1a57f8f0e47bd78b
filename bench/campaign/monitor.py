"""Watches the campaign's batches while they run, from MongoDB and the QStash dev server.

Twice a second it reads each unfinished batch by `_id` and the dev server's pending
messages, and keeps:
- progress: rows finished (succeeded + failed) across all batches, so that the time
  from a process fault to the next row finished can be measured (time to recovery);
- stretches with no live step: a batch active (queued or processing) with neither a
  live lease nor a step message waiting in the queue. Only the sweep can restart such a
  batch; a stretch longer than the sweep's period allows is a violation. Time while a
  process fault is in effect does not count: nothing can run then.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import requests
from bson import ObjectId
from pymongo.database import Database
from pymongo.errors import PyMongoError

ACTIVE = ("queued", "processing")
FINAL = ("processed", "completed_with_errors", "cancelled", "failed")
_FIELDS = {"status": 1, "processedItems": 1, "failedItems": 1, "totalItems": 1, "leaseUntil": 1}


@dataclass
class FaultEvent:
    """One process fault and the recovery from it (monotonic seconds)."""

    kind: str
    started: float
    active_batches: int
    back: float | None = None  # the process was running again
    progressed: float | None = None  # the first row finished after that

    @property
    def recovery_seconds(self) -> float | None:
        return None if self.progressed is None else self.progressed - self.started


@dataclass
class Stretch:
    batch_id: str
    seconds: float


@dataclass
class _Seen:
    status: str = "queued"
    done: int = 0
    quiet_since: float | None = None  # when it was first seen with no live step


@dataclass
class Monitor:
    db: Database
    qstash_url: str
    no_live_step_limit: float
    poll_seconds: float = 0.5
    events: list[FaultEvent] = field(default_factory=list)
    violations: list[Stretch] = field(default_factory=list)
    longest_quiet: Stretch = field(default_factory=lambda: Stretch("", 0.0))
    polls_failed: int = 0

    def __post_init__(self) -> None:
        self._batches: dict[str, _Seen] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._fault_on = False
        self._fault_ended = 0.0
        self._thread = threading.Thread(target=self._loop, name="campaign-monitor", daemon=True)

    # --- what other threads call -----------------------------------------------------

    def start(self) -> Monitor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def track(self, batch_id: str) -> None:
        with self._lock:
            self._batches.setdefault(batch_id, _Seen())

    def status(self, batch_id: str) -> str | None:
        with self._lock:
            seen = self._batches.get(batch_id)
            return seen.status if seen else None

    def active_count(self) -> int:
        with self._lock:
            return sum(1 for s in self._batches.values() if s.status in ACTIVE)

    def all_final(self) -> bool:
        with self._lock:
            return all(s.status in FINAL for s in self._batches.values())

    def fault_started(self, kind: str) -> FaultEvent:
        event = FaultEvent(kind, time.monotonic(), self.active_count())
        with self._lock:
            self._fault_on = True
            self.events.append(event)
        return event

    def fault_ended(self, event: FaultEvent) -> None:
        with self._lock:
            event.back = time.monotonic()
            self._fault_on = False
            self._fault_ended = event.back

    # --- the loop ----------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.poll()
            except PyMongoError:
                self.polls_failed += 1  # the database is down: nothing to see
            except Exception:  # a monitor bug must not end the campaign; it shows in the report
                self.polls_failed += 1

    def poll(self) -> None:
        with self._lock:
            watching = [bid for bid, seen in self._batches.items() if seen.status not in FINAL]
        docs = {bid: self.db.batches.find_one({"_id": ObjectId(bid)}, _FIELDS) for bid in watching}
        queued = self._batches_with_queued_steps()
        now, utc_now = time.monotonic(), datetime.now(timezone.utc)
        with self._lock:
            progressed = False
            for bid, doc in docs.items():
                if doc is not None:
                    progressed |= self._observe(bid, doc, queued, now, utc_now)
            if progressed:
                for event in self.events:
                    if event.back is not None and event.progressed is None:
                        event.progressed = now

    def _observe(self, bid: str, doc: dict[str, Any], queued: set[str] | None, now: float,
                 utc_now: datetime) -> bool:
        """Take in one batch's state; True if it made progress (rows finished, or it ended)."""
        seen = self._batches[bid]
        done = doc.get("processedItems", 0) + doc.get("failedItems", 0)
        progressed = done > seen.done or (doc["status"] in FINAL and seen.status not in FINAL)
        seen.status, seen.done = doc["status"], max(seen.done, done)
        lease = doc.get("leaseUntil")
        live = (lease is not None and lease > utc_now) or queued is None or bid in queued
        if seen.status not in ACTIVE or live or self._fault_on:
            seen.quiet_since = None
            return progressed
        if seen.quiet_since is None:
            seen.quiet_since = now
        stretch = Stretch(bid, now - max(seen.quiet_since, self._fault_ended))
        if stretch.seconds > self.longest_quiet.seconds:
            self.longest_quiet = stretch
        if stretch.seconds > self.no_live_step_limit:
            self.violations = [v for v in self.violations if v.batch_id != bid or v.seconds > stretch.seconds]
            if all(v.batch_id != bid for v in self.violations):
                self.violations.append(stretch)
        return progressed

    def _batches_with_queued_steps(self) -> set[str] | None:
        """Batch ids of step messages the dev server still has to deliver (None if it would not say)."""
        try:
            messages = requests.get(f"{self.qstash_url}/__dev/messages", params={"status": "pending"},
                                    timeout=5).json()
        except (requests.RequestException, ValueError):
            return None
        ids = set()
        for message in messages:
            try:
                ids.add(json.loads(message["body"])["batchId"])
            except (ValueError, KeyError, TypeError):
                continue
        return ids
