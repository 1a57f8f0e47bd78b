"""The big file through the CLI on a local stack of its own, to the end, with every figure.

    .venv/bin/python -m bench.cli_big_run --rows 100000 --out /tmp/bigrun   # ~60 MB of CSV

What `bench.big_upload` measures one call at a time on a warm instance, measured here
as a user meets it: `lib.cli run` (presigned post to storage, create, progress, the
results fetched by link) against the whole local stack (SecantusDB, moto's S3 server,
the QStash dev server delivering the steps, the app server, offline providers), in a
data directory and on ports of its own. Then the XLSX export by link, once.

Figures: wall time of the CLI run and of each phase, the number of ingestion steps and
of processing steps, the time and size of each export, and the app server's resident
peak during each call: a sampler resets the process's VmHWM every SAMPLE_SECONDS and
keeps each interval's peak, and a call's peak is the highest of the intervals it spans
(calls that overlap share them: an upper bound for each). Progress is appended to
`<out>/progress.log` as it goes, so a run that cannot finish still tells its rate.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

from bench.big_upload import write_csv
from devstack.stack import Stack, free_port

SAMPLE_SECONDS = 0.5
_REQUEST = re.compile(r"^(\S+ \S+) INFO ai_answers\.http request id=\S+ method=(\S+) path=(\S+) status=(\d+) ms=(\d+)"
                      r"(.*)$")


@dataclass
class Sampler:
    """The app server's resident peak, interval by interval (VmHWM reset after each read)."""

    pid_of: Any  # () -> int | None: the app server's pid (it may be restarted)
    samples: list[tuple[float, float, float]] = field(default_factory=list)  # (wall time, peak MB, rss MB)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            pid = self.pid_of()
            if pid is None:
                continue
            try:
                status = Path(f"/proc/{pid}/status").read_text()
                peak = int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]
                rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]
                Path(f"/proc/{pid}/clear_refs").write_text("5")  # reset VmHWM to the current RSS
            except (OSError, AttributeError):
                continue
            self.samples.append((time.time(), peak, rss))

    def peak_between(self, start: float, end: float) -> float | None:
        spans = [peak for at, peak, _ in self.samples if start <= at <= end + SAMPLE_SECONDS]
        return max(spans) if spans else None


def calls_from_log(path: Path) -> list[dict[str, Any]]:
    """The app server's request lines: when each call ended, what it was, how long it took."""
    calls = []
    for line in path.read_text(errors="replace").splitlines():
        match = _REQUEST.match(line)
        if not match:
            continue
        at, method, route, status, ms, rest = match.groups()
        ended = datetime.strptime(at, "%Y-%m-%d %H:%M:%S,%f").astimezone().timestamp()
        action = re.search(r"action=(\S+)", rest)
        calls.append({"ended": ended, "method": method, "path": route, "status": int(status), "ms": int(ms),
                      "action": action.group(1) if action else None})
    return calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=Path("/tmp/bigrun"))
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    progress = (out / "progress.log").open("a", buffering=1)

    def note(text: str) -> None:
        progress.write(f"{datetime.now().isoformat(timespec='seconds')} {text}\n")

    source = out / f"questions-{args.rows}.csv"
    if not source.exists():
        write_csv(source, args.rows)
    note(f"file {source} {source.stat().st_size} bytes, {args.rows} rows")
    stack = Stack(data_dir=out / "stack", app_port=free_port(), qstash_port=free_port(), db_port=free_port(),
                  s3_port=free_port(), db_name="bigrun", app_env={"LOG_LEVEL": "INFO"})
    report: dict[str, Any] = {"rows": args.rows, "fileBytes": source.stat().st_size, "concurrency": args.concurrency}
    stack.start()
    sampler = Sampler(lambda: stack.processes["app"].pid if "app" in stack.processes else None).start()
    try:
        env = {**os.environ, "BATCH_SERVICE_URL": stack.base_url, "BATCH_SERVICE_TOKEN": stack.tokens["partner"]}
        started = time.time()
        note(f"stack up at {stack.base_url}; cli run starts")
        with (out / "cli.log").open("w") as cli_log:
            cli = subprocess.run([sys.executable, "-m", "lib.cli", "run", str(source), "--lang", "en",
                                  "--concurrency", str(args.concurrency), "-o", str(out / "results.csv")],
                                 env=env, stdout=cli_log, stderr=subprocess.STDOUT, check=False)
        report["cliExit"], report["cliSeconds"] = cli.returncode, round(time.time() - started, 1)
        note(f"cli run ended: exit {cli.returncode} after {report['cliSeconds']} s")
        batches = requests.get(f"{stack.base_url}/api/batch/list", headers=_auth(stack), timeout=60).json()
        batch = batches[0]
        report["batch"] = {k: batch[k] for k in ("batchId", "status", "totalItems", "processedItems", "failedItems",
                                                 "blockedItems", "startedAt", "completedAt", "createdAt")}
        report["resultsCsvBytes"] = (out / "results.csv").stat().st_size if (out / "results.csv").exists() else None
        xlsx_started = time.time()
        linked = requests.get(f"{stack.base_url}/api/batch/results", headers=_auth(stack), timeout=900,
                              params={"batchId": batch["batchId"], "format": "xlsx", "delivery": "url"})
        report["xlsxLinkSeconds"] = round(time.time() - xlsx_started, 1)
        report["xlsxLink"] = {"status": linked.status_code, **({k: linked.json().get(k) for k in ("bytes", "final")}
                                                                if linked.ok else {"body": linked.text[:300]})}
        note(f"xlsx link: {report['xlsxLink']} after {report['xlsxLinkSeconds']} s")
    finally:
        sampler.stop()
        stack.stop()
    report.update(_calls(stack, sampler))
    (out / "report.json").write_text(json.dumps(report, indent=2))
    note("report written")
    print(json.dumps(report, indent=2))


def _auth(stack: Stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.tokens['partner']}"}


def _calls(stack: Stack, sampler: Sampler) -> dict[str, Any]:
    calls = calls_from_log(stack.data_dir / "logs" / "app.log")
    for call in calls:
        call["peakMb"] = sampler.peak_between(call["ended"] - call["ms"] / 1000, call["ended"])
    steps = [c for c in calls if c["path"] == "/api/batch/process-step"]
    ingest = [c for c in steps if c["action"] in ("ingesting", "ingested")]

    def summary(group: list[dict[str, Any]]) -> dict[str, Any]:
        if not group:
            return {"count": 0}
        peaks = [c["peakMb"] for c in group if c["peakMb"] is not None]
        return {"count": len(group), "maxSeconds": max(c["ms"] for c in group) / 1000,
                "totalSeconds": round(sum(c["ms"] for c in group) / 1000, 1),
                "maxPeakMb": round(max(peaks), 1) if peaks else None}

    by_path: dict[str, list[dict[str, Any]]] = {}
    for call in calls:
        by_path.setdefault(f"{call['method']} {call['path']}", []).append(call)
    results = [c for c in calls if c["path"] == "/api/batch/results"]
    return {
        "resultsCalls": [{k: c[k] for k in ("status", "ms", "peakMb")} for c in results],  # in order: csv, then xlsx
        "ingestionSteps": summary(ingest),
        "processingSteps": summary([c for c in steps if c not in ingest]),
        "calls": {name: summary(group) for name, group in sorted(by_path.items())},
        "appPeakMb": round(max((p for _, p, _ in sampler.samples), default=0), 1),
    }


if __name__ == "__main__":
    main()
