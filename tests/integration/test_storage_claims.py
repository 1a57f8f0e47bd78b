"""One direct upload makes at most one batch: the create that claims it, over real HTTP.

moto's server is the bucket, behind a proxy that fails chosen requests at the wire
(tests/support/s3_fault_proxy.py); SecantusDB the store; the QStash dev server the queue.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
import requests
from bson import ObjectId

from lib.direct_upload import CLAIM_SECONDS
from lib.errors import Conflict
from tests.integration.test_storage_uploads import CONVERSATIONS, create, nothing_stored, upload
from tests.support.live_app import LiveApp
from tests.support.s3_fault_proxy import S3FaultProxy

pytest_plugins = ["tests.support.s3_fixtures"]  # moto's server and the live app with storage


@pytest.fixture
def proxy(s3_server) -> Iterator[S3FaultProxy]:
    with S3FaultProxy(s3_server.url) as running:
        yield running


@pytest.fixture
def app(live_s3: LiveApp, proxy: S3FaultProxy, monkeypatch: pytest.MonkeyPatch) -> LiveApp:
    """The live app with storage reached through the fault proxy; no step runs (QStash paused)."""
    from lib.services import get_services, reset_services

    monkeypatch.setenv("S3_ENDPOINT_URL", proxy.url)
    reset_services()
    live_s3.services = get_services()
    live_s3.qstash.set_faults({"paused": True})
    yield live_s3
    live_s3.qstash.set_faults({"paused": False})


def batches_of(app: LiveApp) -> list[dict]:
    return list(app.services.store.batches.find({}, {"_id": 1, "status": 1}))


def upload_record(app: LiveApp, upload_id: str) -> dict:
    return app.services.store.storage_objects.find_one({"uploadId": upload_id, "kind": "upload"})


def assert_already_used(answer: requests.Response) -> None:
    assert answer.status_code == 409, answer.text
    assert answer.json()["error"]["code"] == "UPLOAD_ALREADY_USED"


def test_two_creates_at_once_with_one_upload_make_exactly_one_batch(app):
    for round_ in range(3):
        upload_id = upload(app, "partner", CONVERSATIONS)
        start = threading.Barrier(2)
        answers: list[requests.Response] = []

        def go(start: threading.Barrier, answers: list[requests.Response], upload_id: str) -> None:
            start.wait()
            answers.append(create(app, "partner", upload_id))

        threads = [threading.Thread(target=go, args=(start, answers, upload_id)) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)

        statuses = sorted(a.status_code for a in answers)
        assert statuses == [202, 409], [a.text for a in answers]
        assert_already_used(next(a for a in answers if a.status_code == 409))
        assert len(batches_of(app)) == round_ + 1
    assert len({b["_id"] for b in batches_of(app)}) == 3


def test_the_claim_is_a_compare_and_set_only_one_of_two_takes_wins(app):
    upload_id = upload(app, "partner", CONVERSATIONS)
    key = upload_record(app, upload_id)["_id"]
    records, now = app.services.files.records, app.services.now()

    won = [records.claim_upload(key, previous=None, token=token, now=now) for token in ("a" * 32, "b" * 32)]

    assert won == [True, False]
    assert upload_record(app, upload_id)["claimToken"] == "a" * 32


def test_an_upload_that_made_a_batch_is_409_for_every_later_create(app):
    upload_id = upload(app, "partner", CONVERSATIONS)
    assert create(app, "partner", upload_id).status_code == 202

    assert_already_used(create(app, "partner", upload_id))
    assert len(batches_of(app)) == 1
    # The object is gone (it became the source); its record stays as the proof, until its expiry day.
    assert not [k for k in app.s3.storage(app.bucket).keys("") if "/uploads/" in k]
    assert upload_record(app, upload_id)["claimBatchId"] == batches_of(app)[0]["_id"]


def test_a_create_whose_copy_to_the_source_fails_gives_the_upload_back(app, proxy):
    upload_id = upload(app, "partner", CONVERSATIONS)
    proxy.rule = lambda request: "error" if request.operation == "copy" else None

    failed = create(app, "partner", upload_id)

    assert failed.status_code == 503 and failed.json()["error"]["code"] == "STORAGE_UNAVAILABLE"
    assert int(failed.headers["Retry-After"]) > 0
    assert nothing_stored(app) and upload_record(app, upload_id)["claimToken"] is None
    assert proxy.stats().get("error copy", 0) >= 1
    proxy.rule = None
    assert create(app, "partner", upload_id).status_code == 202


def test_a_create_whose_first_step_cannot_be_queued_gives_the_upload_back(app, monkeypatch):
    from lib.services import get_services, reset_services

    upload_id = upload(app, "partner", CONVERSATIONS)
    monkeypatch.setenv("QSTASH_URL", "http://127.0.0.1:9")  # nothing listens: the publish fails
    reset_services()

    failed = create(app, "partner", upload_id)

    assert failed.status_code == 503 and failed.json()["error"]["code"] == "QUEUE_UNAVAILABLE"
    assert nothing_stored(app)
    assert not [k for k in app.s3.storage(app.bucket).keys("") if "/batches/" in k]  # its source copy removed
    assert upload_record(app, upload_id)["claimToken"] is None
    monkeypatch.setenv("QSTASH_URL", app.qstash.url)
    reset_services()
    app.services = get_services()
    assert create(app, "partner", upload_id).status_code == 202


def test_a_claim_left_by_a_create_that_died_is_taken_again_after_claim_seconds(app):
    upload_id = upload(app, "partner", CONVERSATIONS)
    key = upload_record(app, upload_id)["_id"]
    records, now = app.services.files.records, app.services.now()
    assert records.claim_upload(key, previous=None, token="d" * 32, now=now)  # a create that then died

    assert_already_used(create(app, "partner", upload_id))  # still held: it may be running
    app.services.store.storage_objects.update_one(
        {"_id": key}, {"$set": {"claimedAt": now - timedelta(seconds=CLAIM_SECONDS + 1)}})

    assert create(app, "partner", upload_id).status_code == 202
    assert len(batches_of(app)) == 1


def test_a_create_that_lost_its_claim_cannot_make_a_batch(app):
    upload_id = upload(app, "partner", CONVERSATIONS)
    files = app.services.files
    record = files.records.upload(upload_id)
    assert files.records.claim_upload(record.key, previous=None, token="e" * 32, now=app.services.now())
    stale = type(record)(**{**record.__dict__, "claim_token": "f" * 32})  # another create's, taken over since

    with pytest.raises(Conflict) as refused:
        files.adopt_upload(stale, ObjectId(), "csv", len(CONVERSATIONS))

    assert refused.value.code == "UPLOAD_ALREADY_USED"
    assert not [k for k in app.s3.storage(app.bucket).keys("") if "/batches/" in k]
