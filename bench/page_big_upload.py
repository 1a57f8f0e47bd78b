"""The page's big upload in a real browser: ~60 MB / 100,000 rows straight to storage, ingested, then cancelled.

    .venv/bin/python -m bench.page_big_upload                # 100,000 rows, about 60 MB of CSV
    .venv/bin/python -m bench.page_big_upload --rows 20000   # smaller
    .venv/bin/python -m bench.page_big_upload --json out.json

The whole local stack runs as child processes on free ports (SecantusDB or MONGODB_URI,
moto's S3 server, the QStash dev server delivering steps, the app server: devstack/stack.py),
and Chromium (Playwright, /usr/bin/chromium) signs in, picks the file (bench/big_upload.py's
generator) and presses "Upload and start": the page asks for a presigned form, posts the
file to storage with XMLHttpRequest (its progress bar), then creates the batch with the
uploadId. The batch is followed until it leaves `ingesting` (queued or processing), then
cancelled through the page's confirmation dialog, and the stack is taken down with its data.

Reported: the upload (click to the file in storage, and to the create's answer), the time
from the click to `queued`, the ingestion steps (the app's "wrote rows up to" lines for
the batch), the app server's resident memory (VmRSS sampled, VmHWM at the end: one
long-lived process serving the page, create and every step) and the page's JS heap
(Chrome's Performance metrics). Not a test: run it alone, the machine's cores are its clock.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from playwright.sync_api import Page, expect, sync_playwright

from bench.big_upload import write_csv
from devstack.stack import Stack, free_port

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
FINAL = ("processed", "completed_with_errors", "cancelled", "failed")
SAMPLE_SECONDS = 0.5


def proc_memory_mb(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (the resident peak) of a process, in MB; empty when it cannot be read."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    found = dict(re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", text, re.MULTILINE))
    return {name: int(kb) / 1024 for name, kb in found.items()}


@dataclass
class Sampler:
    """The app server's resident memory, sampled in the background while the page works."""

    pid: int
    peak_rss_mb: float = 0.0
    samples: list[tuple[float, float]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Sampler:
        threading.Thread(target=self._run, daemon=True).start()
        return self

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.wait(SAMPLE_SECONDS):
            rss = proc_memory_mb(self.pid).get("VmRSS")
            if rss is not None:
                self.peak_rss_mb = max(self.peak_rss_mb, rss)
                self.samples.append((round(time.monotonic() - started, 1), round(rss, 1)))

    def stop(self) -> None:
        self._stop.set()


def js_heap_mb(cdp: Any) -> float:
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    return metrics.get("JSHeapUsedSize", 0.0) / 1e6


def status_of(stack: Stack, batch_id: str) -> dict[str, Any]:
    answer = requests.get(f"{stack.base_url}/api/batch/status", params={"batchId": batch_id}, timeout=30,
                          headers={"Authorization": f"Bearer {stack.tokens['partner']}"})
    answer.raise_for_status()
    return answer.json()


def ingestion_steps(log_file: Path, batch_id: str) -> int:
    """The ingestion steps the app logged for the batch (one "wrote rows up to index" line each)."""
    pattern = f"batch={batch_id} step="
    with log_file.open(encoding="utf-8", errors="replace") as log:
        return sum(1 for line in log if pattern in line and "wrote rows up to index" in line)


def run(page: Page, cdp: Any, stack: Stack, path: Path, size: int, rows: int, timeout: float) -> dict[str, Any]:
    report: dict[str, Any] = {"rows": rows, "bytes": size}
    app_pid = stack.processes["app"].pid
    marks: dict[str, float] = {}
    s3_url = stack.s3_url or ""

    def finished(request: Any) -> None:
        if request.method == "POST" and request.url.startswith(s3_url):
            marks.setdefault("stored", time.monotonic())
        elif request.method == "POST" and request.url.endswith("/api/batch/create"):
            marks.setdefault("created", time.monotonic())

    page.on("requestfinished", finished)
    page.goto(stack.signin_url("partner"))
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    report["appMemoryBeforeMb"] = proc_memory_mb(app_pid)
    report["pageHeapBeforeMb"] = round(js_heap_mb(cdp), 1)
    page.get_by_label("Spreadsheet of questions").set_input_files(path)
    page.get_by_label("Batch name").fill(f"page big upload {uuid.uuid4().hex[:6]}")
    sampler = Sampler(app_pid).start()
    heap_peak = 0.0
    started = time.monotonic()
    page.get_by_role("button", name="Upload and start").click()
    bar = page.get_by_role("progressbar", name=re.compile("Sending"))
    expect(bar).to_be_visible(timeout=30_000)
    bar_values: list[float] = []
    success = page.get_by_test_id("upload-success")
    while not success.is_visible():
        if time.monotonic() - started > timeout:
            raise RuntimeError("the upload did not finish in time")
        heap_peak = max(heap_peak, js_heap_mb(cdp))
        value = page.evaluate("() => Number(document.querySelector('#upload-progress-bar')?.value ?? NaN)")
        if not math.isnan(value) and (not bar_values or value != bar_values[-1]):  # the bar moved
            bar_values.append(value)
        page.wait_for_timeout(200)
    answered = time.monotonic()
    batch_id = page.get_by_test_id("upload-batch-id").inner_text().strip()
    report.update(batchId=batch_id, progressValuesSeen=len(bar_values),
                  progressFirstLast=[bar_values[0], bar_values[-1]] if bar_values else [],
                  uploadToStorageSeconds=round(marks.get("stored", answered) - started, 2),
                  createAnsweredSeconds=round(marks.get("created", answered) - started, 2))
    report["appMemoryAfterCreateMb"] = proc_memory_mb(app_pid)
    print(f"upload     {report['uploadToStorageSeconds']:.1f} s to storage, create answered at "
          f"{report['createAnsweredSeconds']:.1f} s; progress bar seen at {len(bar_values)} values", flush=True)

    ingested: list[tuple[float, int]] = []
    while True:
        status = status_of(stack, batch_id)
        heap_peak = max(heap_peak, js_heap_mb(cdp))
        ingested.append((round(time.monotonic() - started, 1), int(status.get("ingestedItems") or 0)))
        if status["status"] != "ingesting":
            break
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"still ingesting after {timeout:.0f} s: {status.get('ingestedItems')} rows")
        time.sleep(SAMPLE_SECONDS)
    queued = time.monotonic()
    report.update(statusAfterIngest=status["status"], totalItems=status["totalItems"],
                  toQueuedSeconds=round(queued - started, 1), ingestSeconds=round(queued - answered, 1),
                  ingestionSteps=ingestion_steps(stack.data_dir / "logs" / "app.log", batch_id),
                  ingestedTimeline=ingested[:: max(1, len(ingested) // 20)])
    print(f"ingested   {status['totalItems']:,} items, {report['toQueuedSeconds']:.1f} s from the click to "
          f"{status['status']} ({report['ingestionSteps']} ingestion steps)", flush=True)

    row = page.get_by_test_id(f"batch-row-{batch_id}")
    row.get_by_role("button", name="Cancel batch").click()
    page.get_by_role("alertdialog", name="Cancel this batch?").get_by_role("button",
                                                                            name="Yes, cancel the batch").click()
    expect(row).to_have_attribute("data-status", re.compile(r"^cancell(ing|ed)$"), timeout=30_000)
    cancel_clicked = time.monotonic()
    while (status := status_of(stack, batch_id))["status"] not in FINAL:
        if time.monotonic() - cancel_clicked > timeout:
            raise RuntimeError("the cancel did not settle in time")
        time.sleep(SAMPLE_SECONDS)
    report.update(finalStatus=status["status"], cancelSettledSeconds=round(time.monotonic() - cancel_clicked, 1),
                  final={k: status[k] for k in ("processedItems", "blockedItems", "failedItems", "cancelledItems")})
    sampler.stop()
    report["appMemoryEndMb"] = proc_memory_mb(app_pid)
    report["appPeakRssSampledMb"] = round(sampler.peak_rss_mb, 1)
    report["appRssTimeline"] = sampler.samples[:: max(1, len(sampler.samples) // 20)]
    report["pageHeapPeakMb"] = round(heap_peak, 1)
    print(f"cancelled  {status['status']} {report['cancelSettledSeconds']:.1f} s after the confirm: "
          f"{report['final']}", flush=True)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds each phase may take")
    parser.add_argument("--json", help="write the figures to this file too")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="page-big-upload-"))
    path = scratch / "big-questions.csv"
    size = write_csv(path, args.rows)
    print(f"file       {args.rows:,} rows, {size / 1e6:.1f} MB", flush=True)
    stack = Stack(data_dir=scratch / "stack", app_port=free_port(), qstash_port=free_port(), db_port=free_port(),
                  mongodb_uri=os.environ.get("MONGODB_URI"), db_name=f"page_big_{uuid.uuid4().hex[:8]}",
                  app_env={"LOG_LEVEL": "INFO"})
    try:
        stack.start()
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            try:
                context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-CA")
                page = context.new_page()
                page.set_default_timeout(30_000)
                cdp = context.new_cdp_session(page)
                cdp.send("Performance.enable")
                report = run(page, cdp, stack, path, size, args.rows, args.timeout)
            finally:
                browser.close()
        summary = {k: report[k] for k in ("uploadToStorageSeconds", "createAnsweredSeconds", "toQueuedSeconds",
                                          "ingestSeconds", "ingestionSteps", "appPeakRssSampledMb",
                                          "pageHeapPeakMb")}
        summary["appVmHWMMb"] = report["appMemoryEndMb"].get("VmHWM")
        print("summary    " + json.dumps(summary), flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2, default=str))
    finally:
        stack.stop()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
