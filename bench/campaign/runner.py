"""Run a campaign: start the stack and the provider stub, play the schedule, check, stop everything.

`run_campaign(config)` returns a `CampaignReport`; it never leaves a process running.
The app reaches moto's server through a fault proxy (`bench.campaign.storage`), so that
storage can be away without losing what it holds; with a real bucket (S3_BUCKET) there
is no proxy and no storage fault.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pymongo
import requests
from bson import ObjectId

from bench.campaign.chaos import ProcessChaos
from bench.campaign.invariants import BatchCheck, StorageCheck, check_batch, check_storage
from bench.campaign.monitor import ACTIVE, FaultEvent, Monitor, Stretch
from bench.campaign.plan import CampaignConfig, Schedule, make_schedule
from bench.campaign.providers import ProviderChaos
from bench.campaign.storage import ExportResult, Exports, StorageChaos, StorageUser
from bench.campaign.workload import CampaignUser, CancelResult, Upload
from devstack.stack import Stack, free_port
from lib.storage import Storage
from tests.support.provider_stub import ProviderStub
from tests.support.s3_fault_proxy import S3FaultProxy

log = logging.getLogger("bench.faults")
SWEEP_KICK_LOG = "sweep re-published a step"  # lib/sweep.py's log line
BATCH_STATUSES = ("creating", "ingesting", "queued", "processing", "cancelling", "processed", "completed_with_errors",
                  "cancelled", "failed")


@dataclass
class CampaignReport:
    config: CampaignConfig
    schedule: Schedule
    data_dir: Path
    wall_seconds: float = 0.0
    uploads: list[Upload] = field(default_factory=list)
    uploads_while_running: int = 0
    cancels: list[CancelResult] = field(default_factory=list)
    checks: list[BatchCheck] = field(default_factory=list)
    abandoned_creations: int = 0
    provider_faults: dict[str, int] = field(default_factory=dict)
    queue_stats: dict[str, int] = field(default_factory=dict)
    process_faults: dict[str, int] = field(default_factory=dict)
    events: list[FaultEvent] = field(default_factory=list)
    skipped_faults: list[str] = field(default_factory=list)
    longest_quiet: Stretch = field(default_factory=lambda: Stretch("", 0.0))
    no_live_step: list[Stretch] = field(default_factory=list)
    sweep_kicks: int = 0  # batches the sweep re-published a step for (from the app's log)
    problems: list[str] = field(default_factory=list)  # the campaign could not do what it meant to
    storage_proxied: bool = False  # storage faults injected (moto's server behind the fault proxy)
    storage_faults: dict[str, int] = field(default_factory=dict)  # the proxy's counts
    storage_windows: list[str] = field(default_factory=list)
    storage_check: StorageCheck | None = None
    exports: list[ExportResult] = field(default_factory=list)
    found_by_name: int = 0  # direct creates whose answer was lost, their batch found in the list
    posts_refused: int = 0  # form posts to storage that failed and were made again

    @property
    def rows(self) -> Counter[str]:
        return sum((c.rows for c in self.checks), Counter())

    @property
    def lost(self) -> int:
        return sum(c.lost for c in self.checks)

    @property
    def duplicates(self) -> int:
        return sum(c.duplicates for c in self.checks)

    @property
    def started_after_cancel(self) -> int:
        return sum(c.started_after_cancel for c in self.checks)

    @property
    def violations(self) -> list[str]:
        found = [f"{c.name or c.batch_id}: {v}" for c in self.checks for v in c.violations]
        checked = {c.batch_id for c in self.checks}
        found += [f"{u.spec.name}: uploaded as {u.batch_id}, but not in the store" for u in self.uploads
                  if u.batch_id is not None and u.batch_id not in checked]
        found += [f"batch {s.batch_id} had no live step for {s.seconds:.0f} s (limit "
                  f"{self.config.no_live_step_limit:.0f} s)" for s in self.no_live_step]
        if self.storage_check is not None:
            found += [f"storage: {v}" for v in self.storage_check.violations]
        found += [f"{e.name}: export by link: {e.error}" for e in self.exports if e.error]
        return found + self.problems

    @property
    def ok(self) -> bool:
        return not self.violations and self.lost == 0 and self.duplicates == 0 and self.started_after_cancel == 0


def run_campaign(config: CampaignConfig, data_dir: Path | None = None) -> CampaignReport:
    """Play the campaign of `config` against a fresh local stack and check its invariants."""
    started = time.monotonic()
    give_up = started + config.deadline_seconds - min(30.0, 0.12 * config.deadline_seconds)  # room to check
    data_dir = data_dir or Path(tempfile.mkdtemp(prefix=f"faults-{config.seed}-"))
    external = os.environ.get("MONGODB_URI")
    schedule = make_schedule(config, db_stops_possible=external is None)
    report = CampaignReport(config, schedule, data_dir)
    chaos_rule = ProviderChaos(config.seed, config.provider_rates, schedule.search_outages, config.read_timeout,
                               config.stub_latency)
    s3_port = free_port()
    proxy = None if os.environ.get("S3_BUCKET") else S3FaultProxy(f"http://127.0.0.1:{s3_port}", seed=config.seed)
    report.storage_proxied = proxy is not None
    with ProviderStub() as stub:
        stub.rule(chaos_rule)
        app_env = {**stub.env(), **config.app_env(), **({"S3_ENDPOINT_URL": proxy.url} if proxy else {})}
        stack = Stack(data_dir=data_dir, app_port=free_port(), qstash_port=free_port(), db_port=free_port(),
                      s3_port=s3_port, mongodb_uri=external, db_name=f"faults_{config.seed}_{uuid.uuid4().hex[:8]}",
                      app_env=app_env, sweep_interval=config.sweep_interval)
        client: pymongo.MongoClient | None = None
        try:
            if proxy is not None:
                proxy.start()
            stack.start()
            requests.post(f"{stack.qstash_url}/__dev/faults", json=config.queue_faults.as_json(config.seed),
                          timeout=5).raise_for_status()
            client = pymongo.MongoClient(stack.mongodb_uri, tz_aware=True, serverSelectionTimeoutMS=3000)
            _play(report, stack, client[stack.db_name], chaos_rule, proxy, give_up)
            report.checks, report.abandoned_creations = _check_all(client[stack.db_name], report, stack)
            report.queue_stats = requests.get(f"{stack.qstash_url}/__dev/stats", timeout=5).json()
        finally:
            report.provider_faults = chaos_rule.counts()
            if client is not None:
                client.close()
            stack.stop()
            if proxy is not None:
                report.storage_faults = proxy.stats()
                proxy.stop()
    report.sweep_kicks = _count_lines(data_dir / "logs" / "app.log", SWEEP_KICK_LOG)
    report.wall_seconds = time.monotonic() - started
    return report


def _count_lines(path: Path, needle: str) -> int:
    try:
        with path.open(encoding="utf-8", errors="replace") as lines:
            return sum(1 for line in lines if needle in line)
    except OSError:
        return 0


def _play(report: CampaignReport, stack: Stack, db: Any, chaos_rule: ProviderChaos, proxy: S3FaultProxy | None,
          give_up: float) -> None:
    config, schedule = report.config, report.schedule
    t0 = time.monotonic()
    chaos_rule.started = t0  # search outages are on the schedule's clock
    monitor = Monitor(db, stack.qstash_url, config.no_live_step_limit).start()
    stop = threading.Event()
    chaos = ProcessChaos(stack, monitor, schedule.process_faults, t0, stop).start()
    storage_chaos = StorageChaos(proxy, schedule.storage_outages, config.storage_error_rate, t0, stop,
                                 export_write_failures=config.export_write_failures).start() if proxy else None
    user = StorageUser(stack.base_url, stack.tokens, config.seed)
    exports = Exports(user, monitor, threading.Event()).start() if config.exports and stack.storage else None
    try:
        _user_actions(report, user, monitor, exports, t0, give_up)
        while time.monotonic() < give_up:
            _track_unknown_batches(db, monitor)
            if monitor.all_final():
                break  # process faults still to come are skipped: there is nothing left to hurt
            time.sleep(0.5)
        else:
            report.problems.append(f"deadline: not every batch was final after {time.monotonic() - t0:.0f} s")
        if exports is not None:
            exports.finish(give_up + 10)
    finally:
        stop.set()
        if not chaos.join(60):
            report.problems.append("the process-fault thread did not end")
        if storage_chaos is not None:
            storage_chaos.join(10)
            storage_chaos.calm()
            report.storage_windows = storage_chaos.injected
        if exports is not None:
            exports.stop.set()
            report.exports = sorted(exports.results.values(), key=lambda e: e.name)
        _ensure_running(stack)
        _settle_cancelled(db, [c.batch_id for c in report.cancels], config.lease_seconds + 2, give_up)
        monitor.stop()
    report.found_by_name, report.posts_refused = user.found_by_name, user.posts_refused
    report.process_faults = dict(chaos.injected)
    report.events = monitor.events
    report.skipped_faults = chaos.skipped
    report.problems += chaos.errors
    report.longest_quiet, report.no_live_step = monitor.longest_quiet, monitor.violations


def _user_actions(report: CampaignReport, user: CampaignUser, monitor: Monitor, exports: Exports | None, t0: float,
                  give_up: float) -> None:
    """Upload every batch at its moment and cancel the chosen ones, in time order."""
    cancel_after = {c.batch_index: c.after_upload for c in report.schedule.cancels}
    uploads = sorted(report.schedule.batches, key=lambda b: b.upload_at)
    cancels: list[tuple[float, Upload]] = []
    while (uploads or cancels) and time.monotonic() < give_up:
        next_upload = t0 + uploads[0].upload_at if uploads else float("inf")
        next_cancel = min(cancels, key=lambda c: c[0]) if cancels else None
        if next_cancel is not None and next_cancel[0] <= next_upload:
            time.sleep(max(0.0, next_cancel[0] - time.monotonic()))
            cancels.remove(next_cancel)
            upload = next_cancel[1]
            assert upload.batch_id is not None
            result = user.cancel(upload.batch_id, upload.spec.user, give_up)
            report.cancels.append(result)
            log.info("t=%5.1fs cancel %s -> %s", time.monotonic() - t0, upload.spec.name, result.status)
            continue
        time.sleep(max(0.0, next_upload - time.monotonic()))
        spec = uploads.pop(0)
        running = monitor.active_count() > 0
        upload = user.upload(spec, give_up)
        report.uploads.append(upload)
        if upload.batch_id is None:
            report.problems.append(f"{spec.name}: the upload failed after {upload.attempts} attempts: {upload.error}")
            continue
        report.uploads_while_running += running
        monitor.track(upload.batch_id)
        if exports is not None:
            exports.want(upload.batch_id, spec, upload.total_items)
        log.info("t=%5.1fs upload %s: %d rows, %s, %s/%s, concurrency %d%s%s", time.monotonic() - t0, spec.name,
                 spec.rows, f"{spec.conversations} conversations" if spec.conversations else "no conversations",
                 spec.ai_provider, spec.search_provider, spec.concurrency, ", straight to storage" if spec.direct else "",
                 f" ({upload.attempts} attempts)" if upload.attempts > 1 else "")
        if spec.index in cancel_after:
            cancels.append((upload.uploaded_at + cancel_after[spec.index], upload))


def _track_unknown_batches(db: Any, monitor: Monitor) -> None:
    """A create whose answer was lost (app killed after the commit) still runs: watch it too."""
    try:
        for status in ACTIVE:
            for doc in db.batches.find({"status": status}, {"_id": 1}):
                monitor.track(str(doc["_id"]))
    except pymongo.errors.PyMongoError:
        pass


def _ensure_running(stack: Stack) -> None:
    """Bring back a process that a fault (or a failed restart) left down, for the checks."""
    owns_db = not os.environ.get("MONGODB_URI")
    db = stack.processes.get("db")
    if owns_db and (db is None or db.poll() is not None):
        stack.start_db()
    app = stack.processes.get("app")
    if app is None or app.poll() is not None:
        stack.start_app()


def _settle_cancelled(db: Any, batch_ids: list[str], seconds: float, give_up: float) -> None:
    """A cancelled batch is `cancelling` until its rows in flight are recorded; give them a lease's time."""
    deadline = min(time.monotonic() + seconds, give_up + 15)
    cancelled = [ObjectId(bid) for bid in batch_ids]
    while cancelled and time.monotonic() < deadline:
        try:
            if not any(db.batches.find_one({"_id": oid, "status": "cancelling"}, {"_id": 1}) for oid in cancelled):
                return
        except pymongo.errors.PyMongoError:
            pass
        time.sleep(0.5)


def _check_all(db: Any, report: CampaignReport, stack: Stack) -> tuple[list[BatchCheck], int]:
    user = CampaignUser(stack.base_url, stack.tokens, report.config.seed)
    acks = {c.batch_id: c.acked_at for c in report.cancels}
    file_rows = {spec.name: spec.rows for spec in report.schedule.batches}  # questions in each file
    checks, abandoned = [], 0
    batches = [b for status in BATCH_STATUSES for b in db.batches.find({"status": status})]  # exact keys only
    for batch in batches:
        if batch["status"] == "creating":
            abandoned += 1  # invisible to users; the sweep removes it
            continue
        bid = str(batch["_id"])
        results = user.results(bid, "admin")
        checks.append(check_batch(db, batch, acks.get(bid), bid in acks, results, file_rows.get(batch.get("name"))))
    if stack.storage:
        env = stack.storage_env()  # straight to the bucket, not through the fault proxy
        storage = Storage(env["S3_BUCKET"], region=env.get("S3_REGION", "us-east-1"),
                          endpoint_url=env.get("S3_ENDPOINT_URL") or None,
                          credentials={"aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
                                       "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"]}
                          if "AWS_ACCESS_KEY_ID" in env else None)
        report.storage_check = check_storage(db, storage, [b for b in batches if b["status"] != "creating"])
    return sorted(checks, key=lambda c: c.name), abandoned
