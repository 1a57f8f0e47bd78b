"""Batches end to end in-process: upload -> QStash dev server -> process-step -> results."""

from __future__ import annotations

import csv
import io
import threading
import time
from datetime import datetime, timezone

import pytest
from bson import ObjectId

from tests.support.live_app import LiveApp
from tests.support.provider_stub import Fault


def read_sample(samples_dir, name: str) -> bytes:
    return (samples_dir / name).read_bytes()


def items_of(live: LiveApp, batch_id: str) -> list[dict]:
    return sorted(live.services.store.batch_items.find({"batchId": ObjectId(batch_id)}), key=lambda d: d["rowIndex"])


def input_rows(data: bytes, delimiter: str = ",") -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig")), delimiter=delimiter))


@pytest.mark.parametrize(
    ("sample", "lang", "delimiter", "extra_column"),
    [
        ("questions-en.csv", "en", ",", None),
        ("questions-fr.csv", "fr", ";", "Référence"),
        ("conversations.csv", "en", ",", "ticket"),
    ],
)
def test_each_sample_file_runs_to_processed_with_results_in_row_order(live, samples_dir, sample, lang, delimiter,
                                                                     extra_column):
    data = read_sample(samples_dir, sample)
    created = live.upload("partner", data, sample, lang=lang)
    assert created.status_code == 202, created.text
    batch_id = created.json()["batchId"]

    final = live.wait_final("partner", batch_id)
    results = live.results("partner", batch_id).json()

    expected = input_rows(data, delimiter)
    assert final["status"] == "processed"
    assert final["processedItems"] == final["totalItems"] == len(expected)
    assert final["failedItems"] == 0 and final["percentComplete"] == 100.0
    assert len(results["items"]) == len(expected)
    for row, original in zip(results["items"], expected, strict=True):
        for column, value in original.items():
            assert row[column] == value
        assert row["status"] == "succeeded"
        assert row["answer"].startswith("[Réponse hors ligne]" if lang == "fr" else "[Offline answer]")
        assert row["citationUrl"].startswith(f"https://www.canada.ca/{lang}")
    if extra_column:
        assert extra_column in results["columns"]


def test_conversation_turns_see_earlier_turns_and_never_overlap_at_concurrency_8(live, samples_dir, stub):
    stub.latency = 0.15
    data = read_sample(samples_dir, "conversations.csv")
    batch_id = live.upload("partner", data, aiProvider="openai", concurrency=8).json()["batchId"]

    assert live.wait_final("partner", batch_id)["status"] == "processed"

    rows = input_rows(data)
    by_chat: dict[str, list[str]] = {}
    for row in rows:
        if row["chatId"]:
            by_chat.setdefault(row["chatId"], []).append(row["REDACTEDQUESTION"])
    ai_calls = {r.question: r.json["messages"] for r in stub.requests if r.api == "openai"}
    for questions in by_chat.values():
        for turn, question in enumerate(questions):
            history = [m["content"] for m in ai_calls[question][1:-1] if m["role"] == "user"]
            assert history == questions[:turn], f"turn {turn} of {questions}"
    items = items_of(live, batch_id)
    for label in by_chat:
        turns = [i for i in items if i["chatLabel"] == label]
        for earlier, later in zip(turns, turns[1:]):
            assert earlier["finishedAt"] <= later["startedAt"]
    assert stub.max_in_flight > 1  # the conversations did run side by side


def test_a_permanent_failure_fails_its_row_only_and_a_429_then_success_row_succeeds(live, samples_dir, stub):
    seen_429 = threading.Event()

    def faults(request):
        if request.api != "openai":
            return None
        if "quit my job" in request.question:
            return Fault.status(400, body={"error": {"message": "content policy"}})
        if "SIN" in request.question and not seen_429.is_set():
            seen_429.set()
            return Fault.status(429, retry_after=1)
        return None

    stub.rule(faults)
    batch_id = live.upload("partner", read_sample(samples_dir, "questions-en.csv"), aiProvider="openai").json()["batchId"]

    final = live.wait_final("partner", batch_id)
    items = items_of(live, batch_id)

    failed = [i for i in items if i["status"] == "failed"]
    assert final["status"] == "completed_with_errors"
    assert [i["question"] for i in failed] == ["Can I get EI if I quit my job?"]
    assert failed[0]["error"]["code"] == "PROVIDER_REJECTED" and failed[0]["error"]["retryable"] is False
    assert seen_429.is_set()
    assert next(i for i in items if "SIN" in i["question"])["status"] == "succeeded"
    assert final["failedItems"] == 1 and final["processedItems"] == len(items) - 1
    assert live.results("partner", batch_id).json()["items"][3]["error"].startswith("PROVIDER_REJECTED")


def test_retryable_failures_are_retried_until_attempts_run_out(live, stub, monkeypatch):
    stub.rule(lambda r: Fault.status(503) if r.api == "openai" and "always down" in r.question else None)
    data = b"QUESTION\nis the service always down please?\nhow do I renew a passport?\n"
    batch_id = live.upload("partner", data, aiProvider="openai").json()["batchId"]

    final = live.wait_final("partner", batch_id, timeout=60)
    items = items_of(live, batch_id)

    assert final["status"] == "completed_with_errors"
    assert items[0]["status"] == "failed" and items[0]["attempts"] == 3
    assert items[0]["error"]["retryable"] is True
    assert items[1]["status"] == "succeeded"


def test_with_every_message_delivered_twice_each_row_has_exactly_one_interaction(live, samples_dir, stub):
    live.qstash.set_faults({"duplicate": True})
    stub.latency = 0.05
    batch_id = live.upload("partner", read_sample(samples_dir, "questions-en.csv"), aiProvider="openai",
                           concurrency=4).json()["batchId"]

    final = live.wait_final("partner", batch_id)
    time.sleep(0.5)  # let the duplicate deliveries land too
    items = items_of(live, batch_id)
    interactions = live.services.store.interactions
    batch_doc = live.services.store.batches.find_one({"_id": ObjectId(batch_id)})

    assert final["status"] == "processed"
    assert live.qstash.stats()["duplicated"] >= 1
    for item in items:
        assert interactions.count_documents({"_id": item["interactionId"]}) == 1
    assert interactions.count_documents({"chatId": {"$in": [i["chatId"] for i in items]}}) == len(items)
    assert sorted(batch_doc["interactions"]) == sorted(i["interactionId"] for i in items)
    assert live.status("partner", batch_id)["processedItems"] == len(items)


def test_cancel_mid_batch_stops_new_rows_records_those_in_flight_and_keeps_counters_consistent(live, stub):
    stub.latency = 0.4
    data = ("QUESTION\n" + "".join(f"Question number {n} about passports?\n" for n in range(40))).encode()
    batch_id = live.upload("partner", data, aiProvider="openai", concurrency=2).json()["batchId"]
    deadline = time.monotonic() + 20
    while live.status("partner", batch_id)["processedItems"] < 2 and time.monotonic() < deadline:
        time.sleep(0.1)

    response = live.cancel("partner", batch_id)
    acknowledged = datetime.now(timezone.utc)
    assert response.status_code == 200 and response.json()["status"] == "cancelling"
    assert live.status("partner", batch_id)["status"] in ("cancelling", "cancelled")

    final = live.wait_final("partner", batch_id, timeout=30)  # rows in flight finish and are recorded
    items = items_of(live, batch_id)
    started = [i for i in items if i.get("startedAt")]
    assert final["status"] == "cancelled"
    assert all(i["startedAt"].replace(tzinfo=timezone.utc) <= acknowledged for i in started)
    assert all(i["status"] in ("succeeded", "failed", "cancelled") for i in items)
    assert final["processedItems"] == sum(i["status"] == "succeeded" for i in items)
    assert final["cancelledItems"] == sum(i["status"] == "cancelled" for i in items)
    assert final["processedItems"] + final["failedItems"] + final["cancelledItems"] == final["totalItems"]
    assert 2 <= final["processedItems"] < 40
    assert live.cancel("partner", batch_id).status_code == 409


def test_cancel_of_a_finished_batch_is_a_conflict(live, samples_dir):
    batch_id = live.upload("partner", read_sample(samples_dir, "questions-fr.csv"), lang="fr").json()["batchId"]
    live.wait_final("partner", batch_id)
    response = live.cancel("partner", batch_id)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "BATCH_FINISHED"


def test_results_are_readable_while_the_batch_runs(live, stub):
    stub.latency = 0.3
    data = ("QUESTION\n" + "".join(f"Question {n} about EI?\n" for n in range(12))).encode()
    batch_id = live.upload("partner", data, aiProvider="openai", concurrency=1).json()["batchId"]
    time.sleep(2.0)  # finished rows are recorded once a second

    partial = live.results("partner", batch_id).json()

    assert partial["status"] in ("queued", "processing")
    statuses = [row["status"] for row in partial["items"]]
    assert len(statuses) == 12 and "succeeded" in statuses and "pending" in statuses
    live.cancel("partner", batch_id)
