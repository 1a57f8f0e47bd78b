"""A big upload end to end: presigned post to storage, create, ingestion by steps, the run, the export by link.

    .venv/bin/python -m bench.big_upload                      # 100,000 rows, about 60 MB of CSV
    .venv/bin/python -m bench.big_upload --rows 5000 --xlsx   # smaller; also the XLSX export

SecantusDB is the store (or MONGODB_URI), moto's S3 server the bucket (over HTTP), the
offline providers answer. One child process plays a warm function instance
(`bench.memory`: the route files over HTTP, one request at a time); every request to it
is measured alone, its resident peak reset before it (VmHWM), interpreter and libraries
included. The steps are the QStash messages the service published (a paused QStash dev
server holds them), delivered one after the other to the instance with real signatures,
so each step's time and peak are its own.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import requests

from bench.memory import Instance
from devstack.qstash_server import QStashDevServer
from devstack.qstash_signing import sign_delivery
from lib.auth import issue_token
from lib.models import Role
from lib.services import build_services
from lib.settings import DEV_QSTASH_CURRENT_SIGNING_KEY, Settings
from tests.support.database import DatabaseServer
from tests.support.recording_queue import RecordingQueue
from tests.support.s3_server import S3Server

PUBLIC_URL = "http://bench.invalid"  # only signed into the step messages; the instance is called directly
FINAL = ("processed", "completed_with_errors", "cancelled", "failed")
WORDS = ["passport", "renew", "benefits", "employment", "insurance", "tax", "credit", "GST", "canada", "pension", "plan", "old", "age", "security", "visa", "study", "permit", "work", "immigration", "citizenship", "application", "status", "online", "account", "login"]


@dataclass
class Call:
    name: str
    seconds: float
    peak_mb: float
    baseline_mb: float
    status: int
    detail: dict[str, Any]


def write_csv(path: Path, rows: int, seed: int = 7) -> int:
    """A CSV of `rows` questions, a third of them in 20,000 conversations; its size in bytes."""
    rng = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["chatId", "QUESTION", "URL", "notes", "ticket"])
        for n in range(rows):
            question = f"Question {n}: how do I " + " ".join(rng.choice(WORDS) for _ in range(18)) + "?"
            writer.writerow([f"c{n % 20000}" if n % 3 == 0 else "", question, "https://www.canada.ca/en/services.html",
                             " ".join(rng.choice(WORDS) for _ in range(55)), f"T-{n}"])
    return path.stat().st_size


class Bench:
    def __init__(self, instance: Instance, token: str, qstash: QStashDevServer):
        self.instance = instance
        self.headers = {"Authorization": f"Bearer {token}"}
        self.qstash = qstash
        self.calls: list[Call] = []

    def measured(self, name: str, method: str, path: str, **kwargs: Any) -> requests.Response:
        baseline = self.instance.reset_peak()
        started = time.perf_counter()
        response = requests.request(method, f"{self.instance.url}{path}", timeout=900, **kwargs)
        seconds = time.perf_counter() - started
        peak = self.instance.memory()
        detail = response.json() if response.headers.get("Content-Type", "").startswith("application/json") else {}
        self.calls.append(Call(name, seconds, peak["peakKb"] / 1024, baseline["rssKb"] / 1024, response.status_code,
                               detail if isinstance(detail, dict) else {}))
        return response

    def deliver_steps(self, batch_id: str, *, while_ingesting: bool = False, limit: int = 10_000) -> None:
        """Deliver the held step messages one at a time until the batch is final (or done ingesting)."""
        again: list[dict[str, Any]] = []  # answered non-2xx: QStash would deliver them again
        for _ in range(limit):
            messages = again + [m for m in self.qstash.messages() if m["status"] == "pending"]
            self.qstash.reset()
            again = []
            status = self.status(batch_id)["status"]
            if status in FINAL or (while_ingesting and status != "ingesting"):
                return
            if not messages:
                raise RuntimeError(f"no step queued and the batch is {status}")
            for message in messages:
                body = message["body"].encode()
                signature = sign_delivery(body, f"{PUBLIC_URL}/api/batch/process-step", DEV_QSTASH_CURRENT_SIGNING_KEY,
                                          time.time())
                answer = self.measured("step", "POST", "/api/batch/process-step", data=body,
                                       headers={"Upstash-Signature": signature, "Content-Type": "application/json"})
                last = self.calls[-1]
                if answer.status_code >= 300:
                    print(f"  step answered {answer.status_code}: {answer.text[:200]} (delivered again)", flush=True)
                    again.append(message)
                    continue
                print(f"  step {last.detail.get('seq', '?'):>4} {last.detail.get('action', '?'):<12} "
                      f"{last.seconds:6.1f} s  peak {last.peak_mb:6.0f} MB (before {last.baseline_mb:.0f})  "
                      f"rows {last.detail.get('rowsSucceeded')}", flush=True)
        raise RuntimeError("too many steps")

    def status(self, batch_id: str) -> dict[str, Any]:
        return requests.get(f"{self.instance.url}/api/batch/status", params={"batchId": batch_id},
                            headers=self.headers, timeout=60).json()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--xlsx", action="store_true", help="also export the results as XLSX by link")
    parser.add_argument("--no-run", action="store_true", help="stop once the rows are written (no answers)")
    parser.add_argument("--json", help="write the figures to this file too")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="big-upload-"))
    database = DatabaseServer(os.environ.get("MONGODB_URI"), scratch)
    database.start()
    s3 = S3Server().start()
    bucket = "big-upload"
    s3.storage(bucket).create_bucket()
    qstash = QStashDevServer(port=0).start()
    qstash.set_faults({"paused": True})  # it holds the steps; they are delivered here, one at a time
    secret = "bench-secret-" + "x" * 32
    env = {**os.environ, "MONGODB_URI": database.uri, "MONGODB_DB": f"big_{uuid.uuid4().hex[:8]}",
           "JWT_SECRET": secret, "PUBLIC_BASE_URL": PUBLIC_URL, "QSTASH_URL": qstash.url, "LOG_LEVEL": "WARNING",
           "MAX_ACTIVE_BATCHES_PER_USER": "50", **s3.env(bucket)}
    services = build_services(Settings.from_env(env), queue=RecordingQueue())
    user = services.users.upsert("bench@example.gc.ca", Role.PARTNER)
    token = issue_token(user.id, secret)
    path = scratch / "questions.csv"
    try:
        size = write_csv(path, args.rows)
        print(f"file                 {args.rows} rows, {size / 1e6:.1f} MB", flush=True)
        report: dict[str, Any] = {"rows": args.rows, "bytes": size}
        with Instance(env) as instance:
            bench = Bench(instance, token, qstash)
            requests.get(f"{instance.url}/api/batch/list", headers=bench.headers, timeout=60).raise_for_status()
            started = time.perf_counter()
            form = bench.measured("upload-url", "POST", "/api/batch/upload-url", headers=bench.headers,
                                  json={"fileName": path.name, "size": size, "contentType": "text/csv"}).json()
            post_started = time.perf_counter()
            with path.open("rb") as file:
                posted = requests.post(form["url"], data=form["fields"], files={"file": (path.name, file, "text/csv")},
                                       timeout=900)
            posted.raise_for_status()
            report["postToStorageSeconds"] = time.perf_counter() - post_started
            fields = {"batchName": "big upload", "lang": "en", "aiProvider": "offline", "searchProvider": "offline",
                      "uploadId": form["uploadId"]}
            created = bench.measured("create", "POST", "/api/batch/create", headers=bench.headers,
                                     files={k: (None, v) for k, v in fields.items()})
            if created.status_code != 202:
                raise RuntimeError(f"create answered {created.status_code}: {created.text[:300]}")
            batch_id = created.json()["batchId"]
            print(f"create               {bench.calls[-1].seconds:.1f} s, peak {bench.calls[-1].peak_mb:.0f} MB "
                  f"(idle instance {bench.calls[-1].baseline_mb:.0f} MB)", flush=True)
            bench.deliver_steps(batch_id, while_ingesting=args.no_run)
            report["wallSeconds"] = time.perf_counter() - started
            final = bench.status(batch_id)
            report["final"] = {k: final[k] for k in ("status", "totalItems", "processedItems", "blockedItems",
                                                     "failedItems", "cancelledItems")}
            for fmt in ["csv", *(["xlsx"] if args.xlsx else [])]:
                for attempt in ("first", "again"):
                    linked = bench.measured(f"export {fmt} ({attempt})", "GET", "/api/batch/results",
                                            headers=bench.headers,
                                            params={"batchId": batch_id, "format": fmt, "delivery": "url"})
                    if linked.status_code != 200:
                        print(f"export {fmt}: {linked.status_code} {linked.text[:300]}")
                        break
                download_started = time.perf_counter()
                got = requests.get(linked.json()["url"], timeout=900)
                report[f"export_{fmt}"] = {"bytes": len(got.content), "downloadSeconds":
                                           time.perf_counter() - download_started}
        report["calls"] = [asdict(c) for c in bench.calls]
        _print(report)
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2, default=str))
    finally:
        qstash.stop()
        s3.stop()
        database.stop()
        shutil.rmtree(scratch, ignore_errors=True)


def _print(report: dict[str, Any]) -> None:
    calls = [Call(**c) for c in report["calls"]]
    ingest = [c for c in calls if c.name == "step" and c.detail.get("action") in ("ingesting", "ingested")]
    run = [c for c in calls if c.name == "step" and c not in ingest]
    print()
    print(f"rows / file          {report['rows']} rows, {report['bytes'] / 1e6:.1f} MB")
    print(f"post to storage      {report['postToStorageSeconds']:.1f} s")
    for call in calls:
        if call.name != "step":
            print(f"{call.name:<20} {call.seconds:6.2f} s   peak {call.peak_mb:5.0f} MB (instance before: "
                  f"{call.baseline_mb:.0f} MB)   status {call.status}")
    if ingest:
        print(f"ingestion steps      {len(ingest)}: {sum(c.seconds for c in ingest):.1f} s in all, "
              f"each {min(c.seconds for c in ingest):.1f}-{max(c.seconds for c in ingest):.1f} s, "
              f"peak {min(c.peak_mb for c in ingest):.0f}-{max(c.peak_mb for c in ingest):.0f} MB")
    if run:
        print(f"processing steps     {len(run)}: {sum(c.seconds for c in run):.1f} s in all, "
              f"peak up to {max(c.peak_mb for c in run):.0f} MB")
    print(f"wall time            {report['wallSeconds']:.1f} s (upload-url to final)")
    print(f"final                {report['final']}")
    for key, value in report.items():
        if key.startswith("export_"):
            print(f"{key:<20} {value['bytes'] / 1e6:.1f} MB, downloaded in {value['downloadSeconds']:.1f} s")


if __name__ == "__main__":
    main()
