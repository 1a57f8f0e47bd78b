"""A load run against the local stack: users uploading big files while other batches run.

    .venv/bin/python -m bench.load [--minutes 5] [--users 4] [--rows 3000] [--background 2] [--seed 1] [--quick]

Starts its own stack (SecantusDB, the QStash dev server, the app server, as child
processes on free ports in a scratch folder; `MONGODB_URI` points it at another
MongoDB) with the offline providers slowed to `--ai-latency-ms` an answer, so that
batches overlap as they would with a real model, and the default per-user limits
(MAX_ACTIVE_BATCHES_PER_USER 5, CREATE_RATE_PER_MINUTE 10). Then, for `--minutes`:
- `--users` partner users each upload a `--rows`-row CSV every 20-40 s (seeded), poll
  the status of each batch they have running every 2 s, list their batches now and
  then, and cancel a quarter of their batches 10-60 s after the upload; a 429 is an
  expected answer (counted on its own, not as an error): they wait as told;
- a background user keeps `--background` batches of `--background-rows` rows running
  throughout (a new upload as soon as one ends).
Then it stops uploading and lets the batches run for `--drain-minutes`; the users
cancel whatever still runs after that (`cancel-end`), and once every batch has settled
it reads MongoDB directly: every batch final, its counters exact (processedItems +
failedItems + cancelledItems (+ blockedItems) = totalItems, each equal to the count of
its items with that status, no item left pending or processing).

Prints every HTTP status by endpoint, create / cancel / status / list latency (p50, p95,
max), process-step durations from the app's log (reported: how many ran past
FUNCTION_MAX_DURATION - 2 s), batches accepted and how they ended, rows answered per
second overall, and the checks. Exit status 1 on any 5xx other than 503, any request
left without an answer, any batch not final or with inexact counters; 0 otherwise. The
scratch folder keeps the processes' logs (and, after a failure, the database files).
`--quick` is a small run for development (about two minutes: 1 minute of load, 300-row files).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pymongo
from bson import ObjectId

from bench.load_users import ApiClient, LoadUser, Recorder, Sample, Tracked, UserPlan
from devstack.stack import Stack, free_port
from lib.auth import issue_token
from lib.models import Role

log = logging.getLogger("bench.load")
FINAL = ("processed", "completed_with_errors", "cancelled", "failed")
COUNTERS = {"processedItems": "succeeded", "failedItems": "failed", "cancelledItems": "cancelled",
            "blockedItems": "blocked"}
CREATE_JOIN_SECONDS = 150.0  # a user thread may be inside a create (timeout 120 s)
SETTLE_SECONDS = 150.0  # a cancelled batch's rows in flight: a step's lease (65 s) and its settle step
STEP_LINE = re.compile(r"path=/api/batch/process-step status=\d+ ms=(\d+)")  # lib/http.py's request line


@dataclass(frozen=True)
class LoadConfig:
    seed: int = 1
    minutes: float = 5.0
    users: int = 4
    rows: int = 3000
    background: int = 2
    background_rows: int = 3000
    ai_latency_ms: int = 200
    drain_minutes: float = 3.0
    think: tuple[float, float] = (20.0, 40.0)
    cancel_share: float = 0.25
    cancel_after: tuple[float, float] = (10.0, 60.0)
    poll_seconds: float = 2.0
    list_every: int = 5
    concurrency: tuple[int, ...] = (4, 8)
    function_max_duration: int = 60  # as in vercel.json; steps are measured against it
    quick: bool = False

    def user_plan(self) -> UserPlan:
        return UserPlan(self.rows, self.think, self.cancel_share, self.cancel_after, self.poll_seconds,
                        self.list_every, self.concurrency)

    def background_plan(self) -> UserPlan:
        return UserPlan(self.background_rows, self.think, 0.0, self.cancel_after, self.poll_seconds, 0,
                        self.concurrency, keep_running=self.background)

    def app_env(self) -> dict[str, str]:
        return {"OFFLINE_AI_LATENCY_MS": str(self.ai_latency_ms), "LOG_LEVEL": "INFO",
                "FUNCTION_MAX_DURATION": str(self.function_max_duration),
                "MAX_BATCH_ROWS": str(max(10_000, self.rows, self.background_rows))}


def quick_config(seed: int = 1) -> LoadConfig:
    return LoadConfig(seed=seed, minutes=1.0, rows=300, background_rows=300, drain_minutes=1.0, think=(6.0, 12.0),
                      cancel_after=(2.0, 10.0), quick=True)


@dataclass
class BatchCheck:
    """One batch as MongoDB has it at the end, and what is wrong with it."""

    batch_id: str
    name: str
    user: str
    status: str
    total: int
    counters: dict[str, int]
    items: Counter[str]
    cancelled_by: str | None
    problems: list[str] = field(default_factory=list)


@dataclass
class LoadReport:
    config: LoadConfig
    data_dir: Path
    samples: list[Sample] = field(default_factory=list)
    checks: list[BatchCheck] = field(default_factory=list)
    rejected: Counter[str] = field(default_factory=Counter)
    accepted: int = 0
    cancelled_at_end: int = 0
    abandoned_creations: int = 0  # batches left `creating` (a create that failed part way)
    answered_rows: int = 0
    first_create: float = 0.0  # epoch seconds
    last_answer: float = 0.0
    window_seconds: float = 0.0
    wall_seconds: float = 0.0
    app_errors: int = 0  # ERROR lines in the app's log
    step_seconds: list[float] = field(default_factory=list)  # every process-step request, from the app's log
    load_average: tuple[float, float] = (0.0, 0.0)  # 1-minute load average at the start and at the end
    problems: list[str] = field(default_factory=list)

    @property
    def server_errors(self) -> list[Sample]:
        """5xx other than 503."""
        return [s for s in self.samples if s.status is not None and s.status >= 500 and s.status != 503]

    @property
    def unanswered(self) -> list[Sample]:
        return [s for s in self.samples if s.status is None]

    @property
    def rows_per_second(self) -> float:
        span = self.last_answer - self.first_create
        return self.answered_rows / span if span > 0 else 0.0

    @property
    def ok(self) -> bool:
        return (not self.server_errors and not self.unanswered and not self.problems
                and all(not c.problems for c in self.checks))


def run_load(config: LoadConfig, data_dir: Path | None = None) -> LoadReport:
    """Play the load of `config` against a fresh local stack, then check every batch."""
    started = time.monotonic()
    data_dir = data_dir or Path(tempfile.mkdtemp(prefix=f"load-{config.seed}-"))
    report = LoadReport(config, data_dir)
    load_at_start = os.getloadavg()[0]
    stack = Stack(data_dir=data_dir, app_port=free_port(), qstash_port=free_port(), db_port=free_port(),
                  mongodb_uri=os.environ.get("MONGODB_URI"), db_name=f"load_{config.seed}_{uuid.uuid4().hex[:8]}",
                  app_env=config.app_env())
    client: pymongo.MongoClient | None = None
    try:
        log.info("starting the stack in %s", data_dir)
        stack.start()
        client = pymongo.MongoClient(stack.mongodb_uri, tz_aware=True, serverSelectionTimeoutMS=5000)
        db = client[stack.db_name]
        recorder = Recorder()
        users, owners = _make_users(stack, config, recorder)
        _play(report, users, owners, db)
        report.samples = recorder.all()
        for user in users:
            report.rejected += user.rejected
            user.client.close()
        tracked = {b.batch_id: b for user in users for b in user.batches}
        report.accepted = len(tracked)
        report.checks, report.abandoned_creations = check_batches(db, list(owners), tracked)
        _answered(report, db, [ObjectId(c.batch_id) for c in report.checks])
        report.problems += [f"accepted batch {b} is not in the store" for b in tracked
                            if b not in {c.batch_id for c in report.checks}]
    finally:
        if client is not None:
            client.close()
        stack.stop()
    report.app_errors = _count_lines(data_dir / "logs" / "app.log", " ERROR ")
    report.step_seconds = step_durations(data_dir / "logs" / "app.log")
    report.load_average = (load_at_start, os.getloadavg()[0])
    report.wall_seconds = time.monotonic() - started
    return report


def _make_users(stack: Stack, config: LoadConfig, recorder: Recorder) -> tuple[list[LoadUser], dict[str, ApiClient]]:
    """The partner users and the background user, in the store, each with a token and a thread."""
    from lib.store.client import Store, get_client
    from lib.store.users import UserStore

    store = UserStore(Store(get_client(stack.mongodb_uri or ""), stack.db_name))
    stop_uploads, stop_all = threading.Event(), threading.Event()
    names = [(f"user{n + 1}", config.user_plan()) for n in range(config.users)]
    if config.background:
        names.append(("background", config.background_plan()))
    users, owners = [], {}
    for name, plan in names:
        user = store.upsert(f"load-{name}@example.gc.ca", Role.PARTNER)
        token = issue_token(user.id, stack.jwt_secret, ttl_seconds=24 * 3600, email=user.email)
        api = ApiClient(stack.base_url, token, recorder, name)
        owners[user.id] = api
        users.append(LoadUser(name, api, plan, config.seed, stop_uploads, stop_all))
    return users, owners


def _play(report: LoadReport, users: list[LoadUser], owners: dict[str, ApiClient], db: Any) -> None:
    config = report.config
    stop_uploads, stop_all = users[0].stop_uploads, users[0].stop_all
    report.first_create = time.time()
    t0 = time.monotonic()
    for user in users:
        user.start()
    try:
        _wait(lambda: False, config.minutes * 60, every=10.0, what="load", t0=t0, users=users)
        stop_uploads.set()
        report.window_seconds = time.monotonic() - t0
        log.info("uploads stopped after %.0f s; letting the batches run for up to %.0f s", report.window_seconds,
                 config.drain_minutes * 60)
        _wait(lambda: all(not u.active() for u in users), config.drain_minutes * 60, every=10.0, what="drain",
              t0=t0, users=users)
    finally:
        stop_all.set()
        for user in users:
            user.join(timeout=CREATE_JOIN_SECONDS)
    with ThreadPoolExecutor(len(users)) as pool:  # every user cancels at once, as people would
        report.cancelled_at_end = sum(pool.map(lambda user: user.cancel_remaining(), users))
    report.cancelled_at_end += _cancel_untracked(db, owners, {b.batch_id for u in users for b in u.batches})
    if report.cancelled_at_end:
        log.info("cancelled %d batches still running at the end", report.cancelled_at_end)
    if not _wait(lambda: _all_settled(db, list(owners)), SETTLE_SECONDS, every=10.0, what="settle", t0=t0,
                 users=users):
        report.problems.append(f"batches still not settled {SETTLE_SECONDS:.0f} s after the end of the run")


def _wait(done: Any, seconds: float, *, every: float, what: str, t0: float, users: list[LoadUser]) -> bool:
    """Wait until `done()` or `seconds` have passed, logging progress every `every` s; True if done."""
    deadline = time.monotonic() + seconds
    next_line = time.monotonic() + every
    while time.monotonic() < deadline:
        try:
            if done():
                return True
        except pymongo.errors.PyMongoError:
            pass
        time.sleep(0.5)
        if time.monotonic() >= next_line:
            next_line += every
            active = sum(len(u.active()) for u in users)
            accepted = sum(len(u.batches) for u in users)
            log.info("t=%4.0fs %s: %d batches accepted, %d running", time.monotonic() - t0, what, accepted, active)
    return False


def _cancel_untracked(db: Any, owners: dict[str, ApiClient], tracked: set[str]) -> int:
    """A create whose answer was lost still made a batch: its owner cancels it too."""
    count = 0
    for doc in db.batches.find({"uploaderUserId": {"$in": list(owners)}, "status": {"$nin": [*FINAL, "creating"]}},
                               {"uploaderUserId": 1}):
        if str(doc["_id"]) not in tracked:
            owners[doc["uploaderUserId"]].cancel(str(doc["_id"]), "cancel-end")
            count += 1
    return count


def _all_settled(db: Any, user_ids: list[str]) -> bool:
    for doc in db.batches.find({"uploaderUserId": {"$in": user_ids}, "status": {"$ne": "creating"}},
                               {"status": 1, "completedAt": 1}):
        if doc["status"] not in FINAL or doc.get("completedAt") is None:
            return False
    return True


def check_batches(db: Any, user_ids: list[str], tracked: dict[str, Tracked]) -> tuple[list[BatchCheck], int]:
    """Every batch of the run's users, checked from MongoDB; and how many were left `creating`."""
    checks, abandoned = [], 0
    for doc in db.batches.find({"uploaderUserId": {"$in": user_ids}}, {"interactions": 0}):
        if doc["status"] == "creating":
            abandoned += 1
            continue
        bid = str(doc["_id"])
        items = Counter({row["_id"]: row["n"] for row in db.batch_items.aggregate(
            [{"$match": {"batchId": doc["_id"]}}, {"$group": {"_id": "$status", "n": {"$sum": 1}}}])})
        counters = {k: int(doc.get(k) or 0) for k in COUNTERS if k in doc}
        track = tracked.get(bid)
        check = BatchCheck(bid, doc.get("name", ""), track.user if track else "?", doc["status"],
                           int(doc["totalItems"]), counters, items, track.cancelled_by if track else "end")
        check.problems = counter_problems(doc, items)
        checks.append(check)
    return sorted(checks, key=lambda c: c.name), abandoned


def counter_problems(doc: dict[str, Any], items: Counter[str]) -> list[str]:
    """What is not exact about a batch that should be final."""
    problems = []
    if doc["status"] not in FINAL:
        problems.append(f"status {doc['status']} is not final")
    elif doc.get("completedAt") is None:
        problems.append("final but completedAt is not set (rows in flight never recorded)")
    total = sum(int(doc.get(k) or 0) for k in COUNTERS)
    if total != doc["totalItems"]:
        problems.append(f"counters add up to {total}, totalItems is {doc['totalItems']}")
    for key, status in COUNTERS.items():
        if int(doc.get(key) or 0) != items.get(status, 0):
            problems.append(f"{key} {doc.get(key) or 0} but {items.get(status, 0)} items {status}")
    if sum(items.values()) != doc["totalItems"]:
        problems.append(f"{sum(items.values())} items for totalItems {doc['totalItems']}")
    unfinished = {s: n for s, n in items.items() if s in ("pending", "processing")}
    if unfinished:
        problems.append(f"items not finished: {unfinished}")
    return problems


def _answered(report: LoadReport, db: Any, batch_ids: list[ObjectId]) -> None:
    """Rows answered (succeeded or failed) and when the last one was."""
    match = {"batchId": {"$in": batch_ids}, "status": {"$in": ["succeeded", "failed"]}}
    group = {"$group": {"_id": None, "n": {"$sum": 1}, "last": {"$max": "$finishedAt"}}}
    rows = list(db.batch_items.aggregate([{"$match": match}, group]))
    if rows:
        report.answered_rows = rows[0]["n"]
        last = rows[0]["last"]
        report.last_answer = last.timestamp() if isinstance(last, datetime) else report.first_create


def step_durations(path: Path) -> list[float]:
    """Seconds of every process-step request in the app's log (`path=/api/batch/process-step ... ms=N`)."""
    found = []
    try:
        with path.open(encoding="utf-8", errors="replace") as lines:
            for line in lines:
                if (m := STEP_LINE.search(line)) is not None:
                    found.append(int(m[1]) / 1000)
    except OSError:
        pass
    return found


def _count_lines(path: Path, needle: str) -> int:
    try:
        with path.open(encoding="utf-8", errors="replace") as lines:
            return sum(1 for line in lines if needle in line)
    except OSError:
        return 0


def parse_args(argv: list[str] | None) -> LoadConfig:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small run for development (about two minutes)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--minutes", type=float, help="how long users upload (default 5; quick: 1)")
    parser.add_argument("--users", type=int, help="partner users uploading (default 4)")
    parser.add_argument("--rows", type=int, help="rows per upload (default 3000; quick: 300)")
    parser.add_argument("--background", type=int, help="batches kept running by the background user (default 2)")
    parser.add_argument("--background-rows", type=int, help="rows of each background batch (default 3000; quick: 300)")
    parser.add_argument("--ai-latency-ms", type=int, help="offline AI answer time (default 200)")
    parser.add_argument("--drain-minutes", type=float, help="time left to the batches after the uploads "
                        "(default 3; quick: 1), then what still runs is cancelled")
    args = parser.parse_args(argv)
    config = quick_config(args.seed) if args.quick else LoadConfig(seed=args.seed)
    changes = {name: value for name, value in (
        ("minutes", args.minutes), ("users", args.users), ("rows", args.rows), ("background", args.background),
        ("background_rows", args.background_rows), ("ai_latency_ms", args.ai_latency_ms),
        ("drain_minutes", args.drain_minutes)) if value is not None}
    for name in ("users", "rows", "background_rows"):
        if name in changes and changes[name] < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if changes.get("background", 0) < 0 or changes.get("minutes", 1) <= 0 or changes.get("drain_minutes", 0) < 0:
        parser.error("--background, --minutes and --drain-minutes must not be negative (--minutes above 0)")
    return replace(config, **changes)


def main(argv: list[str] | None = None) -> int:
    from bench.load_report import format_report

    config = parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that `finally` stops every child
    report = run_load(config)
    print(format_report(report), flush=True)
    if report.ok:
        shutil.rmtree(report.data_dir / "db", ignore_errors=True)  # kept after a failure, to look into
        print(f"logs in {report.data_dir / 'logs'}", flush=True)
    else:
        print(f"logs and database kept in {report.data_dir}", flush=True)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
