"""What the campaign's users do: build question files, upload them, cancel batches.

A user whose request meets a dead app server or a 503 tries again, as the UI's user
would, for a bounded time; every attempt is recorded.
"""

from __future__ import annotations

import csv
import io
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import openpyxl
import requests

from bench.campaign.plan import BatchSpec
from tests.support.stage_replies import STUB_CITATION

TOPICS = (
    "renew my passport", "apply for Employment Insurance", "get a Social Insurance Number",
    "file my taxes online", "check my CRA account", "apply for Old Age Security", "get a work permit",
    "change my address with CRA", "apply for the Canada Child Benefit", "travel with a pet to Canada",
)
RETRY_FOR_SECONDS = 60.0
# The evaluation columns of a batch with analyzers (the references its analyzers compare with).
REFERENCE_COLUMNS = ("referenceAnswer", "expectedCitation", "expectedOutcome")


def question_table(spec: BatchSpec, seed: int) -> tuple[list[str], list[list[str]]]:
    """The file's columns and rows: a question per row, unique in the campaign, and maybe a chatId."""
    rng = random.Random(f"{seed}|file|{spec.index}")
    header = ["QUESTION", "URL", "notes"]
    if spec.conversations:
        header = ["chatId", *header]
    if spec.analyzers:
        header = [*header, *REFERENCE_COLUMNS]
    rows = []
    for n in range(spec.rows):
        question = f"B{spec.index:02d} R{n:03d}: how do I {rng.choice(TOPICS)}?"
        row = [question, f"https://www.canada.ca/{spec.lang}/page-{n % 7}.html", f"note {n}"]
        if spec.conversations:
            # A tenth of the rows have no label: each of them is its own chat.
            label = "" if rng.random() < 0.1 else f"conv-{rng.randrange(spec.conversations)}"
            row = [label, *row]
        if spec.analyzers:
            row += _references(rng, question)
        rows.append(row)
    return header, rows


def _references(rng: random.Random, question: str) -> list[str]:
    """A row's evaluation columns: mostly filled (the judges then ask the model), some blank.

    The reference is the stub's own answer for some rows and another text for the rest,
    so that the judges see both; a few rows expect a refusal the pipeline will not make.
    """
    draw = rng.random()
    reference = "" if draw < 0.1 else (f"Stub answer to: {question}" if draw < 0.5 else
                                       "Apply online with your account, then wait for the letter by mail.")
    citation = STUB_CITATION if rng.random() < 0.7 else ""
    outcome = rng.choice(("answer", "answer", "answer", "allow", "block", ""))
    return [reference, citation, outcome]


def file_bytes(spec: BatchSpec, seed: int) -> tuple[str, bytes]:
    """The upload's file name and content (CSV or XLSX)."""
    header, rows = question_table(spec, seed)
    if spec.file_type == "xlsx":
        workbook = openpyxl.Workbook()
        sheet = workbook.active
        sheet.append(header)
        for row in rows:
            sheet.append(row)
        out = io.BytesIO()
        workbook.save(out)
        return f"{spec.name}.xlsx", out.getvalue()
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(header)
    writer.writerows(rows)
    return f"{spec.name}.csv", text.getvalue().encode()


@dataclass
class Upload:
    spec: BatchSpec
    batch_id: str | None
    total_items: int
    attempts: int
    uploaded_at: float  # monotonic
    error: str | None = None


@dataclass
class CancelResult:
    batch_id: str
    status: int | None  # the final answer's status: 200 acknowledged, 409 already finished
    acked_at: datetime | None  # when the answer saying "cancelled" arrived (UTC)
    attempts: int
    requested_at: float  # monotonic
    error: str | None = None


class CampaignUser:
    """Uploads and cancels through the public API, retrying what a crash or an outage refused."""

    def __init__(self, base_url: str, tokens: dict[str, str], seed: int):
        self.base_url = base_url
        self.tokens = tokens
        self.seed = seed

    def _headers(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    def upload(self, spec: BatchSpec, stop_at: float) -> Upload:
        name, content = file_bytes(spec, self.seed)
        data = spec.form_fields()  # trials and analyzers too, when the schedule gave the batch some
        give_up = min(stop_at, time.monotonic() + RETRY_FOR_SECONDS)
        attempts, error = 0, None
        while time.monotonic() < give_up:
            attempts += 1
            try:
                response = requests.post(f"{self.base_url}/api/batch/create", headers=self._headers(spec.user),
                                         files={"file": (name, content)}, data=data, timeout=30)
            except requests.RequestException as exc:
                error = f"{type(exc).__name__}"
            else:
                if response.status_code == 202:
                    body = response.json()
                    return Upload(spec, body["batchId"], body["totalItems"], attempts, time.monotonic())
                error = f"{response.status_code} {response.text[:200]}"
                if response.status_code == 429:  # a per-user limit: wait as told
                    time.sleep(min(10.0, float(response.headers.get("Retry-After") or 1)))
                    continue
                if response.status_code < 500:
                    break  # our request is wrong: trying again cannot help
            time.sleep(1.0)
        return Upload(spec, None, 0, attempts, time.monotonic(), error)

    def cancel(self, batch_id: str, user: str, stop_at: float) -> CancelResult:
        requested = time.monotonic()
        give_up = min(stop_at, requested + RETRY_FOR_SECONDS)
        attempts, error, status = 0, None, None
        while time.monotonic() < give_up:
            attempts += 1
            try:
                response = requests.post(f"{self.base_url}/api/batch/cancel", headers=self._headers(user),
                                         json={"batchId": batch_id}, timeout=30)
            except requests.RequestException as exc:
                error = f"{type(exc).__name__}"
            else:
                arrived = datetime.now(UTC)
                status = response.status_code
                if status == 200:
                    return CancelResult(batch_id, status, arrived, attempts, requested)
                if status == 409:
                    # After a lost answer, a retry finds the batch "already cancelled": it was
                    # acknowledged by now at the latest.
                    acked = arrived if "cancelled" in response.text else None
                    return CancelResult(batch_id, status, acked, attempts, requested)
                error = f"{status} {response.text[:200]}"
                if status < 500:
                    break
            time.sleep(0.5)
        return CancelResult(batch_id, status, None, attempts, requested, error)

    def results(self, batch_id: str, user: str) -> list[dict] | None:
        """The batch's rows as the results endpoint serves them (None if it would not answer)."""
        try:
            response = requests.get(f"{self.base_url}/api/batch/results", headers=self._headers(user),
                                    params={"batchId": batch_id, "format": "json"}, timeout=60)
        except requests.RequestException:
            return None
        return response.json()["items"] if response.ok else None
