"""Deleting a finished batch (POST /api/batch/delete), with real SecantusDB and moto's S3 server.

The route runs in-process (werkzeug's test client) over the real services; steps are
delivered by hand from a recording queue so that each batch is finished before it is deleted.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import requests
from bson import ObjectId
from werkzeug.test import Client

from lib import routes
from lib.deletion import STALLED_SECONDS, SWEEP_RETAKE_SECONDS, BatchDeletion
from lib.errors import ServiceUnavailable
from lib.services import Services
from lib.store.removal import BatchRemovalStore
from lib.sweep import sweep
from lib.upload import UploadedForm
from tests.integration.conftest import bearer
from tests.support.recording_queue import RecordingQueue, drain
from tests.support.s3_server import S3Server

pytest_plugins = ["tests.support.s3_fixtures"]

CONVERSATIONS = (
    "chatId,QUESTION,ticket\n"
    + "".join(f"{'c' + str(n % 3) if n % 2 else ''},Question {n}: how do I renew my passport?,T-{n}\n"
              for n in range(12))
).encode()
FORM = {"batchName": "to delete", "lang": "en", "aiProvider": "offline", "searchProvider": "offline"}


@pytest.fixture
def env(env: dict[str, str], s3_server: S3Server, s3_bucket: str) -> dict[str, str]:
    return {**env, **s3_server.env(s3_bucket)}


@pytest.fixture
def app(installed: Services, users: dict[str, Any]) -> Services:
    queue = RecordingQueue()
    installed.batches.queue = queue
    installed.engine.queue = queue
    if installed.engine.ingestion is not None:
        installed.engine.ingestion.queue = queue
    installed.test_queue = queue  # type: ignore[attr-defined]
    return installed


def finished_batch(services: Services, user: Any, content: bytes = CONVERSATIONS) -> str:
    batch_id = services.batches.create(user, UploadedForm(FORM, "questions.csv", content))["batchId"]
    drain(services, services.test_queue)  # type: ignore[attr-defined]
    assert services.batch_store.status_of(ObjectId(batch_id)).is_final
    return batch_id


def delete(user_id: str, body: Any) -> Any:
    return Client(routes.delete_batch).post("/api/batch/delete", json=body, headers=bearer(user_id))


def what_is_left(services: Services, batch_id: str, chat_ids: list[str], interaction_ids: list[ObjectId]) -> dict:
    store, oid = services.store, ObjectId(batch_id)
    return {
        "batch": store.batches.count_documents({"_id": oid}),
        "items": store.batch_items.count_documents({"batchId": oid}),
        "interactions": store.interactions.count_documents({"_id": {"$in": interaction_ids}}),
        "chats": store.chats.count_documents({"_id": {"$in": chat_ids}}),
        "records": store.storage_objects.count_documents({"batchId": oid}),
    }


def refs_of(services: Services, batch_id: str) -> tuple[list[str], list[ObjectId]]:
    docs = list(services.store.batch_items.find({"batchId": ObjectId(batch_id)}, {"chatId": 1, "interactionId": 1}))
    return sorted({d["chatId"] for d in docs}), [d["interactionId"] for d in docs]


def test_the_owner_deletes_a_finished_batch_with_its_rows_interactions_chats_and_files(app, users):
    batch_id = finished_batch(app, users["partner"])
    app.batches.results_link(users["partner"], batch_id, "csv")  # an export in storage too
    chats, interactions = refs_of(app, batch_id)
    keys = [r.key for r in app.files.records.of_batch(batch_id)]
    assert len(keys) == 2 and what_is_left(app, batch_id, chats, interactions)["interactions"] == 12

    response = delete(users["partner"].id, {"batchId": batch_id})

    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"batchId": batch_id, "deleted": True, "deletedItems": 12}
    assert what_is_left(app, batch_id, chats, interactions) == dict.fromkeys(
        ("batch", "items", "interactions", "chats", "records"), 0)
    for key in keys:
        with pytest.raises(Exception):  # noqa: B017 - the storage adapter's NotFound
            app.files.storage.head(key)
    assert delete(users["partner"].id, {"batchId": batch_id}).status_code == 404


def test_an_admin_may_delete_anyones_batch_and_another_partner_gets_404(app, users):
    batch_id = finished_batch(app, users["partner"])

    refused = delete(users["partner2"].id, {"batchId": batch_id})
    assert refused.status_code == 404 and refused.get_json()["error"]["code"] == "BATCH_NOT_FOUND"
    assert app.store.batches.count_documents({"_id": ObjectId(batch_id)}) == 1

    assert delete(users["admin"].id, {"batchId": batch_id}).status_code == 200
    assert app.store.batches.count_documents({"_id": ObjectId(batch_id)}) == 0


def test_a_batch_still_running_is_a_409_and_keeps_everything(app, users):
    batch_id = app.batches.create(users["partner"], UploadedForm(FORM, "questions.csv", CONVERSATIONS))["batchId"]

    response = delete(users["partner"].id, {"batchId": batch_id})

    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "BATCH_ACTIVE"
    assert response.get_json()["error"]["details"] == {"status": "queued"}
    assert app.store.batch_items.count_documents({"batchId": ObjectId(batch_id)}) == 12


@pytest.mark.parametrize(("body", "status", "code"), [
    ({}, 400, "MISSING_BATCH_ID"),
    ({"batchId": "nope"}, 400, "INVALID_BATCH_ID"),
    ({"batchId": {"$ne": None}}, 400, "INVALID_BATCH_ID"),
    ({"batchId": str(ObjectId())}, 404, "BATCH_NOT_FOUND"),
])
def test_a_malformed_or_unknown_id_is_a_coded_4xx(app, users, body, status, code):
    response = delete(users["partner"].id, body)
    assert response.status_code == status
    assert response.get_json()["error"]["code"] == code


def test_a_deletion_that_runs_out_of_time_answers_202_and_the_next_call_finishes_it(app, users):
    batch_id = finished_batch(app, users["partner"])
    ticks = iter(range(0, 1000, 10))  # every chunk "takes" ten seconds
    deletion = BatchDeletion(app.batches, BatchRemovalStore(app.store), app.files, app.now,
                             clock=lambda: next(ticks), budget_seconds=5, chunk_rows=5)

    first, done = deletion.delete(users["partner"], batch_id)

    assert (first, done) == ({"batchId": batch_id, "deleted": False, "deletedItems": 5}, False)
    assert app.store.batches.find_one({"_id": ObjectId(batch_id)})["deletingAt"] is not None
    assert app.store.batch_items.count_documents({"batchId": ObjectId(batch_id)}) == 7
    second, _ = deletion.delete(users["partner"], batch_id)
    third, done = deletion.delete(users["partner"], batch_id)
    assert (second["deletedItems"], third, done) == (5, {"batchId": batch_id, "deleted": True, "deletedItems": 2}, True)


def test_storage_away_is_a_503_that_leaves_the_batch_to_be_deleted_again(app, users, s3_server):
    batch_id = finished_batch(app, users["partner"])
    chats, interactions = refs_of(app, batch_id)
    s3_server.stop()
    try:
        with pytest.raises(ServiceUnavailable):
            BatchDeletion(app.batches, BatchRemovalStore(app.store), app.files, app.now).delete(users["partner"],
                                                                                                  batch_id)
        left = what_is_left(app, batch_id, chats, interactions)
        assert (left["batch"], left["items"], left["records"]) == (1, 0, 1)  # rows gone, the batch stays
    finally:
        s3_server.start()
    assert delete(users["partner"].id, {"batchId": batch_id}).status_code == 200
    assert what_is_left(app, batch_id, chats, interactions)["records"] == 0


def test_a_chat_of_another_user_with_the_same_id_is_never_deleted(app, users):
    batch_id = finished_batch(app, users["partner"])
    chats, _ = refs_of(app, batch_id)
    app.store.chats.delete_one({"_id": chats[0]})
    app.store.chats.insert_one({"_id": chats[0], "userId": users["partner2"].id})  # not possible in practice

    assert delete(users["partner"].id, {"batchId": batch_id}).status_code == 200
    assert app.store.chats.count_documents({"_id": chats[0], "userId": users["partner2"].id}) == 1


# --- deletions left half-way, and the upload a batch was made from --------------------------


def paused_deletion(app: Services, user: Any, batch_id: str) -> None:
    """Delete five rows of the batch and stop there, as a function killed after its first chunk would."""
    ticks = iter(range(0, 1000, 10))
    deletion = BatchDeletion(app.batches, BatchRemovalStore(app.store), app.files, app.now,
                             clock=lambda: next(ticks), budget_seconds=5, chunk_rows=5)
    assert deletion.delete(user, batch_id)[1] is False


def age_stamp(app: Services, batch_id: str, minutes: int) -> None:
    app.store.batches.update_one({"_id": ObjectId(batch_id)},
                                 {"$set": {"deletingAt": app.now() - timedelta(minutes=minutes)}})


def test_a_batch_being_deleted_is_listed_and_shown_as_deleting(app, users):
    batch_id = finished_batch(app, users["partner"])
    assert app.batches.status(users["partner"], batch_id)["deleting"] is False

    paused_deletion(app, users["partner"], batch_id)

    assert app.batches.status(users["partner"], batch_id)["deleting"] is True
    listed = {b["batchId"]: b for b in app.batches.list(users["partner"])}
    assert listed[batch_id]["deleting"] is True


def test_the_sweep_finishes_a_deletion_left_half_way_and_leaves_a_fresh_one_to_its_caller(app, users):
    stalled, fresh = finished_batch(app, users["partner"]), finished_batch(app, users["partner"])
    chats, interactions = refs_of(app, stalled)
    paused_deletion(app, users["partner"], stalled)
    paused_deletion(app, users["partner"], fresh)
    age_stamp(app, stalled, minutes=STALLED_SECONDS // 60 + 1)

    answer = sweep(app)

    assert (answer["deletionsFinished"], answer["deletionsPaused"]) == ([stalled], [])
    assert what_is_left(app, stalled, chats, interactions) == dict.fromkeys(
        ("batch", "items", "interactions", "chats", "records"), 0)
    assert app.store.batch_items.count_documents({"batchId": ObjectId(fresh)}) == 7  # its caller is still at it
    assert sweep(app)["deletionsFinished"] == []


def test_the_sweep_works_within_its_budget_and_the_next_run_goes_on(app, users):
    batch_id = finished_batch(app, users["partner"])
    paused_deletion(app, users["partner"], batch_id)
    age_stamp(app, batch_id, minutes=30)
    ticks = iter(range(0, 1000, 10))
    later = {"by": timedelta(0)}
    deletion = BatchDeletion(app.batches, BatchRemovalStore(app.store), app.files, lambda: app.now() + later["by"],
                             clock=lambda: next(ticks), chunk_rows=3)

    first = deletion.finish_stalled(budget_seconds=25)

    assert first == {"deletionsFinished": [], "deletionsPaused": [batch_id]}
    assert app.store.batch_items.count_documents({"batchId": ObjectId(batch_id)}) == 1  # two chunks of three
    assert deletion.finish_stalled(budget_seconds=25) == {"deletionsFinished": [], "deletionsPaused": []}  # just now
    later["by"] = timedelta(seconds=SWEEP_RETAKE_SECONDS + 1)  # the next cron run takes it up again
    assert deletion.finish_stalled(budget_seconds=25) == {"deletionsFinished": [batch_id], "deletionsPaused": []}
    assert app.store.batches.count_documents({"_id": ObjectId(batch_id)}) == 0


def test_a_batch_being_deleted_cannot_be_retried(app, users):
    batch_id = finished_batch(app, users["partner"])
    paused_deletion(app, users["partner"], batch_id)
    app.store.batch_items.update_one({"batchId": ObjectId(batch_id)}, {"$set": {"status": "failed"}})

    response = Client(routes.retry_batch).post("/api/batch/retry", json={"batchId": batch_id},
                                                headers=bearer(users["partner"].id))

    assert response.status_code == 409, response.get_json()
    assert response.get_json()["error"]["code"] == "BATCH_ACTIVE"
    assert app.store.batches.find_one({"_id": ObjectId(batch_id)})["status"] != "queued"


def test_deleting_a_batch_made_from_a_direct_upload_removes_the_uploads_record_too(app, users):
    user = users["partner"]
    form = app.batches.upload_url(user, {"fileName": "questions.csv", "size": len(CONVERSATIONS)})
    posted = requests.post(form["url"], data=form["fields"],
                           files={"file": ("questions.csv", CONVERSATIONS, "text/csv")}, timeout=30)
    assert posted.status_code in (200, 201, 204), posted.text
    batch_id = app.batches.create(user, UploadedForm({**FORM, "uploadId": form["uploadId"]}, None, None))["batchId"]
    drain(app, app.test_queue)  # type: ignore[attr-defined]
    upload_record = {"uploadId": form["uploadId"]}
    assert app.store.storage_objects.find_one(upload_record)["claimBatchId"] == ObjectId(batch_id)

    assert delete(user.id, {"batchId": batch_id}).status_code == 200

    assert app.store.storage_objects.count_documents(upload_record) == 0
    assert app.store.storage_objects.count_documents({"batchId": ObjectId(batch_id)}) == 0
