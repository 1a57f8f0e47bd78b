"""The benchmarks' stack: SecantusDB (child process), the route files served in this process
over real HTTP, the QStash dev server delivering signed steps, a provider stub, and a
pymongo CommandListener that counts the app's database round trips.

Counting: pymongo's listener is process-wide, so it sees the app's client and the
benchmark's own. The benchmark reads batch state through its own client inside
`CommandCounter.uncounted()` (a per-thread switch), so what is counted is exactly what
the app did: the create request, every step, and nothing of the benchmark's polling.

Restarts: SecantusDB keeps the reply of every retryable write for 30 minutes (up to
10,000) and walks that whole table on each write, under one lock, so its write latency
climbs with the writes of the last half hour (alone: 0.4 -> 2.7 ms an update after 12,000;
under a batch at concurrency 16: 3 -> 30 ms). mongod has no such cost. `run()` therefore
restarts the database (same port, same data) before a measured batch once the app has
written more than RESTART_AFTER_WRITES times since the last restart, unless told not to.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Self

from pymongo import MongoClient, monitoring

from tests.support.database import DatabaseServer

# Handshakes, heartbeats, index creation and session cleanup are not the app's work per row.
IGNORED_COMMANDS = frozenset({"hello", "ismaster", "isMaster", "ping", "endSessions", "createIndexes", "buildInfo"})
FINAL = ("processed", "completed_with_errors", "cancelled", "failed")
BENCH_EMAIL = "bench@example.gc.ca"
WRITE_COMMANDS = frozenset({"insert", "update", "delete", "findAndModify"})
RESTART_AFTER_WRITES = 2000


class CommandCounter(monitoring.CommandListener):
    """Counts database commands started in this process, except on threads inside `uncounted()`.

    It also adds up how long each (command, collection) took, to say where a run's
    database time went.
    """

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.calls: Counter[tuple[str, str]] = Counter()
        self.millis: Counter[tuple[str, str]] = Counter()
        self._started: dict[tuple[Any, int], tuple[str, str]] = {}
        self._lock = threading.Lock()
        self._local = threading.local()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if getattr(self._local, "paused", False) or event.command_name in IGNORED_COMMANDS:
            return
        target = event.command.get(event.command_name)
        key = (event.command_name, target if isinstance(target, str) else str(event.command.get("collection", "?")))
        with self._lock:
            self.counts[event.command_name] += 1
            self.calls[key] += 1
            self._started[(event.connection_id, event.request_id)] = key

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self._finished(event)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._finished(event)

    def _finished(self, event: monitoring.CommandSucceededEvent | monitoring.CommandFailedEvent) -> None:
        with self._lock:
            key = self._started.pop((event.connection_id, event.request_id), None)
            if key is not None:
                self.millis[key] += event.duration_micros / 1000

    def snapshot(self) -> tuple[Counter[str], Counter[tuple[str, str]], Counter[tuple[str, str]]]:
        """Commands by name, calls and milliseconds by (command, collection), so far."""
        with self._lock:
            return Counter(self.counts), Counter(self.calls), Counter(self.millis)

    def total(self) -> int:
        with self._lock:
            return sum(self.counts.values())

    @contextmanager
    def uncounted(self) -> Iterator[None]:
        """Commands this thread starts inside the block are the benchmark's own: not counted."""
        self._local.paused = True
        try:
            yield
        finally:
            self._local.paused = False


@dataclass(frozen=True)
class Upload:
    content: bytes
    concurrency: int
    name: str = "bench"
    filename: str = "questions.csv"
    trials: int = 1  # an evaluation run: each question this many times, each trial its own items
    analyzers: str = ""  # comma list, run inside each row's claim

    def fields(self) -> dict[str, Any]:
        """The create form's evaluation fields (none for a plain batch)."""
        return {**({"trials": self.trials} if self.trials > 1 else {}),
                **({"analyzers": self.analyzers} if self.analyzers else {})}


@dataclass
class BatchRun:
    """What one run (one batch, or several started together) measured."""

    batch_ids: list[str]
    rows: int
    makespan: float  # first create request sent -> last batch's completedAt
    create_seconds: float  # time to the 202 of the (last) create request
    statuses: list[str]
    processed: int
    failed: int
    cancelled: int
    steps: int  # lease holders (stepSeq), summed over the batches
    published: int  # QStash messages published during the run
    deliveries: int
    db_commands: int
    db_by_name: Counter[str] = field(default_factory=Counter)
    db_calls: Counter[tuple[str, str]] = field(default_factory=Counter)  # by (command, collection)
    db_millis: Counter[tuple[str, str]] = field(default_factory=Counter)  # time the app waited, summed
    stub_requests: int = 0
    stub_by_stage: Counter[str] = field(default_factory=Counter)  # AI calls by pipeline stage or judge
    stub_max_in_flight: int = 0
    stub_rate_limited: int = 0  # 429s the stub answered
    stub_max_in_window: int | None = None  # most accepted calls in one RPM window
    queue_pending_after: int = 0  # messages still scheduled (e.g. delayed watchdogs) at the end
    other_cores: float | None = None  # CPU used by processes outside the benchmark during the run
    errors: Counter[str] = field(default_factory=Counter)  # error codes of failed rows

    @property
    def batches(self) -> int:
        return len(self.batch_ids)

    @property
    def judge_requests(self) -> int:
        """AI calls the analyzers' judges made (stage `analyzer.<name>`)."""
        return sum(n for stage, n in self.stub_by_stage.items() if stage.startswith("analyzer."))

    @property
    def db_per_row(self) -> float:
        return self.db_commands / max(1, self.rows)

    def slowest_commands(self, count: int = 2) -> list[tuple[str, str, int, float]]:
        """(command, collection, calls, mean ms) of the commands that took the most time in all."""
        return [(name, collection, self.db_calls[(name, collection)], ms / max(1, self.db_calls[(name, collection)]))
                for (name, collection), ms in self.db_millis.most_common(count)]


# SecantusDB as a child process, restartable on the same port with the same data.
SecantusProcess = DatabaseServer


class CpuMeter:
    """CPU used on the machine by processes other than the benchmark's own (Linux /proc)."""

    def __init__(self, pids: Callable[[], list[int]]):
        self.pids = pids
        self.tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def sample(self) -> tuple[float, int, int] | None:
        try:
            with open("/proc/stat") as stat:
                fields = [int(v) for v in stat.readline().split()[1:]]
            busy = sum(fields) - fields[3] - fields[4]  # all but idle and iowait
            mine = 0
            for pid in self.pids():
                with open(f"/proc/{pid}/stat") as proc:
                    values = proc.read().rsplit(")", 1)[1].split()
                mine += int(values[11]) + int(values[12])  # utime, stime
            return time.monotonic(), busy, mine
        except (OSError, ValueError, IndexError):
            return None

    def other_cores(self, before: tuple[float, int, int] | None) -> float | None:
        after = self.sample()
        if before is None or after is None or after[0] <= before[0]:
            return None
        other = (after[1] - before[1]) - (after[2] - before[2])
        return max(0.0, other / self.tick / (after[0] - before[0]))


class BenchStack:
    """Start with `start()`, point the app at settings with `configure(env)`, measure with `run()`."""

    def __init__(self, base_env: dict[str, str] | None = None, *, restart_db: bool = True):
        self.restart_db = restart_db
        self.restarts = 0
        self._writes_at_restart = 0
        self.counter = CommandCounter()
        monitoring.register(self.counter)  # before any client exists, so every client reports to it
        self.base_env = base_env or {}
        self.scratch = Path(tempfile.mkdtemp(prefix="bench-"))
        self.database: Any = None
        self.app: Any = None
        self.stub: Any = None
        self.observer: MongoClient | None = None
        self.db_name = f"bench_{uuid.uuid4().hex[:8]}"
        self.secret = "bench-secret-" + "x" * 32
        self.env: dict[str, str] = {}
        self.current_overrides: dict[str, str] = {}

    def start(self) -> BenchStack:
        from bench.stub_process import StubProcess
        from tests.support.live_app import LiveApp

        self.database = SecantusProcess(os.environ.get("MONGODB_URI"), self.scratch)
        with self.counter.uncounted():
            self.database.start()
        self.app = LiveApp().start()
        self.stub = StubProcess().start()
        self.observer = MongoClient(self.database.uri, tz_aware=True)
        self.cpu = CpuMeter(lambda: [os.getpid()] + [p for p in (self._db_pid(), self.stub.pid) if p])
        self.env = {
            "MONGODB_URI": self.database.uri, "MONGODB_DB": self.db_name, "JWT_SECRET": self.secret,
            **self.app.env(), **self.stub.env(), "LOG_LEVEL": "WARNING", **self.base_env,
        }
        self.configure({})
        return self

    def _db_pid(self) -> int | None:
        process = getattr(self.database, "process", None)
        return process.pid if process is not None else None

    def restart_database(self) -> None:
        """Restart SecantusDB on the same port and data, and let every client reconnect (uncounted)."""
        from pymongo.errors import PyMongoError

        from lib.services import get_services

        self.restarts += 1
        self._writes_at_restart = self._writes()
        with self.counter.uncounted():
            self.database.restart()
            deadline = time.monotonic() + 30
            for client in (get_services().store.client, self.observer):
                while True:
                    try:
                        client.admin.command("ping")
                        break
                    except PyMongoError:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.1)

    def _writes(self) -> int:
        names, _, _ = self.counter.snapshot()
        return sum(n for name, n in names.items() if name in WRITE_COMMANDS)

    def stop(self) -> None:
        if self.stub is not None:
            self.stub.stop()
        if self.app is not None:
            self.app.stop()
        if self.observer is not None:
            with self.counter.uncounted():
                self.observer.close()
        if self.database is not None:
            self.database.stop()
        shutil.rmtree(self.scratch, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def configure(self, overrides: dict[str, str]) -> None:
        """Rebuild the app's services from the base environment plus `overrides` (new gates too)."""
        from lib.auth import issue_token
        from lib.models import Role
        from lib.services import get_services, reset_services

        for name in set(self.current_overrides) - set(overrides):
            os.environ.pop(name, None)
        os.environ.update({**self.env, **overrides})
        self.current_overrides = dict(overrides)
        reset_services()
        services = get_services()
        user = services.users.upsert(BENCH_EMAIL, Role.PARTNER)
        self.user_id = user.id
        self.app.tokens["partner"] = issue_token(user.id, self.secret)

    @property
    def settings(self) -> Any:
        from lib.services import get_services

        return get_services().settings

    def gate_stats(self, provider: str = "openai") -> Any:
        from lib.providers.registry import shared_gate

        return shared_gate(provider, self.settings).stats

    def batch_doc(self, batch_id: str, projection: dict[str, int] | None = None) -> dict[str, Any] | None:
        from bson import ObjectId

        assert self.observer is not None
        with self.counter.uncounted():
            return self.observer[self.db_name].batches.find_one({"_id": ObjectId(batch_id)}, projection)

    def failed_codes(self, batch_id: str) -> Counter[str]:
        from bson import ObjectId

        assert self.observer is not None
        with self.counter.uncounted():
            docs = self.observer[self.db_name].batch_items.find(
                {"batchId": ObjectId(batch_id), "status": "failed"}, {"error": 1})
            return Counter((d.get("error") or {}).get("code", "?") for d in docs)

    def run(self, uploads: Sequence[Upload], *, latency: float, rpm: int | None = None, window: float = 60.0,
            answer_chars: int = 0, ai: str = "openai", search: str = "offline", timeout: float = 3600) -> BatchRun:
        """Create the batches back to back, wait until every one is final, and measure.

        The stub answers AI calls after `latency` s, with 429 beyond `rpm` calls per `window` s.
        """
        qstash = self.app.qstash
        if self.restart_db and self._writes() - self._writes_at_restart > RESTART_AFTER_WRITES:
            self.restart_database()
        self.stub.configure(latency, rpm=rpm, window=window, answer_chars=answer_chars)
        cpu_before = self.cpu.sample()
        queue_before = qstash.stats()
        names_before, calls_before, millis_before = self.counter.snapshot()
        started = time.time()
        batch_ids: list[str] = []
        rows = 0
        create_seconds = 0.0
        for upload in uploads:
            sent = time.perf_counter()
            response = self.app.upload("partner", upload.content, filename=upload.filename, batchName=upload.name,
                                       aiProvider=ai, searchProvider=search, concurrency=upload.concurrency,
                                       **upload.fields())
            create_seconds = time.perf_counter() - sent
            if response.status_code != 202:
                raise RuntimeError(f"create answered {response.status_code}: {response.text[:300]}")
            body = response.json()
            batch_ids.append(body["batchId"])
            rows += body["totalItems"]
        docs = self._wait_final(batch_ids, timeout)
        pending = self._wait_queue_idle(qstash, seconds=3.0)
        names_after, calls_after, millis_after = self.counter.snapshot()
        commands = names_after - names_before
        queue_after = qstash.stats()
        stub = self.stub.stats()
        other_cores = self.cpu.other_cores(cpu_before)
        completed = [d["completedAt"] for d in docs]
        errors: Counter[str] = Counter()
        for batch_id, doc in zip(batch_ids, docs):
            if doc.get("failedItems"):
                errors += self.failed_codes(batch_id)
        return BatchRun(
            batch_ids=batch_ids,
            rows=rows,
            makespan=max(_epoch(c) for c in completed) - started,
            create_seconds=create_seconds,
            statuses=[d["status"] for d in docs],
            processed=sum(d.get("processedItems", 0) for d in docs),
            failed=sum(d.get("failedItems", 0) for d in docs),
            cancelled=sum(d.get("cancelledItems", 0) for d in docs),
            steps=sum(d.get("stepSeq", 0) for d in docs),
            published=queue_after["published"] - queue_before["published"],
            deliveries=queue_after["deliveryAttempts"] - queue_before["deliveryAttempts"],
            db_commands=sum(commands.values()),
            db_by_name=commands,
            db_calls=calls_after - calls_before,
            db_millis=millis_after - millis_before,
            stub_requests=stub["requests"],
            stub_by_stage=Counter(stub.get("byStage") or {}),
            stub_max_in_flight=stub["maxInFlight"],
            stub_rate_limited=stub["rateLimited"],
            stub_max_in_window=stub["maxInWindow"],
            queue_pending_after=pending,
            errors=errors,
            other_cores=other_cores,
        )

    def seed_finished_batch(self, content: bytes, answer_chars: int) -> tuple[str, int]:
        """A finished batch for export measurements, without running every row through a provider.

        The file goes through the real create endpoint (real item documents) while the queue
        holds its step; every row then gets what a successful step writes (status, an answer
        of `answer_chars` characters that differs from row to row, citation, model, tokens,
        timing), and the batch is marked processed. The held step, once released, finds a
        finished batch and does nothing.
        """
        from bson import ObjectId
        from pymongo import UpdateOne

        from lib.services import get_services

        qstash = self.app.qstash
        qstash.set_faults({"paused": True})
        try:
            response = self.app.upload("partner", content, batchName="export", aiProvider="openai",
                                       searchProvider="offline")
            if response.status_code != 202:
                raise RuntimeError(f"create answered {response.status_code}: {response.text[:300]}")
            batch_id, rows = response.json()["batchId"], response.json()["totalItems"]
            now = get_services().now()
            assert self.observer is not None
            db = self.observer[self.db_name]
            with self.counter.uncounted():
                items = list(db.batch_items.find({"batchId": ObjectId(batch_id)}, {"rowIndex": 1}))
                for start in range(0, len(items), 1000):
                    db.batch_items.bulk_write([
                        UpdateOne({"_id": item["_id"]}, {"$set": {
                            "status": "succeeded", "attempts": 1, "answer": answer_text(item["rowIndex"], answer_chars),
                            "citationUrl": "https://www.canada.ca/en/services/benefits.html", "model": "stub-model",
                            "tokens": {"input": 900, "output": answer_chars // 5},
                            "responseTimeMs": 1200 + item["rowIndex"] % 800,
                            "finishedAt": now, "error": None, "leaseUntil": None,
                        }})
                        for item in items[start : start + 1000]
                    ], ordered=False)
                db.batches.update_one({"_id": ObjectId(batch_id)}, {"$set": {
                    "status": "processed", "processedItems": rows, "startedAt": now, "completedAt": now,
                }})
        finally:
            qstash.set_faults({"paused": False})
        return batch_id, rows

    def _wait_final(self, batch_ids: list[str], timeout: float) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        projection = {"status": 1, "completedAt": 1, "stepSeq": 1, "processedItems": 1, "failedItems": 1,
                      "cancelledItems": 1, "totalItems": 1}
        while True:
            docs = [self.batch_doc(b, projection) or {} for b in batch_ids]
            if all(d.get("status") in FINAL and d.get("completedAt") for d in docs):
                return docs
            if time.monotonic() > deadline:
                raise TimeoutError(f"batches not final after {timeout:.0f} s: {docs}")
            time.sleep(0.1)

    @staticmethod
    def _wait_queue_idle(qstash: Any, seconds: float) -> int:
        """Let the last step's publishes and deliveries settle; return what is still scheduled."""
        deadline = time.monotonic() + seconds
        while True:
            pending = qstash.stats()["pending"]
            if pending <= 0 or time.monotonic() > deadline:
                return max(0, pending)
            time.sleep(0.05)


def _epoch(value: datetime) -> float:
    return value.timestamp()


_WORDS = ("passport", "renewal", "application", "benefit", "eligible", "form", "service", "Canada", "online",
          "account", "payment", "document", "processing", "time", "office", "submit", "required", "citizen",
          "employment", "insurance", "tax", "return", "deadline", "you", "can", "must", "the", "your", "and", "of")


def answer_text(row: int, chars: int) -> str:
    """An answer of `chars` characters that differs per row, so that exports compress like real ones."""
    rng = random.Random(row)
    words: list[str] = []
    length = 0
    while length < chars:
        word = rng.choice(_WORDS)
        words.append(word)
        length += len(word) + 1
    return " ".join(words)[:chars]
