"""With the database slowed (a proxy adding 50 ms per command), no step runs past
FUNCTION_MAX_DURATION - 2 s, and every batch still ends final with exact counters.

The route files are served in-process over HTTP and the QStash dev server delivers real
signed steps (the `live` pattern of tests/integration/conftest.py), but the app's
MONGODB_URI points at `tests/support/latency_proxy.py` in front of the run's SecantusDB.
FUNCTION_MAX_DURATION is 12 s with STEP_SAFETY_SECONDS 4 (a budget of 8 s), so a batch of
a few hundred rows takes several steps. One batch runs to the end; a second, as big, is
cancelled mid-way while the first still runs (the cancel request and the steps that
record it must fit as well). Every process-step request's duration is read from the
app's own request log line (`ai_answers.http`: `path=/api/batch/process-step ... ms=`),
and the QStash dev server's delivery times are kept alongside.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pymongo
import pytest
from bson import ObjectId
from pymongo.database import Database

from lib.auth import issue_token
from lib.models import Role
from lib.services import reset_services
from tests.support.database import DatabaseServer
from tests.support.latency_proxy import LatencyProxy
from tests.support.live_app import LiveApp

JWT_SECRET = "slow-database-secret-" + "x" * 20
DB_DELAY = 0.05
FUNCTION_MAX_DURATION = 12
STEP_SAFETY_SECONDS = 4
LIMIT_SECONDS = FUNCTION_MAX_DURATION - 2
FINAL = ("processed", "completed_with_errors", "cancelled", "failed")
COUNTED = ("processedItems", "failedItems", "cancelledItems", "blockedItems")
ITEM_STATUS_FOR = {"processedItems": "succeeded", "failedItems": "failed", "cancelledItems": "cancelled",
                   "blockedItems": "blocked"}
RUN_ROWS = 600
CANCEL_ROWS = 600
CONCURRENCY = 16
OFFLINE_AI_LATENCY_MS = 250  # 600 rows x 250 ms / 16 = 9.4 s of answers alone: past one 8 s budget
WAIT_SECONDS = 70.0

_REQUEST = re.compile(r"path=(?P<path>\S+) status=(?P<status>\d+) ms=(?P<ms>\d+)(?P<rest>.*)")
_DELIVERY = re.compile(r"url=(?P<url>\S+) retried=\d+ -> (?P<result>.+?) in (?P<ms>\d+)ms")


@dataclass
class Timed:
    path: str
    status: int
    seconds: float
    detail: str = ""


class RequestLog(logging.Handler):
    """Keeps the duration of every request the app logs and every delivery QStash makes."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.requests: list[Timed] = []
        self.deliveries: list[Timed] = []
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.name == "ai_answers.http" and (m := _REQUEST.search(message)):
            timed = Timed(m["path"], int(m["status"]), int(m["ms"]) / 1000, m["rest"].strip())
            with self._guard:
                self.requests.append(timed)
        elif record.name == "devstack.qstash_server" and (m := _DELIVERY.search(message)):
            with self._guard:
                self.deliveries.append(Timed(m["url"], 0, int(m["ms"]) / 1000, m["result"]))

    def of(self, path: str) -> list[Timed]:
        with self._guard:
            return [t for t in self.requests if t.path == path]

    def seen(self) -> int:
        with self._guard:
            return len(self.requests) + len(self.deliveries)


@dataclass
class SlowStack:
    app: LiveApp
    proxy: LatencyProxy
    log: RequestLog
    db: Database  # direct, not through the proxy: the test's own reads


@pytest.fixture
def own_database_server(database_server: DatabaseServer, tmp_path: Path) -> Iterator[DatabaseServer]:
    """A SecantusDB of the test's own: the run's shared one has grown by then, and this test
    measures the engine against a slow link, not against whatever the earlier tests left
    (a real MongoDB given by MONGODB_URI is used as it is)."""
    if database_server.external_uri:
        yield database_server
        return
    server = DatabaseServer(None, tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def slow(own_database_server: DatabaseServer, db_name: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[SlowStack]:
    database_server = own_database_server
    try:
        proxy = LatencyProxy.for_uri(database_server.uri, DB_DELAY)
    except ValueError as exc:
        pytest.skip(f"MONGODB_URI cannot be proxied: {exc}")
    with ExitStack() as cleanup:
        cleanup.enter_context(proxy)
        # Callbacks run last in, first out: the app stops, then its services and client go, then the proxy.
        cleanup.callback(_forget_client, proxy.uri)
        cleanup.callback(reset_services)
        app = LiveApp().start()
        cleanup.callback(app.stop)
        env = {
            "MONGODB_URI": proxy.uri, "MONGODB_DB": db_name, "JWT_SECRET": JWT_SECRET, **app.env(),
            "FUNCTION_MAX_DURATION": str(FUNCTION_MAX_DURATION), "STEP_SAFETY_SECONDS": str(STEP_SAFETY_SECONDS),
            "MAX_BATCH_ROWS": "1000", "OFFLINE_AI_LATENCY_MS": str(OFFLINE_AI_LATENCY_MS), "LOG_LEVEL": "INFO",
            "DEFAULT_AI_PROVIDER": "offline", "DEFAULT_SEARCH_PROVIDER": "offline",
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        reset_services()
        from lib.services import get_services

        services = get_services()
        user = services.users.upsert("partner@example.gc.ca", Role.PARTNER)
        app.tokens["partner"] = issue_token(user.id, JWT_SECRET)
        log = RequestLog()
        for logger in (logging.getLogger("ai_answers.http"), logging.getLogger("devstack.qstash_server")):
            cleanup.callback(logger.setLevel, logger.level)
            cleanup.callback(logger.removeHandler, log)
            logger.addHandler(log)
            logger.setLevel(logging.INFO)
        direct = cleanup.enter_context(pymongo.MongoClient(database_server.uri, tz_aware=True))
        yield SlowStack(app, proxy, log, direct[db_name])


def _forget_client(uri: str) -> None:
    """Close and drop the process's cached client for the proxy's URI: its port is gone after this test."""
    from lib.store import client as store_client

    cached = getattr(store_client, "_clients", {}).pop(uri, None)
    if cached is not None:
        cached.close()


def questions_csv(rows: int, tag: str) -> bytes:
    """`rows` questions: mostly independent rows, every fifth a conversation of 3 turns."""
    topics = ("renew my passport", "apply for Employment Insurance", "get a Social Insurance Number",
              "file my taxes online", "apply for Old Age Security", "get a work permit")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["QUESTION", "chatId", "URL"])
    row = 0
    while row < rows:
        turns = 3 if (row // 3) % 5 == 4 else 1
        label = f"{tag}-conv-{row}" if turns > 1 else ""
        for turn in range(min(turns, rows - row)):
            writer.writerow([f"{tag} question {row} (turn {turn + 1}): how do I {topics[row % len(topics)]}?",
                             label, f"https://www.canada.ca/en/page-{row % 9}.html"])
            row += 1
    return out.getvalue().encode()


def wait_settled(stack: SlowStack, batch_ids: list[str], deadline: float) -> list[dict]:
    """Every batch final, its completedAt set and no step holding its lease; then no more requests."""
    while True:
        docs = [stack.db.batches.find_one({"_id": ObjectId(b)}, {"interactions": 0}) or {} for b in batch_ids]
        if all(d.get("status") in FINAL and d.get("completedAt") and not d.get("leaseOwner") for d in docs):
            break
        if time.monotonic() > deadline:
            pytest.fail("batches not settled in time: " + "; ".join(
                f"{d.get('name')} {d.get('status')} completedAt={d.get('completedAt')} lease={d.get('leaseOwner')} "
                + " ".join(f"{k}={d.get(k)}" for k in ("totalItems", *COUNTED)) for d in docs))
        time.sleep(0.25)
    quiet_since, seen = time.monotonic(), stack.log.seen()
    while time.monotonic() - quiet_since < 1.5 and time.monotonic() < deadline + 10:
        time.sleep(0.25)
        if stack.log.seen() != seen:
            quiet_since, seen = time.monotonic(), stack.log.seen()
    return docs


def counter_problems(db: Database, doc: dict) -> list[str]:
    """Counters that are not exact: their sum against totalItems, each against the items' statuses."""
    items = Counter(d["status"] for d in db.batch_items.find({"batchId": doc["_id"]}, {"status": 1}))
    problems = []
    total = sum(doc.get(k, 0) or 0 for k in COUNTED)
    if total != doc["totalItems"]:
        problems.append(f"counters add up to {total}, totalItems {doc['totalItems']}")
    for key, status in ITEM_STATUS_FOR.items():
        if (doc.get(key) or 0) != items.get(status, 0):
            problems.append(f"{key}={doc.get(key)} but {items.get(status, 0)} items {status}")
    unfinished = {s: n for s, n in items.items() if s in ("pending", "processing")}
    if unfinished:
        problems.append(f"items not finished: {unfinished}")
    if sum(items.values()) != doc["totalItems"]:
        problems.append(f"{sum(items.values())} items for totalItems {doc['totalItems']}")
    return problems


def test_no_step_runs_past_its_budget_with_a_slow_database(slow: SlowStack) -> None:
    started = time.monotonic()
    deadline = started + WAIT_SECONDS
    app = slow.app
    ran = app.upload("partner", questions_csv(RUN_ROWS, "run"), "run.csv", batchName="runs to the end",
                     concurrency=CONCURRENCY)
    assert ran.status_code == 202, ran.text
    doomed = app.upload("partner", questions_csv(CANCEL_ROWS, "cancel"), "cancel.csv", batchName="cancelled mid-way",
                        concurrency=CONCURRENCY)
    assert doomed.status_code == 202, doomed.text
    run_id, cancel_id = ran.json()["batchId"], doomed.json()["batchId"]

    # Cancel once the second batch is well under way (a first flush of its counters is in).
    while True:
        status = app.status("partner", cancel_id)
        if status["processedItems"] + status["failedItems"] >= 40 or status["status"] in FINAL:
            break
        assert time.monotonic() < deadline, f"the batch to cancel never got going: {status}"
        time.sleep(0.2)
    cancel_sent = time.monotonic()
    cancelled = app.cancel("partner", cancel_id)
    cancel_seconds = time.monotonic() - cancel_sent
    assert cancelled.status_code == 200, cancelled.text

    docs = wait_settled(slow, [run_id, cancel_id], deadline)
    steps = slow.log.of("/api/batch/process-step")
    cancels = slow.log.of("/api/batch/cancel")
    deliveries = [d for d in slow.log.deliveries if d.path.endswith("/api/batch/process-step")]
    assert steps or deliveries, "no process-step request was seen (did the request or delivery log line change?)"
    longest = max(steps + deliveries, key=lambda t: t.seconds)
    by_batch = Counter(m[1] if (m := re.search(r"batch=(\S+)", t.detail)) else "?" for t in steps)
    print(f"\nslow database: +{DB_DELAY * 1000:.0f} ms per command; {slow.proxy.stats()}")
    print(f"{len(steps)} process-step requests ({dict(by_batch)}), {len(deliveries)} QStash deliveries; longest "
          f"{longest.seconds:.2f} s ({longest.detail}); limit {LIMIT_SECONDS} s")
    print(f"over {LIMIT_SECONDS} s: {[f'{t.seconds:.1f}' for t in steps + deliveries if t.seconds > LIMIT_SECONDS]}")
    print(f"cancel request {cancel_seconds:.2f} s (app: {[f'{t.seconds:.2f}' for t in cancels]}); "
          f"whole run {time.monotonic() - started:.0f} s")
    for doc in docs:
        print(f"  {doc['name']}: {doc['status']} total {doc['totalItems']} " +
              " ".join(f"{k}={doc.get(k)}" for k in COUNTED if k in doc) + f" steps {doc.get('stepSeq')}")

    run_doc, cancel_doc = docs
    assert run_doc["status"] in ("processed", "completed_with_errors"), run_doc["status"]
    assert cancel_doc["status"] == "cancelled", cancel_doc["status"]
    assert run_doc["stepSeq"] >= 2, "one step finished the whole batch: make it bigger"
    assert 0 < cancel_doc["processedItems"] < cancel_doc["totalItems"] and cancel_doc["cancelledItems"] > 0
    problems = {doc["name"]: counter_problems(slow.db, doc) for doc in docs}
    assert problems == {doc["name"]: [] for doc in docs}
    assert all(t.status < 500 for t in steps), [(t.status, t.detail) for t in steps if t.status >= 500]
    assert max([cancel_seconds] + [t.seconds for t in cancels]) <= LIMIT_SECONDS
    assert longest.seconds <= LIMIT_SECONDS, (
        f"a step ran {longest.seconds:.2f} s, past FUNCTION_MAX_DURATION - 2 = {LIMIT_SECONDS} s ({longest.detail})")
