"""Object storage away (moto's server stopped): a 503 with a code and Retry-After, nothing half made."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

from tests.integration.test_storage_uploads import CONVERSATIONS, ask_upload, create, nothing_stored, post_file, upload
from tests.support.live_app import LiveApp

pytest_plugins = ["tests.support.s3_fixtures"]  # moto's server and the live app with storage


@pytest.fixture
def app(live_s3: LiveApp) -> Iterator[LiveApp]:
    """The live app with storage; a test stops moto's server with `app.s3.stop()`, it is back after."""
    yield live_s3
    if not live_s3.s3.running:
        live_s3.s3.start()


def assert_unavailable(answer: requests.Response) -> None:
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"]["code"] == "STORAGE_UNAVAILABLE"
    assert int(answer.headers["Retry-After"]) > 0


def test_upload_url_with_storage_away_is_a_503_and_records_nothing(app):
    app.s3.stop()

    assert_unavailable(ask_upload(app, "partner", fileName="q.csv", size=100, contentType="text/csv"))
    assert app.services.store.storage_objects.count_documents({}) == 0


def test_a_multipart_create_with_storage_away_is_a_503_and_leaves_no_batch(app):
    app.s3.stop()

    assert_unavailable(app.upload("partner", CONVERSATIONS))
    assert nothing_stored(app)
    assert app.services.store.storage_objects.count_documents({}) == 0


def test_a_create_from_an_upload_with_storage_away_is_a_503_and_the_upload_works_once_it_is_back(app):
    upload_id = upload(app, "partner", CONVERSATIONS)
    app.s3.stop()

    assert_unavailable(create(app, "partner", upload_id))
    assert nothing_stored(app)
    app.s3.start()

    created = create(app, "partner", upload_id)
    assert created.status_code == 202
    assert app.wait_final("partner", created.json()["batchId"], timeout=120)["status"] == "processed"


def test_results_by_link_with_storage_away_are_a_503_and_the_direct_download_still_works(app):
    batch_id = app.upload("partner", CONVERSATIONS).json()["batchId"]
    app.wait_final("partner", batch_id, timeout=120)
    app.s3.stop()

    linked = requests.get(f"{app.base_url}/api/batch/results",
                          params={"batchId": batch_id, "format": "csv", "delivery": "url"},
                          headers=app.headers("partner"), timeout=30)

    assert_unavailable(linked)
    assert app.results("partner", batch_id, "csv").status_code == 200
    assert app.services.batch_store.get(batch_id).exports == {}


def test_a_source_link_with_storage_away_is_a_503(app):
    batch_id = app.upload("partner", CONVERSATIONS).json()["batchId"]
    app.s3.stop()

    assert_unavailable(requests.get(f"{app.base_url}/api/batch/source", params={"batchId": batch_id},
                                    headers=app.headers("partner"), timeout=10))


def test_an_ingestion_interrupted_by_storage_away_finishes_once_it_is_back(app):
    app.qstash.set_faults({"paused": True})
    batch_id = create(app, "partner", upload(app, "partner", CONVERSATIONS)).json()["batchId"]
    app.s3.stop()
    app.qstash.set_faults({"paused": False})  # its steps answer 503 and QStash delivers them again
    time.sleep(1.0)

    app.s3.start()

    final = app.wait_final("partner", batch_id, timeout=120)
    assert final["status"] == "processed" and final["processedItems"] == 60


def test_storage_away_while_the_file_is_posted_leaves_no_batch_and_the_same_upload_works_once_it_is_back(app):
    form = ask_upload(app, "partner", fileName="q.csv", size=len(CONVERSATIONS), contentType="text/csv").json()
    app.s3.stop()

    with pytest.raises(requests.ConnectionError):
        post_file(form, CONVERSATIONS)
    assert_unavailable(create(app, "partner", form["uploadId"]))
    app.s3.start()
    missing = create(app, "partner", form["uploadId"])  # storage is back, but the post never landed

    assert missing.status_code == 400 and missing.json()["error"]["code"] == "UPLOAD_MISSING"
    assert nothing_stored(app)
    assert post_file(form, CONVERSATIONS).status_code == 204  # the same form, posted again
    created = create(app, "partner", form["uploadId"])
    assert created.status_code == 202, created.text
    assert app.wait_final("partner", created.json()["batchId"], timeout=120)["status"] == "processed"
