"""How a step's rows reach the database in groups (design §6: writes are grouped).

- `ClaimGroup`: rows are claimed by the worker threads that are about to run them, but
  the claims of all threads waiting at one moment go out as one bulk write (the first
  waiting thread writes for everybody queued behind it: a group commit). Each row keeps
  its own compare-and-set. Before each bulk the batch's status and cost are read, so that
  no row starts once a cancel has switched the batch off or its cost has reached its
  budget (the budget then stops the batch: BUDGET_EXCEEDED).
- `Progress`: the rows that ended in this step and are not recorded yet.
- `record_finished`: one flush: the conversations' chats, the interactions, then the
  rows' outcomes (each by compare-and-set on its claim), as three bulk writes. What the
  rows that ended spent (tokens, cost) is added up for the same flush's counter write.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bson import ObjectId

from lib.models import BatchItem, BatchStatus
from lib.store.batches import BatchStore
from lib.store.chats import ChatStore

# A chat's interactions, oldest first, as a conversation's previous turn left them (None: unknown).
Turns = tuple[dict[str, Any], ...] | None


@dataclass(frozen=True)
class EngineConfig:
    max_attempts: int
    step_budget_seconds: float
    function_max_duration: float
    lease_seconds: int
    concurrency_cap: int = 32


@dataclass
class StepOutcome:
    batch_id: str
    action: str  # "ran", "finalised", "settling", "lease-busy", "nothing-to-do"
    seq: int = 0
    rows_succeeded: int = 0
    rows_failed: int = 0
    rows_retry_later: int = 0


@dataclass
class Finished:
    """A row that ended in this step: the fields of its outcome, and what else to write with it."""

    item: BatchItem
    fields: dict[str, Any]
    interaction: dict[str, Any] | None = None  # to insert (None: failed, or the answer existed already)
    new_chat: bool = False  # the conversation's first turn: its chat is recorded with it


@dataclass
class Progress:
    """Rows ended but not recorded yet, and the step's stop switch (cancel or deadline)."""

    finished: list[Finished] = field(default_factory=list)
    last_flush: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    stop_reason: str | None = None  # why claiming stopped when it is not a cancel: BUDGET_EXCEEDED

    def add(self, row: Finished) -> None:
        with self.lock:
            self.finished.append(row)

    def due(self, rows: int, seconds: float) -> bool:
        with self.lock:
            return len(self.finished) >= rows or (bool(self.finished) and time.monotonic() - self.last_flush >= seconds)

    def unflushed_usd(self) -> float:
        """What the rows ended and not recorded yet cost."""
        with self.lock:
            return sum(float((f.fields.get("cost") or {}).get("usd") or 0) for f in self.finished)

    def take(self) -> list[Finished]:
        with self.lock:
            taken, self.finished = self.finished, []
            self.last_flush = time.monotonic()
            return taken


def record_finished(batches: BatchStore, chats: ChatStore, finished: list[Finished], claim_id: str,
                    owner_id: str, now: datetime) -> dict[str, int]:
    """Write one flush's rows in bulk; how many rows ended, by status (those this claim still held).

    Also `inputTokens`, `outputTokens` and `costMicroUsd`: what those rows spent, every
    model call counted (the row's `cost`), for the batch's counters.

    Chats and interactions go first: a row is `succeeded` only once its answer is stored.
    An interaction written for a row whose claim was lost meanwhile is the one a re-run
    of that row finds and returns (its id is fixed at upload), so it is never a second one.
    """
    if not finished:
        return {}
    chats.ensure_chats({f.fields["chatId"]: owner_id for f in finished if f.new_chat}, now)
    chats.insert_interactions([f.interaction for f in finished if f.interaction is not None])
    ended = batches.finish_many([(f.item.id, f.fields) for f in finished], claim_id)
    counts: dict[str, int] = {}
    for f in finished:
        if f.item.id in ended:
            counts[f.fields["status"]] = counts.get(f.fields["status"], 0) + 1
            cost = f.fields.get("cost") or {}
            for key, value in (("inputTokens", cost.get("inputTokens")), ("outputTokens", cost.get("outputTokens")),
                               ("costMicroUsd", round(float(cost.get("usd") or 0) * 1_000_000))):
                if value:
                    counts[key] = counts.get(key, 0) + int(value)
    return counts


@dataclass
class _ClaimRequest:
    item: BatchItem
    done: bool = False
    claimed: bool = False
    error: BaseException | None = None


class ClaimGroup:
    """Claims of rows by many threads, written together (see the module's docstring)."""

    def __init__(self, batches: BatchStore, batch_id: ObjectId, claim_id: str, lease_until: datetime,
                 now: Callable[[], datetime], progress: Progress, *, with_references: bool = False):
        self.batches = batches
        self.batch_id = batch_id
        self.claim_id = claim_id
        self.lease_until = lease_until
        self.now = now
        self.progress = progress
        self._cond = threading.Condition()
        self._queue: list[_ClaimRequest] = []
        self._writing = False
        self.bulk_writes = 0
        # The analyzers' references of the rows claimed, read with each bulk (one read, not one a row).
        self.with_references = with_references
        self.references: dict[str, dict[str, Any]] = {}

    def claim(self, item: BatchItem) -> bool:
        """`pending -> processing` for this step; False if the row is not pending or the batch was stopped."""
        request = _ClaimRequest(item)
        with self._cond:
            self._queue.append(request)
            while not request.done and self._writing:
                self._cond.wait()
            if not request.done:
                self._writing = True
                group, self._queue = self._queue, []
        if not request.done:
            self._write(group)
        if request.error is not None:
            raise request.error
        return request.claimed

    def _write(self, group: list[_ClaimRequest]) -> None:
        claimed: set[str] = set()
        error: BaseException | None = None
        try:
            started = self.now()  # before the status read: a row claimed here started before any later cancel
            status, cost, budget = (None, 0.0, None) if self.progress.stop.is_set() else \
                self.batches.claim_gate(self.batch_id)
            # What this step's rows spent and are not flushed yet counts too (rows in flight cannot be
            # known: the budget may be passed by at most what they cost).
            over_budget = budget is not None and cost + self.progress.unflushed_usd() >= budget
            if status == BatchStatus.PROCESSING and over_budget:
                self.progress.stop_reason = "BUDGET_EXCEEDED"
                self.batches.stop_for_budget(self.batch_id, started)
            if status != BatchStatus.PROCESSING or over_budget:
                self.progress.stop.set()
            else:
                claimed = self.batches.claim_many([r.item.id for r in group], self.claim_id, started,
                                                  self.lease_until)
                self.bulk_writes += 1
                if self.with_references and claimed:
                    self.references.update(self.batches.references_of(sorted(claimed)))
        except BaseException as exc:  # handed to every waiting thread, each raises it
            error = exc
        with self._cond:
            for r in group:
                r.done, r.claimed, r.error = True, r.item.id in claimed, error
            self._writing = False
            self._cond.notify_all()
