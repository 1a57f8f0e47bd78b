"""Object storage in the campaign: outages at the wire, direct uploads, exports by link.

- `StorageChaos` plays the schedule's storage windows on the fault proxy in front of
  moto's server (tests/support/s3_fault_proxy.py): connections dropped unanswered, or
  every request answered 503 SlowDown, in turn; outside them a share of requests fails,
  and the first writes of each export fail (the request answers 503, the user asks again).
  Unlike a stop of moto's server (its objects are in memory), nothing stored is lost.
- `StorageUser` uploads a direct batch as the page does past the request cap
  (upload-url, the form posted to storage, create with `uploadId`), retrying as a user
  would: a 503 or a dead app server is tried again with the same upload, a refused post
  with a new one; a 409 UPLOAD_ALREADY_USED means an earlier try made the batch, found
  in the list by its name.
- `Exports` fetches each final batch's results by link while the faults go on, and
  checks that what the link serves holds every row.
"""

from __future__ import annotations

import csv
import io
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import openpyxl
import requests

from bench.campaign.monitor import FINAL, Monitor
from bench.campaign.plan import BatchSpec, Window
from bench.campaign.workload import RETRY_FOR_SECONDS, CampaignUser, Upload, file_bytes
from tests.support.s3_fault_proxy import Action, S3FaultProxy, S3Request

log = logging.getLogger("bench.faults")

CONTENT_TYPES = {"csv": "text/csv", "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
EXPORT_RETRY_SECONDS = 45.0


class StorageChaos:
    """Storage away in the schedule's windows (odd ones drop connections, even ones answer 503)."""

    def __init__(self, proxy: S3FaultProxy, windows: list[Window], error_rate: float, t0: float,
                 stop: threading.Event, *, export_write_failures: int = 0):
        self.proxy = proxy
        self.windows = windows
        self.t0 = t0
        self.stop = stop
        self.injected: list[str] = []
        self.export_write_failures = export_write_failures
        self._export_writes: Counter[str] = Counter()
        self._lock = threading.Lock()
        proxy.error_rate = error_rate
        proxy.rule = self._fail_first_export_writes if export_write_failures else None
        self._thread = threading.Thread(target=self._run, name="campaign-storage-chaos", daemon=True)

    def start(self) -> StorageChaos:
        self._thread.start()
        return self

    def join(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        try:
            for n, window in enumerate(self.windows):
                if self.stop.wait(max(0.0, self.t0 + window.start - time.monotonic())):
                    return
                mode = "refuse" if n % 2 == 0 else "error"
                log.info("t=%5.1fs storage away (%s) for %.1f s", time.monotonic() - self.t0, mode,
                         window.end - window.start)
                self.proxy.mode = mode
                self.injected.append(f"{mode} {window.start:.0f}-{window.end:.0f}s")
                self.stop.wait(max(0.0, self.t0 + window.end - time.monotonic()))
                self.proxy.mode = "pass"
        finally:
            self.proxy.mode = "pass"

    def _fail_first_export_writes(self, request: S3Request) -> Action | None:
        """The first writes to each export key fail (the SDK's retries of one request included)."""
        if "/exports/" not in request.path or request.operation not in ("put", "multipart-start"):
            return None
        key = request.path.split("?", 1)[0]
        with self._lock:
            self._export_writes[key] += 1
            return "error" if self._export_writes[key] <= self.export_write_failures else None

    def calm(self) -> None:
        """No more faults (the checks read through the same server)."""
        self.proxy.mode = "pass"
        self.proxy.error_rate = 0.0
        self.proxy.rule = None


class StorageUser(CampaignUser):
    """A campaign user who posts the direct batches' files straight to storage."""

    def __init__(self, base_url: str, tokens: dict[str, str], seed: int):
        super().__init__(base_url, tokens, seed)
        self.found_by_name = 0  # creates whose answer was lost, their batch found in the list
        self.posts_refused = 0  # form posts storage did not take (tried again with a new form)

    def upload(self, spec: BatchSpec, stop_at: float) -> Upload:
        if not spec.direct:
            return super().upload(spec, stop_at)
        name, content = file_bytes(spec, self.seed)
        content_type = CONTENT_TYPES[spec.file_type]
        data = spec.form_fields()
        give_up = min(stop_at, time.monotonic() + RETRY_FOR_SECONDS)
        attempts, error, upload_id = 0, None, None
        while time.monotonic() < give_up:
            attempts += 1
            try:
                if upload_id is None:
                    upload_id = self._post_to_storage(spec, name, content, content_type)
                    if upload_id is None:
                        error = "the upload form or the post to storage failed"
                        time.sleep(1.0)
                        continue
                response = requests.post(f"{self.base_url}/api/batch/create", headers=self._headers(spec.user),
                                         files={k: (None, v) for k, v in {**data, "uploadId": upload_id}.items()},
                                         timeout=60)
            except requests.RequestException as exc:
                error = type(exc).__name__
                time.sleep(1.0)
                continue
            if response.status_code == 202:
                body = response.json()
                return Upload(spec, body["batchId"], body["totalItems"], attempts, time.monotonic())
            code = _code(response)
            error = f"{response.status_code} {code}"
            if response.status_code == 409 and code == "UPLOAD_ALREADY_USED":
                found = self._find(spec)
                if found is not None:
                    self.found_by_name += 1
                    return Upload(spec, found[0], found[1], attempts, time.monotonic())
                upload_id = None  # held by a create that died, or bound to a batch never made: upload again
            elif response.status_code == 400 and code == "UPLOAD_MISSING":
                upload_id = None  # the post did not land after all: post again
            elif response.status_code == 429:
                time.sleep(min(10.0, float(response.headers.get("Retry-After") or 1)))
                continue
            elif response.status_code < 500:
                break  # our request is wrong: trying again cannot help
            time.sleep(1.0)
        return Upload(spec, None, 0, attempts, time.monotonic(), error)

    def _post_to_storage(self, spec: BatchSpec, name: str, content: bytes, content_type: str) -> str | None:
        """A fresh form, posted; its uploadId, or None if either step failed."""
        form = requests.post(f"{self.base_url}/api/batch/upload-url", headers=self._headers(spec.user),
                             json={"fileName": name, "size": len(content), "contentType": content_type}, timeout=30)
        if form.status_code != 200:
            return None
        body = form.json()
        try:
            posted = requests.post(body["url"], data=body["fields"], files={"file": (name, content, content_type)},
                                   timeout=30)
        except requests.RequestException:
            posted = None
        if posted is None or posted.status_code not in (200, 201, 204):
            self.posts_refused += 1
            return None
        return str(body["uploadId"])

    def _find(self, spec: BatchSpec) -> tuple[str, int] | None:
        try:
            listed = requests.get(f"{self.base_url}/api/batch/list", headers=self._headers(spec.user), timeout=30)
        except requests.RequestException:
            return None
        if not listed.ok:
            return None
        for batch in listed.json():
            if batch.get("name") == spec.name:
                return str(batch["batchId"]), int(batch["totalItems"])
        return None


@dataclass
class ExportResult:
    batch_id: str
    name: str
    fmt: str
    attempts: int = 0
    refused: int = 0  # 503 answers (storage away), tried again
    rows: int | None = None  # rows the linked file holds
    bytes: int | None = None
    seconds: float | None = None  # from the first request to the file downloaded
    error: str | None = None


class Exports:
    """Fetch each batch's results by link once it is final, during the run, faults and all."""

    def __init__(self, user: StorageUser, monitor: Monitor, stop: threading.Event):
        self.user = user
        self.monitor = monitor
        self.stop = stop
        self.results: dict[str, ExportResult] = {}
        self._wanted: dict[str, tuple[BatchSpec, int]] = {}
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="campaign-exports", daemon=True)

    def start(self) -> Exports:
        self._thread.start()
        return self

    def want(self, batch_id: str, spec: BatchSpec, total: int) -> None:
        with self._lock:
            self._wanted[batch_id] = (spec, total)

    def finish(self, deadline: float) -> None:
        """Fetch what is still due (the batches are final by now), then stop."""
        while time.monotonic() < deadline and self._pending():
            time.sleep(0.2)
        self.stop.set()
        self._thread.join(timeout=max(1.0, deadline - time.monotonic()))

    def _pending(self) -> list[str]:
        with self._lock:
            return [bid for bid in self._wanted if bid not in self.results or
                    (self.results[bid].rows is None and self.results[bid].error is None)]

    def _run(self) -> None:
        while not self.stop.wait(0.5):
            for batch_id in self._pending():
                if self.monitor.status(batch_id) in FINAL:
                    with self._lock:
                        spec, total = self._wanted[batch_id]
                    self.results[batch_id] = self._fetch(batch_id, spec, total)

    def _fetch(self, batch_id: str, spec: BatchSpec, total: int) -> ExportResult:
        fmt = "xlsx" if spec.index % 2 else "csv"
        result = ExportResult(batch_id, spec.name, fmt)
        started = time.monotonic()
        give_up = started + EXPORT_RETRY_SECONDS
        while time.monotonic() < give_up and not self.stop.is_set():
            result.attempts += 1
            try:
                linked = requests.get(f"{self.user.base_url}/api/batch/results", headers=self.user._headers("admin"),
                                      params={"batchId": batch_id, "format": fmt, "delivery": "url"}, timeout=60)
                if linked.status_code != 200:
                    result.refused += linked.status_code == 503
                    result.error = f"{linked.status_code} {_code(linked)}"
                    if linked.status_code < 500 and linked.status_code != 429:
                        return result
                    time.sleep(0.5)
                    continue
                body = requests.get(linked.json()["url"], timeout=60)
            except requests.RequestException as exc:
                result.error = type(exc).__name__
                time.sleep(0.5)
                continue
            if body.status_code != 200:
                result.error = f"the link answered {body.status_code}"
                time.sleep(0.5)
                continue
            result.rows, result.bytes = count_rows(fmt, body.content), len(body.content)
            result.seconds, result.error = time.monotonic() - started, None
            if result.rows != total:
                result.error = f"the linked {fmt} holds {result.rows} rows of {total}"
            return result
        result.error = f"no export within {EXPORT_RETRY_SECONDS:.0f} s ({result.error})"
        return result


def count_rows(fmt: str, content: bytes) -> int:
    """Data rows of an exported file (its header row not counted)."""
    if fmt == "xlsx":
        workbook = openpyxl.load_workbook(io.BytesIO(content), read_only=True)
        try:
            return max(0, sum(1 for _ in workbook["Results"].iter_rows(values_only=True)) - 1)
        finally:
            workbook.close()
    text = content.decode("utf-8-sig")
    try:
        delimiter = csv.Sniffer().sniff(text[:4096], delimiters=",;\t").delimiter
    except csv.Error:
        delimiter = ","
    return max(0, sum(1 for _ in csv.reader(io.StringIO(text), delimiter=delimiter)) - 1)


def _code(response: requests.Response) -> str:
    try:
        body: Any = response.json()
        return str(body["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return ""
