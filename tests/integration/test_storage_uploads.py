"""Direct uploads, chunked ingestion and kept sources, against moto's S3 server over HTTP.

The route files run in-process over HTTP (`live`), the QStash dev server delivers the
steps, SecantusDB is the store and moto's server the bucket: nothing is patched.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests
from bson import ObjectId

from lib.models import Role
from tests.support.live_app import LiveApp

CONVERSATIONS = (
    "chatId,QUESTION,ticket\n"
    + "".join(
        f"{'c' + str(n % 7) if n % 2 else ''},Question {n}: how do I renew my passport?,T-{n}\n" for n in range(60)
    )
).encode()

pytest_plugins = ["tests.support.s3_fixtures"]  # moto's server and the live app with storage


@pytest.fixture
def app(live_s3: LiveApp, monkeypatch: pytest.MonkeyPatch) -> LiveApp:
    """Small ingestion windows and chunks, so that 60 rows take several steps and chunks."""
    from lib.services import get_services, reset_services

    monkeypatch.setenv("INGEST_WINDOW_ROWS", "25")
    monkeypatch.setenv("INGEST_CHUNK_ROWS", "10")
    reset_services()
    live_s3.services = get_services()
    return live_s3


def ask_upload(live: LiveApp, user: str, **body: Any) -> requests.Response:
    return requests.post(f"{live.base_url}/api/batch/upload-url", json=body, headers=live.headers(user), timeout=10)


def post_file(form: dict[str, Any], content: bytes, content_type: str = "text/csv") -> requests.Response:
    return requests.post(form["url"], data=form["fields"], files={"file": ("questions.csv", content, content_type)},
                         timeout=30)


def upload(live: LiveApp, user: str, content: bytes, *, file_name: str = "questions.csv",
           content_type: str = "text/csv") -> str:
    answer = ask_upload(live, user, fileName=file_name, size=len(content), contentType=content_type)
    assert answer.status_code == 200, answer.text
    posted = post_file(answer.json(), content, content_type)
    assert posted.status_code in (200, 201, 204), posted.text
    return answer.json()["uploadId"]


def create(live: LiveApp, user: str, upload_id: str, **fields: str) -> requests.Response:
    form = {"batchName": "direct", "lang": "en", "aiProvider": "offline", "searchProvider": "offline",
            "uploadId": upload_id, **fields}
    return requests.post(f"{live.base_url}/api/batch/create", files={k: (None, v) for k, v in form.items()},
                         headers=live.headers(user), timeout=60)


def wait_until(check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def nothing_stored(live: LiveApp) -> bool:
    store = live.services.store
    return store.batches.count_documents({}) == 0 and store.batch_items.count_documents({}) == 0


def source_of(live: LiveApp, user: str, batch_id: str) -> requests.Response:
    return requests.get(f"{live.base_url}/api/batch/source", params={"batchId": batch_id},
                        headers=live.headers(user), timeout=10)


# --- the whole path -----------------------------------------------------------------------


def test_a_file_posted_to_storage_is_ingested_by_steps_in_file_order_and_runs_to_the_end(app):
    upload_id = upload(app, "partner", CONVERSATIONS)

    created = create(app, "partner", upload_id)

    assert created.status_code == 202, created.text
    assert created.json()["status"] == "ingesting" and created.json()["totalItems"] == 60
    batch_id = created.json()["batchId"]
    final = app.wait_final("partner", batch_id, timeout=120)
    assert final["status"] == "processed" and final["processedItems"] == 60 and final["ingestedItems"] == 60
    items = app.results("partner", batch_id).json()["items"]
    assert [row["ticket"] for row in items] == [f"T-{n}" for n in range(60)]
    docs = list(app.services.store.batch_items.find({"batchId": ObjectId(batch_id)}))
    assert sorted(d["rowIndex"] for d in docs) == list(range(60))
    # A conversation spread over every chunk is one chat, its turns numbered in file order.
    by_label: dict[str, list[dict[str, Any]]] = {}
    for doc in sorted(docs, key=lambda d: d["rowIndex"]):
        by_label.setdefault(doc["chatLabel"] or f"row{doc['rowIndex']}", []).append(doc)
    for label, turns in by_label.items():
        assert len({t["chatId"] for t in turns}) == 1, label
        assert [t["turn"] for t in turns] == list(range(len(turns))), label
    assert len({turns[0]["chatId"] for turns in by_label.values()}) == len(by_label)
    # The upload became the batch's source: the upload itself is gone.
    keys = app.s3.storage(app.bucket).keys("")
    assert not [k for k in keys if "/uploads/" in k]
    assert [k for k in keys if k.endswith(f"/batches/{batch_id}/source.csv")]


def test_the_source_link_gives_the_file_as_it_was_to_its_owner_and_an_admin_and_404s_for_others(app):
    batch_id = create(app, "partner", upload(app, "partner", CONVERSATIONS)).json()["batchId"]

    for user in ("partner", "admin"):
        link = source_of(app, user, batch_id)
        assert link.status_code == 200, link.text
        body = requests.get(link.json()["url"], timeout=10)
        assert body.status_code == 200 and body.content == CONVERSATIONS
        assert "questions.csv" in body.headers["Content-Disposition"]
    refused = source_of(app, "partner2", batch_id)
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "BATCH_NOT_FOUND"


def test_a_small_multipart_upload_keeps_its_source_too(app):
    content = b"QUESTION\nHow do I renew my passport?\n"
    batch_id = app.upload("partner", content).json()["batchId"]

    link = source_of(app, "partner", batch_id).json()

    assert requests.get(link["url"], timeout=10).content == content
    batch = app.services.store.batches.find_one({"_id": ObjectId(batch_id)})
    assert batch["source"]["bytes"] == len(content) and batch["fileHash"] == hashlib.sha256(content).hexdigest()


def test_an_ingesting_batch_is_listed_with_its_status_and_a_cancel_ends_it_cancelled_with_every_row(app):
    app.qstash.set_faults({"paused": True})  # no step runs: it stays ingesting
    batch_id = create(app, "partner", upload(app, "partner", CONVERSATIONS)).json()["batchId"]

    listed = requests.get(f"{app.base_url}/api/batch/list", headers=app.headers("partner"), timeout=10).json()
    assert [(b["batchId"], b["status"], b["ingestedItems"]) for b in listed] == [(batch_id, "ingesting", 0)]
    cancelled = app.cancel("partner", batch_id)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelling"
    app.qstash.set_faults({"paused": False})

    final = app.wait_final("partner", batch_id, timeout=120)
    assert final["status"] == "cancelled"
    assert final["cancelledItems"] + final["processedItems"] + final["failedItems"] + final["blockedItems"] == 60
    assert app.services.store.batch_items.count_documents({"batchId": ObjectId(batch_id)}) == 60


def test_an_ingestion_whose_source_disappeared_leaves_nothing(app):
    app.qstash.set_faults({"paused": True})
    batch_id = create(app, "partner", upload(app, "partner", CONVERSATIONS)).json()["batchId"]
    storage = app.s3.storage(app.bucket)
    storage.delete(k for k in storage.keys("") if batch_id in k)

    app.qstash.set_faults({"paused": False})

    wait_until(lambda: nothing_stored(app), timeout=60)
    assert app.services.store.storage_objects.count_documents({"batchId": ObjectId(batch_id)}) == 0
    assert source_of(app, "partner", batch_id).status_code == 404


# --- refusals -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"fileName": "questions.txt", "size": 10, "contentType": "text/plain"}, 415, "UNSUPPORTED_FILE_TYPE"),
        ({"fileName": "questions.csv", "size": 0, "contentType": "text/csv"}, 400, "INVALID_FIELD"),
        ({"fileName": "questions.csv", "size": True, "contentType": "text/csv"}, 400, "INVALID_FIELD"),
        ({"fileName": "questions.csv", "size": 10**12, "contentType": "text/csv"}, 413, "UPLOAD_TOO_LARGE"),
        ({"fileName": "questions.xlsx", "size": 10, "contentType": "image/png"}, 415, "UNSUPPORTED_CONTENT_TYPE"),
        ({"size": 10, "contentType": "text/csv"}, 400, "INVALID_FIELD"),
    ],
)
def test_upload_url_checks_the_name_the_size_and_the_type(app, body, status, code):
    answer = ask_upload(app, "partner", **body)

    assert answer.status_code == status and answer.json()["error"]["code"] == code


def test_upload_url_gives_a_form_for_a_key_under_the_callers_prefix(app):
    answer = ask_upload(app, "partner", fileName="Questions été 2026.csv", size=100, contentType="text/csv").json()

    partner = app.services.users.upsert("partner@example.gc.ca", Role.PARTNER)
    assert answer["fields"]["key"] == f"{partner.id}/uploads/{answer['uploadId']}/Questions_ete_2026.csv"
    assert answer["maxBytes"] == 100 and answer["fields"]["Content-Type"] == "text/csv"
    assert set(answer) == {"uploadId", "url", "fields", "expiresAt", "maxBytes"}


def test_another_users_upload_is_404_for_everybody_else_admin_included(app):
    upload_id = upload(app, "partner", CONVERSATIONS)

    for user in ("partner2", "admin"):
        refused = create(app, user, upload_id)
        assert refused.status_code == 404 and refused.json()["error"]["code"] == "UPLOAD_NOT_FOUND"
    assert create(app, "partner", upload_id).status_code == 202


def test_a_create_before_the_file_is_posted_is_a_400_and_a_made_up_upload_id_a_404(app):
    form = ask_upload(app, "partner", fileName="q.csv", size=50, contentType="text/csv").json()

    missing = create(app, "partner", form["uploadId"])
    unknown = create(app, "partner", "0" * 32)
    malformed = create(app, "partner", "../../etc")

    assert missing.status_code == 400 and missing.json()["error"]["code"] == "UPLOAD_MISSING"
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "UPLOAD_NOT_FOUND"
    assert malformed.status_code == 400 and malformed.json()["error"]["code"] == "INVALID_UPLOAD_ID"
    assert nothing_stored(app)


def test_a_file_larger_than_declared_is_refused_with_413_and_deleted(app):
    # moto does not enforce the form's content-length-range (real S3 does): create checks it.
    form = ask_upload(app, "partner", fileName="q.csv", size=40, contentType="text/csv").json()
    assert post_file(form, CONVERSATIONS).status_code == 204

    refused = create(app, "partner", form["uploadId"])

    assert refused.status_code == 413 and refused.json()["error"]["code"] == "UPLOAD_TOO_LARGE"
    assert app.s3.storage(app.bucket).keys("") == []
    assert nothing_stored(app)
    assert create(app, "partner", form["uploadId"]).status_code == 404  # the upload is gone


def test_a_file_posted_with_another_content_type_is_refused_with_415(app):
    form = ask_upload(app, "partner", fileName="q.csv", size=len(CONVERSATIONS), contentType="text/csv").json()
    fields = {**form["fields"], "Content-Type": "application/pdf"}  # moto does not enforce the policy either
    requests.post(form["url"], data=fields, files={"file": ("q.csv", CONVERSATIONS)}, timeout=10)

    refused = create(app, "partner", form["uploadId"])

    assert refused.status_code == 415 and refused.json()["error"]["code"] == "UPLOAD_TYPE_MISMATCH"
    assert nothing_stored(app)


def test_a_bad_file_posted_to_storage_gets_the_same_400_as_through_create_and_is_deleted(app):
    upload_id = upload(app, "partner", b"name,notes\nx,y\n")

    refused = create(app, "partner", upload_id)

    assert refused.status_code == 400 and refused.json()["error"]["code"] == "MISSING_QUESTION_COLUMN"
    assert app.s3.storage(app.bucket).keys("") == []
    assert nothing_stored(app)


def test_a_create_with_both_a_file_and_an_upload_id_is_a_400(app):
    upload_id = upload(app, "partner", CONVERSATIONS)

    answer = app.upload("partner", CONVERSATIONS, uploadId=upload_id)

    assert answer.status_code == 400 and answer.json()["error"]["code"] == "FILE_AND_UPLOAD_ID"


def test_the_options_offer_direct_uploads_and_export_links_with_their_limits(app):
    options = requests.get(f"{app.base_url}/api/batch/options", headers=app.headers("partner"), timeout=10).json()

    settings = app.services.settings
    assert options["directUploads"] is True and options["exportLinks"] is True
    assert options["limits"]["maxUploadBytesDirect"] == settings.max_upload_bytes_direct
    assert options["limits"]["maxBatchRowsDirect"] == settings.max_batch_rows_direct
    assert options["limits"]["exportLinkRows"] == settings.export_link_rows
