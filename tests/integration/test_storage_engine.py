"""Ingestion steps, exports by link and retention, run step by step against moto's S3 server.

The services are the real ones (SecantusDB, moto's server over HTTP, offline providers);
steps are delivered by hand from a recording queue, and the clock is the test's, so
that a crash between two writes and a month passing can be played exactly.
"""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import openpyxl
import pytest
import requests
from bson import ObjectId

from lib.batches import _item_docs
from lib.errors import Gone, ServiceUnavailable
from lib.ingestion import IngestionStep
from lib.models import Role, User
from lib.queue import StepMessage
from lib.services import Services, build_services
from lib.settings import Settings
from lib.sweep import sweep
from lib.upload import UploadedForm
from tests.support.recording_queue import RecordingQueue
from tests.support.s3_server import S3Server

pytest_plugins = ["tests.support.s3_fixtures"]  # moto's server and the live app with storage

ROWS = 60
CONVERSATIONS = (
    "chatId,QUESTION,ticket\n"
    + "".join(f"{'c' + str(n % 7) if n % 2 else ''},Question {n}: how do I renew my passport?,T-{n}\n"
              for n in range(ROWS))
).encode()
FIELDS = {"batchName": "direct", "lang": "en", "aiProvider": "offline", "searchProvider": "offline"}


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def s3_services(env: dict[str, str], queue: RecordingQueue, s3_server: S3Server, s3_bucket: str,
                clock: Clock) -> Services:
    settings = Settings.from_env({**env, **s3_server.env(s3_bucket), "INGEST_WINDOW_ROWS": "25",
                                  "INGEST_CHUNK_ROWS": "10"})
    return build_services(settings, queue=queue, now=clock)


@pytest.fixture
def partner(s3_services: Services) -> User:
    return s3_services.users.upsert("partner@example.gc.ca", Role.PARTNER)


def direct_create(services: Services, user: User, content: bytes = CONVERSATIONS) -> str:
    form = services.batches.upload_url(user, {"fileName": "questions.csv", "size": len(content),
                                              "contentType": "text/csv"})
    posted = requests.post(form["url"], data=form["fields"], files={"file": ("questions.csv", content)}, timeout=30)
    assert posted.status_code == 204, posted.text
    created = services.batches.create(user, UploadedForm(fields={**FIELDS, "uploadId": form["uploadId"]}))
    return created["batchId"]


def run_steps(services: Services, queue: RecordingQueue, limit: int = 100) -> list[str]:
    """Deliver the queued steps one after the other until none is left; their actions."""
    actions = []
    for _ in range(limit):
        messages = queue.take()
        if not messages:
            return actions
        for message in messages:
            actions.append(services.engine.run_step(StepMessage(message.batch_id, message.seq)).action)
    raise AssertionError(f"still stepping after {limit} rounds: {actions[-10:]}")


def items_of(services: Services, batch_id: str) -> list[dict[str, Any]]:
    return sorted(services.store.batch_items.find({"batchId": ObjectId(batch_id)}), key=lambda d: d["rowIndex"])


# --- ingestion ----------------------------------------------------------------------------


def no_time_to_spare(services: Services, queue: RecordingQueue) -> None:
    """Ingestion steps with no time to spare: each writes one chunk (at least one always goes), then hands over."""
    tight = replace(services.engine.config, step_budget_seconds=0.0)
    services.engine.ingestion = IngestionStep(services.batch_store, services.files, queue, tight, services.now,
                                              _item_docs, window_rows=25, chunk_rows=10)


def test_an_ingestion_step_writes_what_fits_its_budget_and_the_next_resumes_at_its_mark(s3_services, queue, partner):
    no_time_to_spare(s3_services, queue)
    batch_id = direct_create(s3_services, partner)

    actions = run_steps(s3_services, queue)

    ingesting = [a for a in actions if a.startswith("ingest")]
    assert len(ingesting) >= 5 and ingesting[-1] == "ingested" and set(ingesting[:-1]) == {"ingesting"}
    assert actions[-1] == "finalised"
    batch = s3_services.batch_store.get(batch_id)
    assert batch.status == "processed" and batch.processed_items == ROWS and batch.ingest is None
    assert [d["original"]["ticket"] for d in items_of(s3_services, batch_id)] == [f"T-{n}" for n in range(ROWS)]


def test_a_step_with_time_to_spare_writes_window_after_window(s3_services, queue, partner):
    batch_id = direct_create(s3_services, partner)

    actions = run_steps(s3_services, queue)

    assert actions[0] == "ingested"  # 60 rows in windows of 25: three windows in one step
    assert s3_services.batch_store.get(batch_id).status == "processed"


def test_a_chunk_written_again_after_a_crash_keeps_each_row_once_and_the_same_chats(s3_services, queue, partner):
    batch_id = direct_create(s3_services, partner)
    queue.take()
    normal = s3_services.engine.ingestion
    no_time_to_spare(s3_services, queue)
    s3_services.engine.run_step(StepMessage(batch_id, 0))  # the first chunk
    s3_services.engine.ingestion = normal
    written = {d["rowIndex"]: (d["_id"], d["chatId"]) for d in items_of(s3_services, batch_id)}
    assert written
    # As if the step had died after writing its rows and before moving the mark.
    s3_services.store.batches.update_one({"_id": ObjectId(batch_id)}, {"$set": {
        "ingest.nextIndex": 0, "ingestedItems": 0, "leaseOwner": None, "leaseUntil": None}})
    queue.take()
    queue.messages.clear()
    s3_services.engine.run_step(StepMessage(batch_id, 9))

    run_steps(s3_services, queue)

    items = items_of(s3_services, batch_id)
    assert [d["rowIndex"] for d in items] == list(range(ROWS))
    assert {d["rowIndex"]: (d["_id"], d["chatId"]) for d in items if d["rowIndex"] in written} == written
    chats: dict[str, set[str]] = {}
    for doc in items:
        chats.setdefault(doc["chatKey"], set()).add(doc["chatId"])
    assert all(len(ids) == 1 for ids in chats.values())
    assert s3_services.batch_store.get(batch_id).status == "processed"


def test_storage_away_during_an_ingestion_step_is_a_503_and_the_next_delivery_resumes(
        s3_services, queue, partner, s3_server):
    batch_id = direct_create(s3_services, partner)
    message = queue.take()[0]
    s3_server.stop()
    try:
        with pytest.raises(ServiceUnavailable) as raised:
            s3_services.engine.run_step(StepMessage(message.batch_id, message.seq))
    finally:
        s3_server.start()

    assert raised.value.code == "STORAGE_UNAVAILABLE"
    assert s3_services.store.batches.find_one({"_id": ObjectId(batch_id)})["leaseOwner"] is None
    s3_services.engine.run_step(StepMessage(message.batch_id, message.seq))  # QStash's redelivery
    run_steps(s3_services, queue)
    assert s3_services.batch_store.get(batch_id).status == "processed"


def test_the_sweep_removes_an_ingestion_nobody_moved_for_an_hour_with_its_files(s3_services, queue, partner, clock,
                                                                                s3_server, s3_bucket):
    batch_id = direct_create(s3_services, partner)
    queue.take()  # its step is lost
    clock.now += timedelta(hours=2)

    answer = sweep(s3_services)

    assert answer["removedAbandoned"] == [batch_id]
    assert s3_services.store.batches.find_one({"_id": ObjectId(batch_id)}) is None
    assert s3_services.store.batch_items.count_documents({"batchId": ObjectId(batch_id)}) == 0
    assert [k for k in s3_server.storage(s3_bucket).keys("") if batch_id in k] == []


# --- exports by link ----------------------------------------------------------------------


def finished_batch(services: Services, queue: RecordingQueue, user: User) -> str:
    batch_id = services.batches.create(user, UploadedForm(fields=FIELDS, file_name="questions.csv",
                                                          file_data=CONVERSATIONS))["batchId"]
    run_steps(services, queue)
    assert services.batch_store.get(batch_id).status.is_final
    return batch_id


def test_the_export_of_a_final_batch_is_written_once_and_the_link_reused(s3_services, queue, partner,
                                                                       s3_server, s3_bucket):
    batch_id = finished_batch(s3_services, queue, partner)
    storage = s3_server.storage(s3_bucket)

    first = s3_services.batches.results_link(partner, batch_id, "csv")
    key = [k for k in storage.keys("") if k.endswith("/exports/results.csv")]
    written = storage.client.head_object(Bucket=s3_bucket, Key=key[0])["LastModified"]
    second = s3_services.batches.results_link(partner, batch_id, "csv")

    assert storage.client.head_object(Bucket=s3_bucket, Key=key[0])["LastModified"] == written
    assert first["final"] and second["bytes"] == first["bytes"]
    body = requests.get(second["url"], timeout=10)
    _, columns, rows = s3_services.batches.results(partner, batch_id)
    from lib.export import iter_csv

    assert body.content == b"".join(iter_csv(columns, rows))
    assert 'filename="direct.csv"' in body.headers["Content-Disposition"]


@pytest.mark.parametrize("fmt", ["xlsx", "json"])
def test_the_export_by_link_holds_every_row_in_xlsx_and_json(s3_services, queue, partner, fmt):
    batch_id = finished_batch(s3_services, queue, partner)

    link = s3_services.batches.results_link(partner, batch_id, fmt)

    body = requests.get(link["url"], timeout=10).content
    if fmt == "json":
        import json

        items = json.loads(body)["items"]
    else:
        sheet = openpyxl.load_workbook(io.BytesIO(body), read_only=True).worksheets[0]
        header, *values = list(sheet.values)
        items = [dict(zip(header, row)) for row in values]
    assert [row["ticket"] for row in items] == [f"T-{n}" for n in range(ROWS)]


def test_the_export_of_a_running_batch_is_written_fresh_at_each_request(s3_services, queue, partner):
    batch_id = s3_services.batches.create(partner, UploadedForm(fields=FIELDS, file_name="q.csv",
                                                                file_data=CONVERSATIONS))["batchId"]

    link = s3_services.batches.results_link(partner, batch_id, "csv")

    assert not link["final"] and "/exports/partial.csv" in link["url"]
    assert s3_services.batch_store.get(batch_id).exports == {}


# --- retention ----------------------------------------------------------------------------


def test_retention_deletes_sources_and_exports_past_their_day_and_the_batch_says_so(
        s3_services, queue, partner, clock, s3_server, s3_bucket):
    batch_id = finished_batch(s3_services, queue, partner)
    s3_services.batches.results_link(partner, batch_id, "csv")
    s3_services.batches.upload_url(partner, {"fileName": "never.csv", "size": 10, "contentType": "text/csv"})
    storage = s3_server.storage(s3_bucket)
    clock.now += timedelta(days=3)
    assert sweep(s3_services)["expiredObjects"] == 1  # the upload nobody used
    assert s3_services.batches.source(partner, batch_id)["url"]

    clock.now += timedelta(days=s3_services.settings.retention_days)
    answer = sweep(s3_services)

    assert answer["expiredObjects"] == 2
    assert storage.keys("") == []
    assert s3_services.store.storage_objects.count_documents({}) == 0
    batch = s3_services.batch_store.get(batch_id)
    assert batch.source_deleted_at == clock.now and batch.exports_deleted_at == clock.now and batch.exports == {}
    with pytest.raises(Gone) as gone:
        s3_services.batches.source(partner, batch_id)
    assert gone.value.code == "SOURCE_EXPIRED"
    assert s3_services.batches.results_link(partner, batch_id, "csv")["final"]  # written again on demand
