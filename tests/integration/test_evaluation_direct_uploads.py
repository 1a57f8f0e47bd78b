"""Evaluation runs on a big upload's path (issue 12): a baseline joined chunk by chunk by the
ingestion steps, and the rows' warnings kept on the batch. Route files over HTTP, the QStash
dev server delivering the steps, SecantusDB and moto's S3 server: nothing is patched."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from bson import ObjectId

from tests.integration.test_storage_uploads import create, upload, wait_until
from tests.support.live_app import LiveApp

pytest_plugins = ["tests.support.s3_fixtures"]

TOPICS = ["renew my passport", "apply for employment insurance", "find my tax slips", "change my address"]


def questions_file(rows: int = 41, *, changed: int | None = None) -> bytes:
    """Conversations spread over the file (so a chunk's rows are not contiguous), and one row the rules refuse.

    `changed`: that row's question differs (the file is no longer the baseline's).
    """
    lines = ["chatId,QUESTION,ticket"]
    for n in range(rows):
        question = f"Question {n}: how do I {TOPICS[n % len(TOPICS)]}?"
        if n == changed:
            question = f"Question {n}: something else entirely: fishing licences?"
        if n == 7:
            question = "hi"  # refused at upload (short query): its analysis is made at upload
        lines.append(f"{'c' + str(n % 5) if n % 3 else ''},{question},T-{n}")
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def app(live_s3: LiveApp, monkeypatch: pytest.MonkeyPatch) -> LiveApp:
    """Small ingestion windows and chunks, so that the rows take several steps and chunks."""
    from lib.services import get_services, reset_services

    monkeypatch.setenv("INGEST_WINDOW_ROWS", "20")
    monkeypatch.setenv("INGEST_CHUNK_ROWS", "8")
    reset_services()
    live_s3.services = get_services()
    return live_s3


def snapshot(app: LiveApp, batch_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A batch and its items exactly as stored (to show that a baseline is never written)."""
    store = app.services.store
    return (store.batches.find_one({"_id": ObjectId(batch_id)}),
            sorted(store.batch_items.find({"batchId": ObjectId(batch_id)}), key=lambda d: d["rowIndex"]))


def finished_baseline(app: LiveApp, content: bytes) -> str:
    """A baseline sent whole, with two trials: its file row i is at rowIndex 2i."""
    created = app.upload("partner", content, trials="2", analyzers="refusal")
    assert created.status_code == 202, created.text
    batch_id = created.json()["batchId"]
    assert app.wait_final("partner", batch_id, timeout=120)["status"] == "processed"
    return batch_id


def test_a_direct_upload_compared_with_a_baseline_gets_its_answers_chunk_by_chunk_and_leaves_it_as_it_was(app):
    content = questions_file()
    baseline_id = finished_baseline(app, content)
    before = snapshot(app, baseline_id)

    created = create(app, "partner", upload(app, "partner", content), baselineBatchId=baseline_id,
                     analyzers="refusal,similar-answer")

    assert created.status_code == 202, created.text
    batch_id = created.json()["batchId"]
    final = app.wait_final("partner", batch_id, timeout=180)
    assert (final["status"], final["processedItems"], final["blockedItems"], final["baselineBatchId"]) == (
        "processed", 40, 1, baseline_id)
    _, base_items = before
    base_by_number = {d["rowNumber"]: d for d in base_items if d["trial"] == 1}
    docs = sorted(app.services.store.batch_items.find({"batchId": ObjectId(batch_id)}), key=lambda d: d["rowIndex"])
    assert len(docs) == 41
    for doc in docs:
        base = base_by_number[doc["rowNumber"]]
        assert doc["question"] == base["question"]
        assert doc["references"]["baselineStatus"] == base["status"]
        assert doc["references"].get("baselineAnswer") == base.get("answer"), doc["rowNumber"]
        if doc["status"] == "succeeded":
            assert doc["references"]["baselineAnswer"] and doc["analysis"]["similarity"]["label"] in (
                "same-meaning", "meaning-drift")
    refused = next(d for d in docs if d["status"] == "blocked")
    # The row refused at upload was analysed with the baseline's status in its references.
    assert refused["analysis"]["refusal"]["detected"] is True and refused["references"]["baselineStatus"] == "blocked"
    summary = requests.get(f"{app.base_url}/api/batch/summary", params={"batchId": batch_id},
                           headers=app.headers("partner"), timeout=10).json()
    assert summary["baseline"]["same"] + summary["baseline"]["drift"] == 40
    assert summary["baseline"]["same"] == 40  # the offline pipeline answers the same question the same way
    assert snapshot(app, baseline_id) == before  # read, never written


def test_a_direct_upload_with_another_number_of_questions_than_its_baseline_is_refused_at_create(app):
    baseline_id = finished_baseline(app, questions_file())

    refused = create(app, "partner", upload(app, "partner", questions_file(40)), baselineBatchId=baseline_id)

    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["code"] == "BASELINE_MISMATCH"
    assert (error["details"]["rowCount"], error["details"]["baselineRowCount"]) == (40, 41)
    store = app.services.store
    assert store.batches.count_documents({}) == 1  # the baseline only
    # The refused upload left nothing in storage either.
    assert not [k for k in app.s3.storage(app.bucket).keys("") if "/uploads/" in k]


def test_a_question_that_differs_in_a_later_chunk_fails_the_whole_ingestion_and_leaves_nothing(app):
    baseline_id = finished_baseline(app, questions_file())
    before = snapshot(app, baseline_id)

    created = create(app, "partner", upload(app, "partner", questions_file(changed=38)), baselineBatchId=baseline_id)

    assert created.status_code == 202, created.text  # the counts agree: only the rows can tell
    batch_id = created.json()["batchId"]
    store = app.services.store
    wait_until(lambda: store.batches.count_documents({"_id": ObjectId(batch_id)}) == 0, timeout=120)
    assert store.batch_items.count_documents({"batchId": ObjectId(batch_id)}) == 0
    gone = requests.get(f"{app.base_url}/api/batch/status", params={"batchId": batch_id},
                        headers=app.headers("partner"), timeout=10)
    assert (gone.status_code, gone.json()["error"]["code"]) == (404, "BATCH_NOT_FOUND")
    assert not [k for k in app.s3.storage(app.bucket).keys("") if batch_id in k]
    assert snapshot(app, baseline_id) == before


def test_a_direct_upload_keeps_its_first_100_row_warnings_and_counts_them_all(app):
    app.qstash.set_faults({"paused": True})  # the rows are not run: only their ingestion matters here
    lines = ["QUESTION,expectedOutcome"]
    for n in range(130):
        outcome = "maybe" if n % 13 else ("block" if n % 2 else "answer")
        lines.append(f"Question {n}: how do I renew my passport?,{outcome}")
    expected_rows = [n + 2 for n in range(130) if n % 13]  # the sheet's line numbers (the header is line 1)

    created = create(app, "partner", upload(app, "partner", ("\n".join(lines) + "\n").encode()))
    assert created.status_code == 202, created.text
    batch_id = created.json()["batchId"]
    app.qstash.set_faults({"paused": False})
    wait_until(lambda: app.status("partner", batch_id)["status"] != "ingesting", timeout=120)
    app.cancel("partner", batch_id)

    status = app.status("partner", batch_id)
    assert status["ingestedItems"] == 130
    assert status["warningCount"] == len(expected_rows) == 120
    assert len(status["warnings"]) == 100
    assert [w["rowNumber"] for w in status["warnings"]] == expected_rows[:100]
    assert {w["code"] for w in status["warnings"]} == {"INVALID_EXPECTED_OUTCOME"}
    assert "'maybe'" in status["warnings"][0]["message"]
    listed = requests.get(f"{app.base_url}/api/batch/list", headers=app.headers("partner"), timeout=10).json()
    assert "warnings" not in listed[0]  # the list stays small
    docs = app.services.store.batch_items.find({"batchId": ObjectId(batch_id)}, {"references": 1, "rowNumber": 1})
    labelled = {d["rowNumber"]: d["references"].get("expectedOutcome") for d in docs}
    assert [n for n, outcome in sorted(labelled.items()) if outcome is None] == expected_rows
