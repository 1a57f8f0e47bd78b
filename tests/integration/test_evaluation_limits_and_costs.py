"""Evaluation runs on the real engine (issue 12): a retry counts against its owner's active batches,
rows the pipeline refuses are priced by the stages and models that ran, and a file's row
warnings are kept with the batch. Steps are driven by hand with the recording queue."""

from __future__ import annotations

import pytest
from bson import ObjectId

from lib.errors import TooManyRequests
from tests.integration.test_evaluation_runs import QUESTIONS, items, make_services, questions_csv, run, upload
from tests.support.provider_stub import Fault


def test_a_retry_is_refused_with_429_while_its_owner_has_as_many_active_batches_as_allowed(env, queue, users, stub):
    services = make_services(env, queue, MAX_ATTEMPTS="1", MAX_ACTIVE_BATCHES_PER_USER="1")
    stub.rule(lambda r: Fault.status(503) if r.stage == "answer" and "employment" in r.question else None)
    first = upload(services, users["partner"], questions_csv())["batchId"]
    run(services, queue, first)
    stub.rule(None)
    assert services.batch_store.get(first).status.value == "completed_with_errors"
    second = upload(services, users["partner"], questions_csv(QUESTIONS[:1]))["batchId"]  # active: not run yet

    with pytest.raises(TooManyRequests) as limited:
        services.batches.retry(users["partner"], {"batchId": first})
    # An admin retrying it counts against the batch's owner, not against the admin.
    with pytest.raises(TooManyRequests):
        services.batches.retry(users["admin"], {"batchId": first})

    assert limited.value.code == "TOO_MANY_ACTIVE_BATCHES" and int(limited.value.headers["Retry-After"]) > 0
    batch = services.batch_store.get(first)
    assert (batch.status.value, batch.failed_items, len(batch.runs)) == ("completed_with_errors", 1, 0)
    assert [d["status"] for d in items(services, first)].count("failed") == 1  # nothing was requeued
    run(services, queue, second)  # once the other batch has finished, the retry goes ahead
    answer = services.batches.retry(users["partner"], {"batchId": first})
    assert (answer["run"], answer["rows"]) == (2, 1)
    run(services, queue, first)
    assert services.batch_store.get(first).status.value == "processed"


def test_a_retry_over_http_at_the_limit_is_a_429_with_retry_after(live, stub, monkeypatch):
    import requests

    from lib.services import get_services, reset_services

    monkeypatch.setenv("MAX_ACTIVE_BATCHES_PER_USER", "1")
    monkeypatch.setenv("MAX_ATTEMPTS", "1")
    reset_services()
    live.services = get_services()
    stub.rule(lambda r: Fault.status(503) if r.stage == "answer" else None)
    first = live.upload("partner", b"QUESTION\nHow do I renew my passport?\n", aiProvider="openai").json()["batchId"]
    assert live.wait_final("partner", first)["status"] == "completed_with_errors"
    stub.rule(None)
    live.qstash.set_faults({"paused": True})  # the second batch stays queued
    assert live.upload("partner", b"QUESTION\nWhere do I find my tax slips?\n").status_code == 202

    response = requests.post(f"{live.base_url}/api/batch/retry", json={"batchId": first},
                             headers=live.headers("partner"), timeout=10)

    assert response.status_code == 429
    assert response.json()["error"]["code"] == "TOO_MANY_ACTIVE_BATCHES"
    assert int(response.headers["Retry-After"]) > 0
    assert live.status("partner", first)["status"] == "completed_with_errors"


def test_a_row_the_pipeline_refuses_in_the_step_is_priced_by_the_stages_and_models_that_ran(env, queue, users, stub):
    # Stage 2 of personal information (a model call) refuses the question: the row's tokens are that
    # call's, counted once, itemised by stage with the model that answered, and priced by it.
    services = make_services(env, queue, MODEL_PRICES='{"gpt-4.1-mini": {"input": 0.4, "output": 1.6}}')
    text = questions_csv([QUESTIONS[0], "My case worker PIIMARK says I must renew my passport, how?"])
    batch_id = upload(services, users["partner"], text)["batchId"]

    run(services, queue, batch_id)

    refused = next(d for d in items(services, batch_id) if d["status"] == "blocked")
    assert refused["blockedBy"] == "piStage2"
    calls = [r for r in stub.requests if r.reply_usage is not None and "PIIMARK" in r.question]
    assert [r.stage for r in calls] == ["piStage2"]
    prompt, completion = calls[0].reply_usage["prompt_tokens"], calls[0].reply_usage["completion_tokens"]
    assert refused["tokens"]["byStage"] == {"piStage2": {"model": calls[0].reply_model, "inputTokens": prompt,
                                                         "outputTokens": completion}}
    assert (refused["tokens"]["input"], refused["tokens"]["output"]) == (prompt, completion)
    assert refused["cost"]["usd"] == pytest.approx((prompt * 0.4 + completion * 1.6) / 1_000_000, rel=1e-6)
    assert refused["cost"]["unpriced"] == []
    # The batch's totals are every call in the stub's own log, counted once.
    every = [r for r in stub.requests if r.reply_usage is not None]
    batch = services.batch_store.get(batch_id)
    assert (batch.input_tokens, batch.output_tokens) == (sum(r.reply_usage["prompt_tokens"] for r in every),
                                                         sum(r.reply_usage["completion_tokens"] for r in every))


def test_a_files_row_warnings_are_kept_with_the_batch_and_shown_in_its_status(env, queue, users):
    services = make_services(env, queue)
    text = "QUESTION,expectedOutcome\n" + "\n".join(
        f'"{q}",{outcome}' for q, outcome in zip(QUESTIONS, ("perhaps", "block", "later"), strict=True)) + "\n\n"

    created = upload(services, users["partner"], text)

    codes = [(w.get("code"), w.get("rowNumber")) for w in created["warnings"]]
    assert ("INVALID_EXPECTED_OUTCOME", 2) in codes and ("INVALID_EXPECTED_OUTCOME", 4) in codes
    status = services.batches.status(users["partner"], created["batchId"])
    assert status["warnings"] == created["warnings"]
    assert status["warningCount"] == len(created["warnings"])
    assert "warnings" not in services.batches.list(users["partner"])[0]


def test_finalisation_writes_the_spend_recounted_from_the_rows_when_the_live_totals_fell_short(env, queue, users,
                                                                                                stub):
    # The live totals grow in the flush's counter write, after the rows' own: a step that dies
    # between the two leaves rows recorded with their cost and the batch's totals short. The
    # database is put in that state by hand, then the batch's last run must write the sums.
    services = make_services(env, queue, MAX_ATTEMPTS="1")
    stub.rule(lambda r: Fault.status(503) if r.stage == "answer" and "employment" in r.question else None)
    batch_id = upload(services, users["partner"], questions_csv())["batchId"]
    run(services, queue, batch_id)
    stub.rule(None)
    services.store.batches.update_one({"_id": ObjectId(batch_id)},
                                      {"$set": {"inputTokens": 0, "outputTokens": 0, "estimatedCostUsd": 0.0}})
    services.batches.retry(users["partner"], {"batchId": batch_id})
    run(services, queue, batch_id)

    batch = services.batch_store.get(batch_id)
    rows = items(services, batch_id)
    assert batch.status.value == "processed" and all(d["status"] == "succeeded" for d in rows)
    assert batch.input_tokens == sum(d["cost"]["inputTokens"] for d in rows) > 0
    assert batch.output_tokens == sum(d["cost"]["outputTokens"] for d in rows) > 0
    assert batch.estimated_cost_usd == pytest.approx(sum(d["cost"]["usd"] for d in rows), abs=1e-6)
