"""Batch endpoints: ownership, signatures, bad uploads, exports, sweep."""

from __future__ import annotations

import csv
import io
import json
import time
import zipfile

import openpyxl
import pytest
import requests
from bson import ObjectId

from devstack.qstash_signing import sign_delivery
from lib.settings import DEV_QSTASH_CURRENT_SIGNING_KEY, DEV_QSTASH_NEXT_SIGNING_KEY
from tests.support.live_app import LiveApp

SIMPLE = b"QUESTION,ticket\nHow do I renew my passport?,T-1\nWhat is the GST credit?,T-2\n"


def nothing_stored(live: LiveApp) -> bool:
    store = live.services.store
    return store.batches.count_documents({}) == 0 and store.batch_items.count_documents({}) == 0


# --- ownership ----------------------------------------------------------------------------


def test_another_partner_gets_404_on_status_results_and_cancel_and_admin_can_read(live):
    live.qstash.set_faults({"paused": True})  # keep it queued
    batch_id = live.upload("partner", SIMPLE).json()["batchId"]

    for call in (lambda u: requests.get(f"{live.base_url}/api/batch/status", params={"batchId": batch_id},
                                        headers=live.headers(u), timeout=10),
                 lambda u: live.results(u, batch_id),
                 lambda u: live.cancel(u, batch_id)):
        response = call("partner2")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "BATCH_NOT_FOUND"
    assert live.status("admin", batch_id)["batchId"] == batch_id
    assert live.results("admin", batch_id).status_code == 200
    assert live.cancel("admin", batch_id).status_code == 200


def test_the_list_shows_only_ones_own_batches_newest_first(live):
    live.qstash.set_faults({"paused": True})
    first = live.upload("partner", SIMPLE, batchName="first").json()["batchId"]
    second = live.upload("partner", SIMPLE, batchName="second").json()["batchId"]
    live.upload("partner2", SIMPLE, batchName="theirs")

    listed = requests.get(f"{live.base_url}/api/batch/list", headers=live.headers("partner"), timeout=10).json()

    assert [b["batchId"] for b in listed] == [second, first]
    assert {"status", "totalItems", "processedItems", "percentComplete", "etaSeconds"} <= set(listed[0])


def test_the_options_name_the_configured_providers_defaults_and_limits_and_need_a_batch_role(live):
    response = requests.get(f"{live.base_url}/api/batch/options", headers=live.headers("partner"), timeout=10)

    assert response.status_code == 200
    options = response.json()
    assert options["aiProviders"] == ["offline", "openai", "azure", "anthropic"]  # the stub serves them all
    assert options["searchProviders"] == ["offline", "google", "canadaca"]
    assert options["defaults"] == {"aiProvider": "offline", "searchProvider": "offline", "concurrency": 4}
    settings = live.services.settings
    assert options["limits"] == {"maxConcurrency": 32, "maxBatchRows": settings.max_batch_rows,
                                 "maxUploadBytes": settings.max_body_bytes, "maxNameChars": 200,
                                 # no object storage configured here (tests/integration/test_storage_*.py have it)
                                 "maxUploadBytesDirect": 0, "maxBatchRowsDirect": 0,
                                 "exportLinkRows": settings.export_link_rows}
    assert options["directUploads"] is False and options["exportLinks"] is False
    for headers, status in (({}, 401), (live.headers("user"), 403)):
        refused = requests.get(f"{live.base_url}/api/batch/options", headers=headers, timeout=10)
        assert refused.status_code == status
    # What the options offer, an upload may use: the highest concurrency and every provider.
    for ai, search in zip(options["aiProviders"], options["searchProviders"] + ["offline"], strict=False):
        created = live.upload("partner", SIMPLE, aiProvider=ai, searchProvider=search,
                              concurrency=str(options["limits"]["maxConcurrency"]))
        assert created.status_code == 202, created.text
        assert live.wait_final("partner", created.json()["batchId"])["status"] == "processed"


def test_a_user_role_may_not_use_batches(live):
    response = live.upload("user", SIMPLE)
    assert response.status_code == 403
    assert nothing_stored(live)


@pytest.mark.parametrize("batch_id", ["not-an-id", '{"$ne": null}', "", "0" * 24])
def test_malformed_or_unknown_batch_ids_get_a_4xx(live, batch_id):
    response = requests.get(f"{live.base_url}/api/batch/status", params={"batchId": batch_id},
                            headers=live.headers("partner"), timeout=10)
    assert response.status_code in (400, 404)
    assert response.json()["error"]["code"] in ("INVALID_BATCH_ID", "MISSING_BATCH_ID", "BATCH_NOT_FOUND")


def test_cancel_with_an_operator_shaped_id_is_refused(live):
    response = requests.post(f"{live.base_url}/api/batch/cancel", json={"batchId": {"$ne": None}},
                             headers=live.headers("partner"), timeout=10)
    assert response.status_code == 400


# --- signatures ---------------------------------------------------------------------------


def _step_url(live: LiveApp) -> str:
    return f"{live.base_url}/api/batch/process-step"


@pytest.mark.parametrize("kind", ["missing", "forged", "expired", "other-url", "other-body"])
def test_a_step_without_a_valid_signature_gets_401_and_runs_no_row(live, kind):
    live.qstash.set_faults({"paused": True})
    batch_id = live.upload("partner", SIMPLE).json()["batchId"]
    body = json.dumps({"batchId": batch_id, "seq": 0}).encode()
    url = _step_url(live)
    now = time.time()
    signature = {
        "missing": None,
        "forged": sign_delivery(body, url, "sig_notOurKeyAtAll", now),
        "expired": sign_delivery(body, url, DEV_QSTASH_CURRENT_SIGNING_KEY, now - 3600),
        "other-url": sign_delivery(body, "https://elsewhere.example/api/batch/process-step",
                                   DEV_QSTASH_CURRENT_SIGNING_KEY, now),
        "other-body": sign_delivery(b'{"batchId":"x","seq":0}', url, DEV_QSTASH_CURRENT_SIGNING_KEY, now),
    }[kind]
    headers = {"Content-Type": "application/json"}
    if signature:
        headers["Upstash-Signature"] = signature

    response = requests.post(url, data=body, headers=headers, timeout=10)

    assert response.status_code == 401
    items = list(live.services.store.batch_items.find({"batchId": ObjectId(batch_id)}))
    assert all(i["status"] == "pending" and i["attempts"] == 0 for i in items)


def test_a_step_signed_with_the_next_key_runs(live):
    live.qstash.set_faults({"paused": True})
    batch_id = live.upload("partner", SIMPLE).json()["batchId"]
    body = json.dumps({"batchId": batch_id, "seq": 0}).encode()
    signature = sign_delivery(body, _step_url(live), DEV_QSTASH_NEXT_SIGNING_KEY, time.time())

    response = requests.post(_step_url(live), data=body, timeout=30,
                             headers={"Content-Type": "application/json", "Upstash-Signature": signature})

    assert response.status_code == 200 and response.json()["action"] == "finalised"
    assert live.status("partner", batch_id)["status"] == "processed"


# --- bad uploads --------------------------------------------------------------------------


def _xlsx_bytes(rows) -> bytes:
    workbook = openpyxl.Workbook()
    for row in rows:
        workbook.active.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _corrupt_workbook() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<nonsense/>")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("content", "filename", "fields", "status", "code"),
    [
        (b"", "q.csv", {}, 400, "EMPTY_FILE"),
        (b"QUESTION,URL\n", "q.csv", {}, 400, "NO_DATA_ROWS"),
        (b"name,email\nJo,jo@x.ca\n", "q.csv", {}, 400, "MISSING_QUESTION_COLUMN"),
        (bytes(range(256)) * 8, "q.csv", {}, 400, "UNREADABLE_FILE"),
        (b"QUESTION\nnot really a workbook\n", "q.xlsx", {}, 400, "UNREADABLE_FILE"),
        (_corrupt_workbook(), "q.xlsx", {}, 400, "UNREADABLE_FILE"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 512, "q.xlsx", {}, 415, "ENCRYPTED_OR_LEGACY_WORKBOOK"),
        (b"QUESTION\n" + b"a question?\n" * 101, "q.csv", {}, 400, "TOO_MANY_ROWS"),
        (SIMPLE, "q.csv", {"aiProvider": "gpt-99"}, 400, "UNKNOWN_PROVIDER"),
        (SIMPLE, "q.csv", {"searchProvider": "bing"}, 400, "UNKNOWN_PROVIDER"),
        (SIMPLE, "q.csv", {"lang": "de"}, 400, "INVALID_LANG"),
        (SIMPLE, "q.csv", {"batchName": ""}, 400, "INVALID_BATCH_NAME"),
        (SIMPLE, "q.csv", {"batchName": "x" * 201}, 400, "INVALID_BATCH_NAME"),
        (SIMPLE, "q.csv", {"concurrency": "99"}, 400, "INVALID_FIELD"),
        (SIMPLE, "q.csv", {"concurrency": "\u00b2"}, 400, "INVALID_FIELD"),  # a digit int() refuses
        (SIMPLE, "q.csv", {"concurrency": "\u0663"}, 400, "INVALID_FIELD"),  # Arabic-Indic three
    ],
    ids=["empty", "header-only", "no-question-column", "binary-garbage", "xlsx-not-zip", "corrupt-workbook",
         "encrypted-workbook", "too-many-rows", "unknown-ai", "unknown-search", "bad-lang", "empty-name", "long-name",
         "bad-concurrency", "superscript-concurrency", "arabic-indic-concurrency"],
)
def test_a_bad_upload_gets_its_4xx_code_and_leaves_nothing_behind(live, content, filename, fields,
                                                                  status, code):
    response = live.upload("partner", content, filename, **fields)

    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert nothing_stored(live)


def test_an_xlsx_upload_runs_like_a_csv(live):
    content = _xlsx_bytes([["Question", "Notes"], ["How do I renew my passport?", "=SUM(1,2)"]])
    batch_id = live.upload("partner", content, "questions.xlsx").json()["batchId"]
    assert live.wait_final("partner", batch_id)["status"] == "processed"


def test_an_oversized_body_gets_413_and_leaves_nothing_behind(live):
    content = b"QUESTION\n" + b"x" * (4_718_592 + 10)
    response = live.upload("partner", content)
    assert response.status_code == 413
    assert nothing_stored(live)


def test_a_missing_file_field_is_a_400(live):
    response = requests.post(f"{live.base_url}/api/batch/create", data={"batchName": "x", "lang": "en"},
                             files={"other": ("x.txt", b"hello")}, headers=live.headers("partner"), timeout=10)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "MISSING_FILE"


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (b"--abc\r\nContent-Disposition: form-data; name=\"file\"; filename=\"q.csv\"\r\n\r\nQUESTION\nhi\n",
         "multipart/form-data; boundary=abc", 400, "MALFORMED_MULTIPART"),
        (b"garbage", "multipart/form-data", 400, "MALFORMED_MULTIPART"),
        (b'{"file": "QUESTION\\nhi"}', "application/json", 415, "UNSUPPORTED_CONTENT_TYPE"),
    ],
    ids=["unterminated", "no-boundary", "json-instead"],
)
def test_malformed_multipart_or_a_wrong_content_type_is_refused(live, body, content_type, status, code):
    response = requests.post(f"{live.base_url}/api/batch/create", data=body,
                             headers={**live.headers("partner"), "Content-Type": content_type}, timeout=10)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert nothing_stored(live)


def test_a_failed_publish_removes_the_batch_and_answers_503(live):
    live.qstash.stop()  # the queue is down
    response = live.upload("partner", SIMPLE)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "QUEUE_UNAVAILABLE"
    assert nothing_stored(live)


# --- exports ------------------------------------------------------------------------------


DANGEROUS = (
    "QUESTION,note\n"
    '"=HYPERLINK(""http://evil"")",  =cmd\n'
    "+1 question?,@SUM(A1)\n"
    "-2 question?,\tTAB\n"
)


def test_csv_and_xlsx_results_neutralise_formulas_and_keep_row_order(live):
    batch_id = live.upload("partner", DANGEROUS.encode(), batchName='evil"\r\nSet-Cookie: x=1').json()["batchId"]
    live.wait_final("partner", batch_id)

    csv_response = live.results("partner", batch_id, "csv")
    xlsx_response = live.results("partner", batch_id, "xlsx")

    disposition = csv_response.headers["Content-Disposition"]
    assert "\r" not in disposition and "\n" not in disposition and "Set-Cookie" not in csv_response.headers
    assert disposition.startswith("attachment;")
    rows = list(csv.reader(io.StringIO(csv_response.content.decode("utf-8-sig"))))
    workbook = openpyxl.load_workbook(io.BytesIO(xlsx_response.content), read_only=True)
    sheet_rows = [[c if c is not None else "" for c in row] for row in workbook.active.iter_rows(values_only=True)]
    for table in (rows, sheet_rows):
        assert table[0][:3] == ["rowNumber", "QUESTION", "note"]
        cells = [str(c) for row in table for c in row]
        assert not any(c.lstrip().startswith(("=", "+", "-", "@")) for c in cells)
        assert not any(c.startswith(("\t", "\r")) for c in cells)
        assert [str(r[0]) for r in table[1:]] == ["2", "3", "4"]
        # The URL in the first question is personal information to the rule-based check: it is masked.
        assert [r[1] for r in table[1:]] == ["'=HYPERLINK(\"XXX\")", "'+1 question?", "'-2 question?"]
    assert xlsx_response.headers["Content-Type"].startswith("application/vnd.openxmlformats")


def test_unknown_result_formats_are_a_400(live):
    batch_id = live.upload("partner", SIMPLE).json()["batchId"]
    assert live.results("partner", batch_id, "pdf").status_code == 400


# --- sweep --------------------------------------------------------------------------------


def test_the_sweep_needs_the_cron_secret(live, monkeypatch):
    assert requests.get(f"{live.base_url}/api/batch/sweep", timeout=10).status_code == 401
    response = requests.get(f"{live.base_url}/api/batch/sweep", headers={"Authorization": "Bearer wrong"}, timeout=10)
    assert response.status_code == 401


def test_the_sweep_rekicks_a_batch_whose_step_message_was_lost(live):
    live.qstash.set_faults({"paused": True})
    batch_id = live.upload("partner", SIMPLE).json()["batchId"]
    live.qstash.reset()  # the first step message is lost
    live.qstash.set_faults({"paused": False})
    store = live.services.store
    store.batches.update_one({"_id": ObjectId(batch_id)}, {"$set": {"updatedAt": store.batches.find_one(
        {"_id": ObjectId(batch_id)})["createdAt"].replace(year=2020)}})

    from lib.sweep import sweep

    result = sweep(live.services)

    assert result["kicked"] == [batch_id]
    assert live.wait_final("partner", batch_id)["status"] == "processed"


# --- per-user limits ----------------------------------------------------------------------


def test_more_active_batches_than_allowed_get_429_with_retry_after(live):
    live.qstash.set_faults({"paused": True})  # nothing finishes
    limit = live.services.settings.max_active_batches
    for _ in range(limit):
        assert live.upload("partner", SIMPLE).status_code == 202

    response = live.upload("partner", SIMPLE)

    assert response.status_code == 429
    assert response.json()["error"]["code"] == "TOO_MANY_ACTIVE_BATCHES"
    assert int(response.headers["Retry-After"]) > 0
    assert live.upload("partner2", SIMPLE).status_code == 202  # the limit is per user
    assert live.services.store.batches.count_documents({}) == limit + 1


def test_uploads_faster_than_the_rate_limit_get_429_with_retry_after(live):
    live.qstash.set_faults({"paused": True})
    rate = live.services.settings.create_rate_per_minute
    if time.gmtime().tm_sec >= 55:  # stay inside one fixed window
        time.sleep(61 - time.gmtime().tm_sec)
    codes = [live.upload("partner2", b"").status_code for _ in range(rate)]  # refused files still count
    response = live.upload("partner2", SIMPLE)
    assert set(codes) == {400}
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "CREATE_RATE_LIMITED"
    assert 1 <= int(response.headers["Retry-After"]) <= 60
