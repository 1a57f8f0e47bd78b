"""What the load run's users do: upload big files, poll their batches, cancel some; every
request is timed and recorded with its HTTP status (and error code, if any).

A `LoadUser` is a thread with a seeded random generator. A partner uploads a file every
`think` seconds (a 429 is an expected answer: it waits as told and tries again later),
polls the status of each batch it has running, lists its batches now and then, and
cancels some batches a random while after they were accepted. The background user keeps
`keep_running` batches running at all times instead, and never cancels.
"""

from __future__ import annotations

import csv
import io
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import requests

TOPICS = (
    "renew my passport", "apply for Employment Insurance", "get a Social Insurance Number",
    "file my taxes online", "check my CRA account", "apply for Old Age Security", "get a work permit",
    "change my address with CRA", "apply for the Canada Child Benefit", "travel with a pet to Canada",
)
FINAL = ("processed", "completed_with_errors", "cancelled", "failed")
CREATE_TIMEOUT = 120.0
TIMEOUT = 30.0
TICK_SECONDS = 0.5


@dataclass(frozen=True)
class Sample:
    """One request: what it was, how it was answered, how long it took."""

    endpoint: str  # create | status | list | cancel | cancel-end
    status: int | None  # None: no answer (refused, reset, timed out)
    seconds: float
    code: str | None = None  # the error envelope's code
    user: str = ""


class Recorder:
    """Every request of the run, from every thread."""

    def __init__(self) -> None:
        self.samples: list[Sample] = []
        self._lock = threading.Lock()

    def add(self, sample: Sample) -> None:
        with self._lock:
            self.samples.append(sample)

    def all(self) -> list[Sample]:
        with self._lock:
            return list(self.samples)


class ApiClient:
    """One user's HTTP client: each call is timed and recorded; a refused request answers None."""

    def __init__(self, base_url: str, token: str, recorder: Recorder, user: str):
        self.base_url = base_url
        self.user = user
        self.recorder = recorder
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def call(self, endpoint: str, method: str, path: str, timeout: float = TIMEOUT,
             **kwargs: Any) -> requests.Response | None:
        started = time.perf_counter()
        try:
            response = self.session.request(method, f"{self.base_url}{path}", timeout=timeout, **kwargs)
        except requests.RequestException as exc:
            self.recorder.add(Sample(endpoint, None, time.perf_counter() - started, type(exc).__name__, self.user))
            return None
        seconds = time.perf_counter() - started
        self.recorder.add(Sample(endpoint, response.status_code, seconds, _error_code(response), self.user))
        return response

    def create(self, name: str, content: bytes, concurrency: int) -> requests.Response | None:
        data = {"batchName": name, "lang": "en", "aiProvider": "offline", "searchProvider": "offline",
                "concurrency": str(concurrency)}
        return self.call("create", "POST", "/api/batch/create", timeout=CREATE_TIMEOUT,
                         files={"file": (f"{name}.csv", content, "text/csv")}, data=data)

    def status(self, batch_id: str) -> requests.Response | None:
        return self.call("status", "GET", "/api/batch/status", params={"batchId": batch_id})

    def list(self) -> requests.Response | None:
        return self.call("list", "GET", "/api/batch/list")

    def cancel(self, batch_id: str, endpoint: str = "cancel") -> requests.Response | None:
        return self.call(endpoint, "POST", "/api/batch/cancel", json={"batchId": batch_id})

    def close(self) -> None:
        self.session.close()


def _error_code(response: requests.Response) -> str | None:
    if response.status_code < 400:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error.get("code") if isinstance(error, dict) else None


def questions_csv(rows: int, rng: random.Random, tag: str) -> bytes:
    """A question file: three rows in four independent, the rest in conversations of 2-5 turns."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["QUESTION", "chatId", "URL", "notes"])
    row = 0
    while row < rows:
        turns = 1 if rng.random() < 0.75 else rng.randint(2, 5)
        label = f"{tag}-c{row}" if turns > 1 else ""
        for turn in range(min(turns, rows - row)):
            question = f"{tag} row {row} (turn {turn + 1}): how do I {rng.choice(TOPICS)}?"
            writer.writerow([question, label, f"https://www.canada.ca/en/page-{row % 11}.html", f"note {row}"])
            row += 1
    return out.getvalue().encode()


@dataclass
class Tracked:
    """A batch a user's create got a 202 for."""

    batch_id: str
    user: str
    rows: int
    accepted_at: float  # monotonic
    cancel_at: float | None = None  # monotonic; None: let it run
    status: str = "queued"
    cancelled_by: str | None = None  # "user" (during the run) | "end" (still running when the run ended)


@dataclass(frozen=True)
class UserPlan:
    rows: int
    think: tuple[float, float]  # seconds between a user's uploads (uniform)
    cancel_share: float  # share of accepted batches the user cancels
    cancel_after: tuple[float, float]  # seconds after the 202
    poll_seconds: float
    list_every: int  # a list request every N status rounds
    concurrency: tuple[int, ...]
    keep_running: int = 0  # > 0: the background user, keeping this many batches running


class LoadUser(threading.Thread):
    """One user's loop; stops uploading on `stop_uploads`, stops altogether on `stop_all`."""

    def __init__(self, user: str, client: ApiClient, plan: UserPlan, seed: int, stop_uploads: threading.Event,
                 stop_all: threading.Event):
        super().__init__(name=f"load-{user}", daemon=True)
        self.user = user
        self.client = client
        self.plan = plan
        self.stop_uploads = stop_uploads
        self.stop_all = stop_all
        self.batches: list[Tracked] = []
        self.rejected: Counter[str] = Counter()  # create answers other than 202, by status and code
        self.rng = random.Random(f"{seed}|{user}")
        self._uploads = 0
        self._next_upload = time.monotonic() + self.rng.uniform(0, 2)
        self._next_poll = 0.0
        self._rounds = 0

    @property
    def background(self) -> bool:
        return self.plan.keep_running > 0

    def active(self) -> list[Tracked]:
        return [b for b in self.batches if b.status not in FINAL]

    def run(self) -> None:
        while not self.stop_all.is_set():
            now = time.monotonic()
            if not self.stop_uploads.is_set() and now >= self._next_upload and self._wants_upload():
                self._upload()
            for batch in self.active():
                if batch.cancel_at is not None and time.monotonic() >= batch.cancel_at and batch.cancelled_by is None:
                    self._cancel(batch, "cancel", "user")
            if time.monotonic() >= self._next_poll:
                self._poll()
            self.stop_all.wait(TICK_SECONDS)

    def _wants_upload(self) -> bool:
        return not self.background or len(self.active()) < self.plan.keep_running

    def _upload(self) -> None:
        self._uploads += 1
        tag = f"{self.user}-{self._uploads:02d}"
        content = questions_csv(self.plan.rows, self.rng, tag)
        response = self.client.create(tag, content, self.rng.choice(self.plan.concurrency))
        now = time.monotonic()
        self._next_upload = now + (2.0 if self.background else self.rng.uniform(*self.plan.think))
        if response is None:
            self.rejected["no answer"] += 1
            return
        if response.status_code == 202:
            body = response.json()
            batch = Tracked(body["batchId"], self.user, body["totalItems"], now)
            if not self.background and self.rng.random() < self.plan.cancel_share:
                batch.cancel_at = now + self.rng.uniform(*self.plan.cancel_after)
            self.batches.append(batch)
            return
        self.rejected[f"{response.status_code} {_error_code(response) or ''}".strip()] += 1
        if response.status_code in (429, 503):
            wait = float(response.headers.get("Retry-After") or 5)
            self._next_upload = max(self._next_upload, now + min(wait, 60.0))

    def _poll(self) -> None:
        self._next_poll = time.monotonic() + self.plan.poll_seconds
        self._rounds += 1
        if self.plan.list_every and self._rounds % self.plan.list_every == 0:
            self.client.list()
        for batch in self.active():
            response = self.client.status(batch.batch_id)
            if response is not None and response.status_code == 200:
                batch.status = response.json()["status"]

    def _cancel(self, batch: Tracked, endpoint: str, by: str) -> None:
        response = self.client.cancel(batch.batch_id, endpoint)
        if response is None:
            return  # tried again on the next tick
        batch.cancelled_by = by
        if response.status_code == 200:
            batch.status = response.json().get("status", "cancelled")

    def cancel_remaining(self) -> int:
        """At the end of the run: cancel every batch still running (after the threads stopped)."""
        count = 0
        for batch in self.active():
            response = self.client.status(batch.batch_id)
            if response is not None and response.status_code == 200:
                batch.status = response.json()["status"]
            if batch.status in FINAL:
                continue
            for _ in range(3):
                response = self.client.cancel(batch.batch_id, "cancel-end")
                if response is not None and response.status_code < 500:
                    break
                time.sleep(1.0)
            batch.cancelled_by = batch.cancelled_by or "end"
            count += 1
        return count
