"""The storage endpoints under property-based fuzzing: upload-url, create with uploadId, source, results by link.

Every answer is 2xx or a 4xx with the coded error envelope, never a 5xx, and another
partner's upload or batch never answers anything but 404. In-process routes (werkzeug's
test client) on SecantusDB and moto's S3 server over HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from hypothesis import example, given
from hypothesis import strategies as st
from werkzeug.test import Client

from devstack.qstash_server import QStashDevServer
from lib.upload import UploadedForm
from tests.integration.conftest import bearer
from tests.support.fuzz_checks import assert_answered_with_a_code, code_of
from tests.support.hypothesis_profiles import fuzz_settings
from tests.support.s3_server import S3Server

pytest_plugins = ["tests.support.s3_fixtures"]  # moto's server and the live app with storage

CSV = b"QUESTION,ticket\nHow do I renew my passport?,T-1\n"
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats(allow_nan=False)
    | st.text(max_size=300),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=6,
)
NAMES = st.sampled_from(["q.csv", "Q.XLSX", "q.txt", "", " ", ".csv", "../../x.csv", "a/b.xlsx", "x" * 300 + ".csv",
                         "été.csv", "q.csv\x00", "q.xlsm"]) | st.text(max_size=40)
TYPES = st.sampled_from(["text/csv", "text/csv; charset=utf-8", "TEXT/CSV", "application/pdf", "",
                         "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"]) | st.text(max_size=30)


@pytest.fixture
def paused_qstash() -> Iterator[QStashDevServer]:
    with QStashDevServer(port=0, faults={"paused": True}) as server:
        yield server


@pytest.fixture
def env(env: dict[str, str], s3_server: S3Server, s3_bucket: str, paused_qstash: QStashDevServer) -> dict[str, str]:
    return {**env, **s3_server.env(s3_bucket), "QSTASH_URL": paused_qstash.url, "CREATE_RATE_PER_MINUTE": "10000",
            "MAX_ACTIVE_BATCHES_PER_USER": "1000"}


@pytest.fixture
def world(installed, users, queue) -> dict[str, Any]:
    from lib import routes

    form = installed.batches.upload_url(users["partner2"], {"fileName": "q.csv", "size": len(CSV),
                                                            "contentType": "text/csv"})
    requests.post(form["url"], data=form["fields"], files={"file": ("q.csv", CSV)}, timeout=10).raise_for_status()
    fields = {"batchName": "theirs", "lang": "en", "aiProvider": "offline", "searchProvider": "offline"}
    other_batch = installed.batches.create(users["partner2"], UploadedForm(fields, "q.csv", CSV))["batchId"]
    clients = {name: Client(getattr(routes, name)) for name in ("upload_url", "create_batch", "batch_source",
                                                                "batch_results")}
    return {"clients": clients, "headers": bearer(users["partner"].id), "other_upload": form["uploadId"],
            "other_batch": other_batch}


@fuzz_settings(60)
@given(body=st.fixed_dictionaries({}, optional={"fileName": NAMES | JSON_VALUES, "size": JSON_VALUES | st.integers(),
                                                "contentType": TYPES | JSON_VALUES}))
@example(body={"fileName": "q.csv", "size": 10, "contentType": "text/csv"})
@example(body={"fileName": "q.csv", "size": 2**64, "contentType": "text/csv"})
@example(body={"fileName": "q.csv", "size": 1.5, "contentType": "text/csv"})
def test_upload_url_answers_any_body_with_a_form_or_a_coded_4xx(world, body):
    response = world["clients"]["upload_url"].post("/api/batch/upload-url", json=body, headers=world["headers"])

    assert_answered_with_a_code(response, 200)
    if response.status_code == 200:
        assert set(response.get_json()) == {"uploadId", "url", "fields", "expiresAt", "maxBytes"}


@fuzz_settings(40)
@given(upload_id=st.sampled_from(["<other>", "0" * 32, "", " ", "g" * 32, "A" * 32, "<other>\n"]) | st.text(max_size=60))
@example(upload_id="<other>")
def test_create_with_any_upload_id_is_a_coded_4xx_and_anothers_upload_is_404(world, upload_id):
    upload_id = upload_id.replace("<other>", world["other_upload"])
    form = {"batchName": "x", "lang": "en", "uploadId": upload_id}

    response = world["clients"]["create_batch"].post("/api/batch/create", data=form, headers=world["headers"],
                                                     content_type="multipart/form-data")

    assert_answered_with_a_code(response)
    if upload_id.strip() == world["other_upload"]:
        assert code_of(response) == "UPLOAD_NOT_FOUND"


@fuzz_settings(40)
@given(batch_id=st.sampled_from(["<other>", "", "0" * 24, "<other>x"]) | st.text(max_size=30),
       fmt=st.sampled_from(["csv", "xlsx", "json", "pdf", ""]), delivery=st.sampled_from(["url", "URL", "", "x"]))
@example(batch_id="<other>", fmt="csv", delivery="url")
def test_source_and_results_by_link_never_answer_for_anothers_batch(world, batch_id, fmt, delivery):
    batch_id = batch_id.replace("<other>", world["other_batch"])

    source = world["clients"]["batch_source"].get("/api/batch/source", query_string={"batchId": batch_id},
                                                  headers=world["headers"])
    linked = world["clients"]["batch_results"].get(
        "/api/batch/results", query_string={"batchId": batch_id, "format": fmt, "delivery": delivery},
        headers=world["headers"])

    for response in (source, linked):
        assert_answered_with_a_code(response)
        if batch_id == world["other_batch"]:
            assert response.status_code in (400, 404)
