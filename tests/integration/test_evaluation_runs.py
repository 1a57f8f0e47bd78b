"""Evaluation runs end to end on the real engine: trials, analyzers in the row's work, cost and budget,
retry in place, summary and compare (issue 12). Steps are driven by hand with the recording queue."""

from __future__ import annotations

import threading
import time

import pytest
from bson import ObjectId

from lib.errors import BadRequest, Conflict, NotFound
from lib.queue import StepMessage
from lib.services import Services, build_services
from lib.settings import Settings
from lib.upload import UploadedForm
from tests.support.provider_stub import Fault
from tests.support.recording_queue import RecordingQueue, drain

QUESTIONS = ["How do I renew my passport?", "How do I apply for employment insurance?",
             "Where do I find my tax slips?"]


def make_services(env: dict[str, str], queue: RecordingQueue, **changes: str) -> Services:
    return build_services(Settings.from_env({**env, **changes}), queue=queue)


def upload(services: Services, user, csv_text: str, **fields: str) -> dict:
    form = UploadedForm(fields={"batchName": "eval", "lang": "en", "aiProvider": "openai", "searchProvider": "offline",
                                **fields}, file_name="q.csv", file_data=csv_text.encode())
    return services.batches.create(user, form)


def questions_csv(questions: list[str] = QUESTIONS, *, reference: bool = False) -> str:
    if not reference:
        return "QUESTION\n" + "\n".join(questions) + "\n"
    return "QUESTION,referenceAnswer\n" + "\n".join(f'"{q}","You can do it online on canada.ca."'
                                                     for q in questions) + "\n"


def items(services: Services, batch_id: str) -> list[dict]:
    return sorted(services.store.batch_items.find({"batchId": ObjectId(batch_id)}), key=lambda d: d["rowIndex"])


def run(services: Services, queue: RecordingQueue, batch_id: str) -> None:
    drain(services, queue)
    assert services.batch_store.get(batch_id).status.is_final


def test_each_trial_is_an_item_of_its_own_in_a_chat_of_its_own_and_the_counters_count_items(env, queue, users):
    services = make_services(env, queue)
    created = upload(services, users["partner"], questions_csv(), trials="3")
    assert created["totalItems"] == 9

    run(services, queue, created["batchId"])

    batch = services.batch_store.get(created["batchId"])
    assert (batch.status.value, batch.total_items, batch.processed_items, batch.trials) == ("processed", 9, 9, 3)
    docs = items(services, created["batchId"])
    assert [(d["rowNumber"], d["trial"]) for d in docs] == [(n, t) for n in (2, 3, 4) for t in (1, 2, 3)]
    assert len({d["chatId"] for d in docs}) == 9 and len({d["chatKey"] for d in docs}) == 9
    assert services.store.interactions.count_documents({}) == 9
    # Every trial's chat holds only its own turn: no history is shared between trials.
    assert all(services.store.interactions.count_documents({"chatId": d["chatId"]}) == 1 for d in docs)
    _, columns, rows = services.batches.results(users["partner"], created["batchId"])
    rows = list(rows)
    assert columns.index("trial") == columns.index("chatId") + 1
    assert [(r["rowNumber"], r["trial"]) for r in rows] == [(n, t) for n in (2, 3, 4) for t in (1, 2, 3)]


def test_analyzers_run_in_the_rows_work_and_their_columns_follow_the_answer(env, queue, users, stub):
    services = make_services(env, queue)
    created = upload(services, users["partner"], questions_csv(reference=True), analyzers="refusal,similar-answer")

    run(services, queue, created["batchId"])

    judge_calls = [r for r in stub.requests if r.stage == "analyzer.similar-answer"]
    assert len(judge_calls) == 3
    _, columns, rows = services.batches.results(users["partner"], created["batchId"])
    rows = list(rows)
    assert columns.index("similarity.label") > columns.index("interactionId")
    assert columns.index("similarity.error") < columns.index("expert.totalScore")
    assert all(r["similarity.label"] in ("same-meaning", "meaning-drift") for r in rows)
    assert all(r["refusal.detected"] is False for r in rows)
    doc = items(services, created["batchId"])[0]
    assert doc["tokens"]["byStage"]["analyzer.similar-answer"]["inputTokens"] > 0
    assert "referenceAnswer" in columns  # the file's own column comes back as it was


def test_a_row_whose_step_ended_before_recording_it_is_analysed_and_counted_once(env, queue, users, stub):
    # An 8 s function: the step stops waiting 3 s in, while the row's judge takes 6 s: the row's
    # work (answer and analysis) is done but never recorded by that step, as if it had crashed.
    services = make_services(env, queue, FUNCTION_MAX_DURATION="8", STEP_SAFETY_SECONDS="3",
                             PROVIDER_READ_TIMEOUT="10")
    slow = {"left": 1}

    def judge_once_slow(request):
        if request.stage == "analyzer.similar-answer" and slow["left"]:
            slow["left"] -= 1
            return Fault.delay(6.0)
        return None

    stub.rule(judge_once_slow)
    created = upload(services, users["partner"], questions_csv(QUESTIONS[:1], reference=True),
                     analyzers="similar-answer")
    batch_id = created["batchId"]
    queue.take()
    step = threading.Thread(target=services.engine.run_step, args=(StepMessage(batch_id, 0),))
    step.start()
    step.join(timeout=15)
    assert items(services, batch_id)[0]["status"] == "processing"  # ran, not recorded
    time.sleep(4.0)  # the left-behind thread finishes its analysis, and records nothing
    assert items(services, batch_id)[0].get("analysis") is None

    drain(services, queue)  # the next step runs the row again; a redelivery of step 0 finds nothing to do
    services.engine.run_step(StepMessage(batch_id, 0))

    batch = services.batch_store.get(batch_id)
    doc = items(services, batch_id)[0]
    assert batch.status.value == "processed" and batch.processed_items == 1
    assert doc["analysis"]["similarity"]["label"] in ("same-meaning", "meaning-drift")
    assert services.store.interactions.count_documents({}) == 1
    # The batch counted the tokens of the one recorded run of the row, not of both runs.
    assert batch.input_tokens == doc["cost"]["inputTokens"] and batch.output_tokens == doc["cost"]["outputTokens"]


def test_the_estimated_cost_is_the_stub_logs_tokens_times_the_price_table(env, queue, users, stub):
    services = make_services(env, queue, MODEL_PRICES='{"gpt-4.1-mini": {"input": 0.4, "output": 1.6}}')
    created = upload(services, users["partner"], questions_csv(reference=True), trials="2",
                     analyzers="similar-answer,expert-scorer")

    run(services, queue, created["batchId"])

    batch = services.batch_store.get(created["batchId"])
    calls = [r for r in stub.requests if r.reply_usage is not None]
    prompt = sum(r.reply_usage["prompt_tokens"] for r in calls)
    completion = sum(r.reply_usage["completion_tokens"] for r in calls)
    expected = (prompt * 0.4 + completion * 1.6) / 1_000_000
    assert {r.reply_model for r in calls} == {"gpt-4.1-mini"}
    assert (batch.input_tokens, batch.output_tokens) == (prompt, completion)
    assert expected > 0 and abs(batch.estimated_cost_usd - expected) <= 0.01 * expected
    status = services.batches.status(users["partner"], created["batchId"])
    assert status["estimatedCostUsd"] == pytest.approx(expected, rel=0.01)
    assert services.batches.options()["prices"]["gpt-4.1-mini"] == {"input": 0.4, "output": 1.6}


def test_a_budget_stops_claiming_rows_and_the_rest_end_cancelled_with_budget_exceeded(env, queue, users):
    # One conversation at a time: the budget is read before each claim; the first row alone exceeds it.
    services = make_services(env, queue, MODEL_PRICES='{"gpt-4.1-mini": {"input": 1000, "output": 1000}}')
    created = upload(services, users["partner"], questions_csv(), budgetUsd="0.01", concurrency="1")

    run(services, queue, created["batchId"])

    batch = services.batch_store.get(created["batchId"])
    docs = items(services, created["batchId"])
    assert batch.status.value == "cancelled" and batch.stop_reason == "BUDGET_EXCEEDED"
    assert batch.estimated_cost_usd >= 0.01
    assert batch.processed_items >= 1 and batch.cancelled_items >= 1
    assert batch.processed_items + batch.cancelled_items == 3
    assert all(d["error"]["code"] == "BUDGET_EXCEEDED" for d in docs if d["status"] == "cancelled")
    _, _, rows = services.batches.results(users["partner"], created["batchId"])
    assert all(r["error"].startswith("BUDGET_EXCEEDED: ") for r in rows if r["status"] == "cancelled")
    status = services.batches.status(users["partner"], created["batchId"])
    assert status["stopReason"] == "BUDGET_EXCEEDED" and status["budgetUsd"] == 0.01
    with pytest.raises(Conflict) as refused:
        services.batches.retry(users["partner"], {"batchId": created["batchId"], "statuses": ["cancelled"]})
    assert refused.value.code == "BUDGET_EXCEEDED"


def test_failed_rows_retried_after_a_provider_outage_end_processed_with_exact_counters(env, queue, users, stub):
    services = make_services(env, queue, MAX_ATTEMPTS="1")
    stub.rule(lambda r: Fault.status(503) if r.stage == "answer" and "employment" in r.question else None)
    created = upload(services, users["partner"], questions_csv())
    batch_id = created["batchId"]
    run(services, queue, batch_id)
    batch = services.batch_store.get(batch_id)
    assert (batch.status.value, batch.processed_items, batch.failed_items) == ("completed_with_errors", 2, 1)
    answered = {d["_id"]: (d["interactionId"], d["finishedAt"]) for d in items(services, batch_id)
                if d["status"] == "succeeded"}

    stub.rule(None)  # the provider is healthy again
    answer = services.batches.retry(users["partner"], {"batchId": batch_id})
    assert answer["rows"] == 1 and answer["run"] == 2
    reopened = services.batch_store.get(batch_id)
    assert (reopened.status.value, reopened.processed_items, reopened.failed_items) == ("queued", 2, 0)
    run(services, queue, batch_id)

    batch = services.batch_store.get(batch_id)
    docs = items(services, batch_id)
    assert (batch.status.value, batch.processed_items, batch.failed_items) == ("processed", 3, 0)
    assert {d["_id"]: (d["interactionId"], d["finishedAt"]) for d in docs if d["_id"] in answered} == answered
    retried = next(d for d in docs if "employment" in d["question"])
    assert retried["history"][0]["status"] == "failed" and retried["history"][0]["error"]["code"]
    assert retried["attempts"] == 2
    assert services.store.interactions.count_documents({}) == 3
    assert len(services.store.batches.find_one({"_id": ObjectId(batch_id)})["interactions"]) == 3
    runs = services.batches.status(users["partner"], batch_id)["runs"]
    assert [(r["run"], r["rows"], r["statuses"]) for r in runs] == [(1, 3, None), (2, 1, ["failed"])]
    assert all(r["completedAt"] is not None for r in runs)


def test_retry_refuses_an_active_batch_bad_statuses_and_a_batch_with_nothing_to_retry(env, queue, users):
    services = make_services(env, queue)
    batch_id = upload(services, users["partner"], questions_csv(QUESTIONS[:1]))["batchId"]
    with pytest.raises(Conflict) as active:
        services.batches.retry(users["partner"], {"batchId": batch_id})
    assert active.value.code == "BATCH_ACTIVE"
    run(services, queue, batch_id)
    for body in ({"batchId": batch_id, "statuses": ["succeeded"]}, {"batchId": batch_id, "statuses": "failed"},
                 {"batchId": batch_id, "statuses": []}):
        with pytest.raises(BadRequest) as bad:
            services.batches.retry(users["partner"], body)
        assert bad.value.code == "INVALID_STATUSES"
    with pytest.raises(Conflict) as nothing:
        services.batches.retry(users["partner"], {"batchId": batch_id, "statuses": ["failed", "cancelled"]})
    assert nothing.value.code == "NOTHING_TO_RETRY"
    with pytest.raises(NotFound):
        services.batches.retry(users["partner2"], {"batchId": batch_id})


def test_a_summary_and_a_comparison_of_two_batches_of_the_same_file(env, queue, users):
    services = make_services(env, queue)
    text = "QUESTION,BLOCK\n" + "\n".join(f'"{q}",answer' for q in QUESTIONS) + "\nhi,block\n"
    first = upload(services, users["partner"], text, analyzers="refusal")["batchId"]
    run(services, queue, first)
    second = upload(services, users["partner"], text, analyzers="refusal,similar-answer", trials="2",
                    baselineBatchId=first)["batchId"]
    run(services, queue, second)

    summary = services.batches.evaluation_summary(users["partner"], second)
    assert summary["byStatus"] == {"succeeded": 6, "blocked": 2}
    assert sum(summary["blockedByStage"].values()) == 2
    assert summary["analyzers"]["refusal"]["passRate"] == 1.0
    assert summary["blockDetection"]["precision"] == 1.0 and summary["blockDetection"]["recall"] == 1.0
    assert summary["latencyMs"]["p50"] is not None and summary["latencyMs"]["p95"] >= summary["latencyMs"]["p50"]
    assert summary["stability"]["questions"] == 4
    assert summary["stability"]["allPass"] + summary["stability"]["mixed"] + summary["stability"]["allFail"] == 4
    base = summary["baseline"]
    assert base["batchId"] == first and base["same"] + base["drift"] == 6
    assert services.batches.evaluation_summary(users["partner"], second) == summary  # kept once final

    _, columns, rows = services.batches.compare(users["partner"], second, first)
    assert [(r["rowNumber"], r["trial"]) for r in rows] == [(n, t) for n in (2, 3, 4, 5) for t in (1, 2)]
    answered = [r for r in rows if r["status"] == "succeeded"]
    assert all(r["baselineAnswer"] and r["answer"] and r["similarity.label"] for r in answered)
    assert "similarity.winner" in columns


def test_a_baseline_must_be_the_callers_own_finished_batch_with_the_same_questions(env, queue, users):
    services = make_services(env, queue)
    first = upload(services, users["partner"], questions_csv())["batchId"]
    with pytest.raises(Conflict) as running:
        upload(services, users["partner"], questions_csv(), baselineBatchId=first)
    assert running.value.code == "BASELINE_NOT_FINAL"
    run(services, queue, first)
    with pytest.raises(NotFound) as other:
        upload(services, users["partner2"], questions_csv(), baselineBatchId=first)
    assert other.value.code == "BASELINE_NOT_FOUND"
    with pytest.raises(BadRequest) as mismatch:
        upload(services, users["partner"], questions_csv(QUESTIONS[::-1]), baselineBatchId=first)
    assert mismatch.value.code == "BASELINE_MISMATCH" and mismatch.value.details["rowNumbers"] == [2, 4]
    # The baseline is read, never written.
    assert services.store.batches.count_documents({}) == 1


@pytest.mark.parametrize(("field", "value", "code"), [
    ("trials", "0", "INVALID_TRIALS"), ("trials", "9", "INVALID_TRIALS"), ("trials", "two", "INVALID_TRIALS"),
    ("trials", "1.5", "INVALID_TRIALS"), ("analyzers", "refusal,vibes", "INVALID_ANALYZERS"),
    ("budgetUsd", "0", "INVALID_BUDGET"), ("budgetUsd", "-3", "INVALID_BUDGET"), ("budgetUsd", "abc", "INVALID_BUDGET"),
    ("budgetUsd", "nan", "INVALID_BUDGET"), ("budgetUsd", "1e309", "INVALID_BUDGET"),
    ("baselineBatchId", "not-an-id", "INVALID_BASELINE_ID"),
])
def test_every_bad_evaluation_field_is_a_400_naming_it(env, queue, users, field, value, code):
    services = make_services(env, queue)
    with pytest.raises(BadRequest) as refused:
        upload(services, users["partner"], questions_csv(), **{field: value})
    assert refused.value.code == code and refused.value.details["field"] == field
    assert services.store.batches.count_documents({}) == 0


def test_over_http_two_runs_of_one_file_are_summarised_compared_and_their_fields_checked(live):
    import csv
    import io

    import requests

    text = questions_csv(reference=True).encode()
    first = live.upload("partner", text, analyzers="refusal").json()["batchId"]
    live.wait_final("partner", first)
    created = live.upload("partner", text, trials=2, analyzers="similar-answer,expert-scorer", baselineBatchId=first)
    assert created.status_code == 202 and created.json()["totalItems"] == 6
    second = created.json()["batchId"]
    status = live.wait_final("partner", second)
    assert (status["trials"], status["analyzers"], status["baselineBatchId"]) == (
        2, ["similar-answer", "expert-scorer"], first)
    assert status["processedItems"] == 6 and status["estimatedCostUsd"] == 0  # the offline model costs nothing
    url, headers = live.base_url + "/api/batch/", live.headers("partner")

    summary = requests.get(url + "summary", params={"batchId": second}, headers=headers, timeout=10)
    compared = requests.get(url + "compare", params={"batchId": second, "baselineBatchId": first, "format": "csv"},
                            headers=headers, timeout=10)
    others = requests.get(url + "summary", params={"batchId": second}, headers=live.headers("partner2"), timeout=10)
    retried = requests.post(url + "retry", json={"batchId": second}, headers=headers, timeout=10)
    bad = requests.post(url + "retry", json={"batchId": second, "statuses": ["succeeded"]}, headers=headers,
                        timeout=10)

    assert summary.status_code == 200 and summary.json()["baseline"]["same"] + summary.json()["baseline"]["drift"] == 6
    assert summary.json()["analyzers"]["expert-scorer"]["passed"] + summary.json()["analyzers"]["expert-scorer"][
        "failed"] + summary.json()["analyzers"]["expert-scorer"]["notApplicable"] == 6
    assert compared.status_code == 200 and "attachment" in compared.headers["Content-Disposition"]
    table = list(csv.DictReader(io.StringIO(compared.content.decode("utf-8-sig"))))
    assert len(table) == 6 and all(r["baselineAnswer"] and r["answer"] for r in table)
    assert (others.status_code, others.json()["error"]["code"]) == (404, "BATCH_NOT_FOUND")
    assert (retried.status_code, retried.json()["error"]["code"]) == (409, "NOTHING_TO_RETRY")
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "INVALID_STATUSES")
    refused = live.upload("partner", text, trials=12)
    assert (refused.status_code, refused.json()["error"]["code"]) == (400, "INVALID_TRIALS")
    results = live.results("partner", second, "xlsx")
    assert results.status_code == 200


def test_a_row_the_model_refuses_in_the_step_is_blocked_and_gets_the_rules_only_analyzers(env, queue, users, stub):
    services = make_services(env, queue)
    stub.rule(lambda r: Fault.refused() if r.stage == "answer" else None)
    text = "QUESTION,expectedOutcome\n" + f'"{QUESTIONS[0]}",answer\n'
    batch_id = upload(services, users["partner"], text, analyzers="refusal,similar-answer")["batchId"]

    run(services, queue, batch_id)

    doc = items(services, batch_id)[0]
    assert doc["status"] == "blocked", doc.get("error")
    assert doc["analysis"]["refusal"] == {"detected": True, "expected": False, "match": False, "flagged": True,
                                          "error": None}
    assert "similarity" not in doc["analysis"]  # no judge for a refused row
    assert not [r for r in stub.requests if r.stage == "analyzer.similar-answer"]
