"""Peak memory of one request, measured in a fresh process that plays one function instance.

    .venv/bin/python -m bench.memory        (started by the benchmark, not by hand)

The child serves the route files over HTTP, one request at a time, as a serverless
function instance does, plus two control routes: `POST /__bench/reset-peak` (the kernel
forgets the peak: `5 > /proc/self/clear_refs`) and `GET /__bench/memory` (VmRSS and VmHWM
from /proc/self/status). The parent warms the child up (imports, database client),
resets the peak, sends the measured request over real HTTP and reads the peak back, so
the figure is the instance's resident peak while serving that request, interpreter and
libraries included.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import requests

ROOT = Path(__file__).resolve().parents[1]


# --- the child ------------------------------------------------------------------------


def _status_kb(field: str) -> int:
    """VmRSS or VmHWM in KB from /proc; where there is no /proc, the peak from getrusage."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak  # bytes on macOS, KB on Linux


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False  # the peak then counts from the start of the process (still an upper bound)


def _control(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    reset = environ["PATH_INFO"] == "/__bench/reset-peak" and _reset_peak()
    body = json.dumps({"rssKb": _status_kb("VmRSS"), "peakKb": _status_kb("VmHWM"), "reset": reset}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def serve() -> None:
    from werkzeug.serving import make_server

    from devstack.appserver import QuietHandler, Router, load_routes

    router = Router(load_routes(ROOT / "api"), None)

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO", "").startswith("/__bench/"):
            return _control(environ, start_response)
        return router(environ, start_response)

    server = make_server("127.0.0.1", 0, app, threaded=False, request_handler=QuietHandler)
    print(json.dumps({"url": f"http://127.0.0.1:{server.server_port}"}), flush=True)
    server.serve_forever()


# --- the parent -----------------------------------------------------------------------


@dataclass(frozen=True)
class MemoryResult:
    seconds: float  # request sent -> last byte received (upload: -> the 202)
    first_byte_seconds: float
    bytes: int
    status: int
    baseline_mb: float  # resident size of the warmed-up instance before the request
    peak_mb: float  # resident peak while serving the request (VmHWM)
    peak_reset: bool
    body: Any = None


class Instance:
    """One child process serving the routes; use as a context manager."""

    def __init__(self, env: dict[str, str]):
        self.env = env
        self.process: subprocess.Popen[str] | None = None
        self.url = ""

    def __enter__(self) -> Self:
        self.process = subprocess.Popen([sys.executable, "-m", "bench.memory"], cwd=ROOT, env=self.env,
                                        stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the measurement process did not start")
        self.url = json.loads(line)["url"]
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def reset_peak(self) -> dict[str, Any]:
        return requests.post(f"{self.url}/__bench/reset-peak", timeout=10).json()

    def memory(self) -> dict[str, Any]:
        return requests.get(f"{self.url}/__bench/memory", timeout=10).json()


def measure_download(env: dict[str, str], token: str, batch_id: str, fmt: str) -> MemoryResult:
    """Download the batch's results in `fmt` from a fresh instance, streaming, and measure it."""
    headers = {"Authorization": f"Bearer {token}"}
    with Instance(env) as instance:
        requests.get(f"{instance.url}/api/batch/status", params={"batchId": batch_id}, headers=headers,
                     timeout=60).raise_for_status()  # warm-up: imports, client, auth
        baseline = instance.reset_peak()
        started = time.perf_counter()
        first = None
        size = 0
        tail = b""
        rows = 0
        with requests.get(f"{instance.url}/api/batch/results", params={"batchId": batch_id, "format": fmt},
                          headers=headers, stream=True, timeout=600) as response:
            for chunk in response.iter_content(64 * 1024):
                if first is None:
                    first = time.perf_counter() - started
                size += len(chunk)
                if fmt == "csv":
                    rows += (tail + chunk).count(b"\r\n") - tail.count(b"\r\n")
                    tail = chunk[-1:]
            status = response.status_code
        seconds = time.perf_counter() - started
        peak = instance.memory()
    return MemoryResult(seconds, first or seconds, size, status, baseline["rssKb"] / 1024, peak["peakKb"] / 1024,
                        baseline["reset"], body={"csvLines": rows} if fmt == "csv" else None)


def measure_upload(env: dict[str, str], token: str, content: bytes, filename: str,
                   fields: dict[str, str]) -> MemoryResult:
    """Upload a file to a fresh instance's create endpoint and measure the time to 202 and the peak."""
    headers = {"Authorization": f"Bearer {token}"}
    with Instance(env) as instance:
        requests.get(f"{instance.url}/api/batch/list", headers=headers, timeout=60).raise_for_status()
        baseline = instance.reset_peak()
        started = time.perf_counter()
        response = requests.post(f"{instance.url}/api/batch/create", files={"file": (filename, content)},
                                 data=fields, headers=headers, timeout=600)
        seconds = time.perf_counter() - started
        peak = instance.memory()
    return MemoryResult(seconds, seconds, len(content), response.status_code, baseline["rssKb"] / 1024,
                        peak["peakKb"] / 1024, baseline["reset"], body=response.json())


if __name__ == "__main__":
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    serve()
