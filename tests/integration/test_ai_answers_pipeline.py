"""Batches sent to a deployed AI Answers (issue 15), against the stand-in over real HTTP.

The stand-in (tests/support/ai_answers_standin.py) speaks the chat endpoint as ai-answers.md §6
describes it; the batch service, its database and its engine are the real ones.
"""

from __future__ import annotations

import csv
import io
from collections import Counter

import pytest
from bson import ObjectId

from lib.queue import StepMessage
from lib.services import build_services
from lib.settings import Settings
from lib.upload import UploadedForm
from tests.support.ai_answers_standin import AIAnswersStandIn, Call, Fault
from tests.support.recording_queue import RecordingQueue, drain

CONVERSATIONS = [
    ("c1", "I want to apply for a Canadian passport for my child."),
    ("c1", "How long does it take?"),
    ("c1", "Can I pay online?"),
    ("", "How do I apply for EI regular benefits?"),
    ("c2", "Comment renouveler mon passeport?"),
    ("c2", "Combien ça coûte?"),
]


@pytest.fixture(params=["sse", "ndjson"])
def standin(request):
    with AIAnswersStandIn(framing=request.param, latency=0.02, keepalive=0.005) as server:
        yield server


@pytest.fixture
def env(env, standin):
    return {**env, "AI_ANSWERS_URL": standin.url, "FUNCTION_MAX_DURATION": "20", "STEP_SAFETY_SECONDS": "5"}


def file_of(rows) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["chatId", "QUESTION"])
    writer.writerows(rows)
    return out.getvalue().encode()


def create(services, user, rows, pipeline="ai-answers", **fields):
    form = UploadedForm(fields={"batchName": "upstream", "lang": "en", "pipeline": pipeline, **fields},
                        file_name="questions.csv", file_data=file_of(rows))
    return services.batches.create(user, form)["batchId"]


def items_of(services, batch_id):
    return sorted(services.store.batch_items.find({"batchId": ObjectId(batch_id)}), key=lambda d: d["rowIndex"])


def test_a_batch_of_conversations_is_answered_by_the_deployment_turn_by_turn(services, users, queue, standin):
    batch_id = create(services, users["partner"], CONVERSATIONS)
    drain(services, queue)

    batch = services.batch_store.get(batch_id)
    assert batch.status == "processed" and batch.processed_items == len(CONVERSATIONS)
    assert len(standin.calls) == len(CONVERSATIONS)
    by_question = {c.question: c.input for c in standin.calls}
    first, second, third = (by_question[q] for _, q in CONVERSATIONS[:3])
    assert "chatId" not in first and second["chatId"] == third["chatId"]  # the deployment issued the chat id
    assert second["historySignature"] and second["historySignature"] != third["historySignature"]
    assert [h["sender"] for h in third["conversationHistory"]] == ["user", "ai", "user", "ai"]
    cookies = {c.question: c.cookies for c in standin.calls}
    assert cookies[CONVERSATIONS[1][1]] == cookies[CONVERSATIONS[2][1]] != {}  # one session per conversation
    assert set(standin.persisted.values()) == {1}  # each row asked once


def test_each_row_records_its_request_and_the_conversations_state(services, users, queue, standin):
    batch_id = create(services, users["partner"], CONVERSATIONS[:2])
    drain(services, queue)

    first, second = items_of(services, batch_id)
    (attempt,) = second["upstreamAttempts"].values()
    assert attempt["attempt"] == 1 and attempt["outcome"] == "answered" and attempt["startedAt"]
    assert second["requestOpenUntil"] is None  # the request is over
    assert second["upstream"]["serverChatId"] == first["upstream"]["serverChatId"]
    assert len(second["upstream"]["history"]) == 4


def test_results_have_the_same_columns_as_a_local_batch(services, users, queue):
    upstream = create(services, users["partner"], CONVERSATIONS)
    local = create(services, users["partner"], CONVERSATIONS, pipeline="local", aiProvider="offline",
                   searchProvider="offline")
    drain(services, queue)

    _, up_columns, up_rows = services.batches.results(users["partner"], upstream)
    _, lo_columns, lo_rows = services.batches.results(users["partner"], local)
    up_rows, lo_rows = list(up_rows), list(lo_rows)
    assert up_columns == lo_columns
    assert [set(r) for r in up_rows] == [set(r) for r in lo_rows]
    row = up_rows[0]
    assert row["status"] == "succeeded" and row["answer"].startswith("Stand-in answer to:")
    assert row["sentence1"] and row["citationUrl"].startswith("https://www.canada.ca/")
    assert row["department"] == "ESDC" and row["questionLanguage"] == "eng" and row["model"] == "standin-model"
    interaction = services.store.interactions.find_one({"_id": ObjectId(row["interactionId"])})
    assert interaction["pipeline"] == "ai-answers" and interaction["upstream"]["chatId"]
    local_doc = services.store.interactions.find_one({"pipeline": "local"})
    assert set(local_doc) <= set(interaction)  # every field of the local record is there too


def test_a_step_that_dies_between_turns_lets_the_next_one_continue_the_conversation(env, users, standin):
    """Turn 2 is held back (its chat busy, with a long Retry-After); a new process picks it up from the items."""
    queue = RecordingQueue()
    services = build_services(Settings.from_env(env), queue=queue)
    standin.rule(lambda call: Fault.status(429, "chat_run_in_progress", retry_after=30)
                 if call.question == CONVERSATIONS[1][1] and _asked(standin, call) == 1 else None)
    batch_id = create(services, users["partner"], CONVERSATIONS[:3])
    services.engine.run_step(StepMessage(batch_id, 0))
    assert [i["status"] for i in items_of(services, batch_id)] == ["succeeded", "pending", "pending"]

    # A new process (nothing in memory), once the backoff is over.
    services.store.batch_items.update_many({"batchId": ObjectId(batch_id)}, {"$set": {"notBefore": None}})
    fresh_queue = RecordingQueue()
    fresh = build_services(Settings.from_env(env), queue=fresh_queue)
    fresh.engine.run_step(StepMessage(batch_id, 1))
    drain(fresh, fresh_queue)

    assert [i["status"] for i in items_of(fresh, batch_id)] == ["succeeded"] * 3
    accepted = [c for c in standin.calls if c.outcome == "result"]
    assert len(accepted) == 3 and len({c.input.get("chatId") for c in accepted[1:]}) == 1


def test_a_refused_signature_fails_the_rest_of_that_conversation_without_sending_it(services, users, queue,
                                                                                       standin):
    standin.rule(lambda call: Fault.status(403, "invalid_signature") if call.question == CONVERSATIONS[1][1]
                 else None)
    batch_id = create(services, users["partner"], CONVERSATIONS)
    drain(services, queue)

    items = {i["question"]: i for i in items_of(services, batch_id)}
    assert items[CONVERSATIONS[1][1]]["error"]["code"] == "AI_ANSWERS_CONVERSATION_REFUSED"
    assert items[CONVERSATIONS[2][1]]["error"]["code"] == "AI_ANSWERS_CONVERSATION_BROKEN"
    assert CONVERSATIONS[2][1] not in [c.question for c in standin.calls]
    assert items[CONVERSATIONS[4][1]]["status"] == "succeeded"  # other conversations go on
    assert services.batch_store.get(batch_id).status == "completed_with_errors"


def test_ai_answers_is_offered_and_accepted_only_when_the_deployment_is_configured(env, users):
    without = {k: v for k, v in env.items() if k != "AI_ANSWERS_URL"}
    plain = build_services(Settings.from_env(without), queue=RecordingQueue())
    configured = build_services(Settings.from_env(env), queue=RecordingQueue())

    assert plain.batches.options()["pipelines"] == ["local"]
    assert configured.batches.options()["pipelines"] == ["local", "ai-answers"]
    from lib.errors import BadRequest

    with pytest.raises(BadRequest) as refused:
        create(plain, users["partner"], CONVERSATIONS)
    assert refused.value.code == "PIPELINE_UNAVAILABLE" and refused.value.status == 400
    with pytest.raises(BadRequest) as unknown:
        create(configured, users["partner"], CONVERSATIONS, pipeline="remote")
    assert unknown.value.code == "INVALID_FIELD"


def test_the_deployments_token_is_sent_and_never_stored(env, users, standin, mongodb_uri):
    standin.token = "service-token-" + "s" * 20
    services = build_services(Settings.from_env({**env, "AI_ANSWERS_TOKEN": standin.token}), queue=RecordingQueue())
    batch_id = create(services, users["partner"], CONVERSATIONS[:1])
    drain(services, services.queue)

    assert services.batch_store.get(batch_id).processed_items == 1
    assert standin.calls[0].authorization == f"Bearer {standin.token}"
    assert standin.token not in repr(list(services.store.batch_items.find({}))) + repr(services.settings)


def _asked(standin: AIAnswersStandIn, call: Call) -> int:
    """How many times this row's question has reached the stand-in (this call included)."""
    return sum(1 for c in list(standin.calls) if c.input.get("userMessageId") == call.input.get("userMessageId"))


# --- the fault campaign: every fault kind in one batch, nothing lost, nothing asked twice -----------

FAULTS = {
    "drop before result": (Fault.drop_before_result(), "succeeded"),
    "drop after result": (Fault.drop_after_result(), "succeeded"),
    "rate limited": (Fault.status(429, "RATE_LIMITED", retry_after=1), "succeeded"),
    "chat busy": (Fault.status(429, "chat_run_in_progress", retry_after=1), "succeeded"),
    "server error": (Fault.status(503, "could_not_create_chat"), "succeeded"),
    "slow first byte": (Fault.slow_first_byte(0.5), "succeeded"),
    "malformed events": (Fault.malformed_events(), "succeeded"),
    "malformed result": (Fault.malformed_result(), "succeeded"),
    "short query": (Fault.error_event("ShortQueryValidation", "too short"), "blocked"),
    "graph error": (Fault.error_event("GraphError", "the graph failed"), "failed"),
}


def campaign_rows(repeat: int = 1):
    rows = []
    for n in range(repeat):
        for kind in FAULTS:
            rows.append(("", f"Question about {kind} number {n}, please explain the rules?"))
        rows.append((f"conv-{n}", f"Conversation {n} first question about benefits for seniors?"))
        rows.append((f"conv-{n}", f"Conversation {n} follow-up about drop before result?"))
        rows.append(("", f"My reference is PIIMARK please tell me about my file {n}?"))
    return rows


def campaign_rule(standin: AIAnswersStandIn):
    def rule(call: Call) -> Fault | None:
        if _asked(standin, call) > 1:
            return None  # the fault hits a row's first request only
        for kind, (fault, _) in FAULTS.items():
            if f"about {kind} " in call.question:
                return fault
        return None
    return rule


def test_every_fault_kind_in_one_batch_loses_and_duplicates_nothing(services, users, queue, standin):
    standin.rule(campaign_rule(standin))
    rows = campaign_rows()
    batch_id = create(services, users["partner"], rows, concurrency="16")
    drain(services, queue)

    items = items_of(services, batch_id)
    assert len(items) == len(rows) and all(i["status"] in ("succeeded", "blocked", "failed") for i in items)
    outcome = {i["question"]: i for i in items}
    for kind, (_, expected) in FAULTS.items():
        row = next(i for q, i in outcome.items() if f"about {kind} " in q)
        assert row["status"] == expected, (kind, row.get("error"))
    graph = next(i for q, i in outcome.items() if "about graph error " in q)
    assert graph["error"]["code"] == "AI_ANSWERS_ERROR" and "GraphError" in graph["error"]["message"]
    pii = next(i for i in items if "PIIMARK" in i["original"].get("QUESTION", "") or "XXX" in i["question"])
    assert pii["status"] == "blocked" and pii["blockedBy"] == "piStage1" and "PIIMARK" not in repr(pii)
    # Nothing duplicated: one item per row, one interaction per answered row, no answer recorded twice upstream.
    interactions = list(services.store.interactions.find({"chatId": {"$in": [i["chatId"] for i in items]}}))
    assert len(interactions) == sum(i["status"] == "succeeded" for i in items)
    assert len({d["_id"] for d in interactions}) == len(interactions)
    assert max(standin.persisted.values()) == 1
    retried = next(i for q, i in outcome.items() if "about drop before result " in q)
    assert [a["outcome"] for a in sorted(retried["upstreamAttempts"].values(), key=lambda a: a["attempt"])] == [
        "retry:AI_ANSWERS_NO_RESULT", "answered"]
    counts = Counter(i["status"] for i in items)
    batch = services.batch_store.get(batch_id)
    assert (batch.processed_items, batch.blocked_items, batch.failed_items) == (
        counts["succeeded"], counts["blocked"], counts["failed"])


def test_a_stream_that_never_answers_is_cut_at_the_steps_deadline_and_not_asked_again_in_that_step(
        services, users, queue, standin):
    standin.rule(lambda call: Fault.hang() if _asked(standin, call) == 1 else None)
    batch_id = create(services, users["partner"], CONVERSATIONS[3:4])
    services.engine.run_step(StepMessage(batch_id, 0))

    (item,) = items_of(services, batch_id)
    assert item["status"] == "pending" and item["error"]["code"] == "AI_ANSWERS_TIMEOUT"
    assert len(standin.calls) == 1  # not re-sent within the step
    (attempt,) = item["upstreamAttempts"].values()
    assert attempt["outcome"] == "retry:AI_ANSWERS_TIMEOUT"
    drain(services, queue)
    assert items_of(services, batch_id)[0]["status"] == "succeeded" and len(standin.calls) == 2


# --- a request that may still be running upstream is never sent again --------------------------------------


def test_an_orphan_whose_request_may_still_be_open_waits_for_that_requests_deadline(services, users, queue):
    from datetime import timedelta

    from lib.models import ItemStatus

    batch_id = create(services, users["partner"], CONVERSATIONS[3:4])
    (item,) = services.batch_store.items_with_status(ObjectId(batch_id), ItemStatus.PENDING)
    now = services.now()
    services.batch_store.claim(item.id, "dead-step", now, now + timedelta(seconds=60))
    services.store.batch_items.update_one({"_id": ObjectId(item.id)},
                                          {"$set": {"requestOpenUntil": now + timedelta(seconds=30)}})
    (orphan,) = services.batch_store.items_with_status(ObjectId(batch_id), ItemStatus.PROCESSING)

    assert services.batch_store.reset_orphans([orphan], "next-step", wait_until_closed=now) == 0
    assert services.batch_store.reset_orphans([orphan], "next-step",
                                              wait_until_closed=now + timedelta(seconds=31)) == 1
    assert services.batch_store.items_with_status(ObjectId(batch_id), ItemStatus.PENDING)[0].request_open_until is None


def test_a_step_leaves_an_open_request_alone_and_comes_back_when_it_is_over(services, users, queue, standin):
    from datetime import timedelta

    batch_id = create(services, users["partner"], CONVERSATIONS[3:4])
    now = services.now()
    item_id = items_of(services, batch_id)[0]["_id"]
    services.store.batch_items.update_one({"_id": item_id}, {"$set": {
        "status": "processing", "claimId": "dead-step", "attempts": 1, "leaseUntil": now + timedelta(seconds=60),
        "requestOpenUntil": now + timedelta(seconds=2)}})
    services.engine.run_step(StepMessage(batch_id, 0))

    assert standin.calls == [] and items_of(services, batch_id)[0]["status"] == "processing"
    assert 1.0 <= queue.messages[-1].delay_seconds <= 3.0  # the next step comes when the request is over
    drain(services, queue)
    assert items_of(services, batch_id)[0]["status"] == "succeeded" and len(standin.calls) == 1


def test_a_row_whose_claim_was_lost_sends_nothing(services, users, standin):
    from datetime import timedelta

    from lib.models import ItemStatus

    batch_id = create(services, users["partner"], CONVERSATIONS[3:4])
    (item,) = services.batch_store.items_with_status(ObjectId(batch_id), ItemStatus.PENDING)
    pipeline = services.engine.pipelines["ai-answers"]
    from lib.errors import UpstreamError

    with pytest.raises(UpstreamError) as lost:
        pipeline.process_row(item=item, batch=services.batch_store.get(batch_id), claim_id="not-mine", attempt=1,
                             answer_by=services.now() + timedelta(seconds=10), earlier_turns=())
    assert lost.value.code == "AI_ANSWERS_CLAIM_LOST" and standin.calls == []


def test_a_row_answered_before_its_finish_was_lost_is_answered_from_the_record_not_asked_again(
        services, users, queue, standin):
    batch_id = create(services, users["partner"], CONVERSATIONS[3:4])
    drain(services, queue)
    # As if the step had died after the answer was written and before the row's finish.
    services.store.batch_items.update_one({"batchId": ObjectId(batch_id)}, {"$set": {
        "status": "pending", "claimId": None}})
    services.store.batches.update_one({"_id": ObjectId(batch_id)}, {"$set": {"status": "processing"}})
    services.engine.run_step(StepMessage(batch_id, 9))
    drain(services, queue)

    assert items_of(services, batch_id)[0]["status"] == "succeeded"
    assert len(standin.calls) == 1 and services.store.interactions.count_documents({}) == 1


def test_a_batch_sent_over_http_shows_its_pipeline_and_the_local_columns(live, standin):
    content = file_of(CONVERSATIONS)
    upstream = live.upload("partner", content, pipeline="ai-answers")
    local = live.upload("partner", content)
    assert upstream.status_code == local.status_code == 202, upstream.text
    final = live.wait_final("partner", upstream.json()["batchId"])
    live.wait_final("partner", local.json()["batchId"])

    assert final["status"] == "processed" and final["pipeline"] == "ai-answers"
    up = live.results("partner", upstream.json()["batchId"]).json()
    lo = live.results("partner", local.json()["batchId"]).json()
    assert up["columns"] == lo["columns"] and [set(r) for r in up["items"]] == [set(r) for r in lo["items"]]
    options = live.services.batches.options()
    assert "ai-answers" in options["pipelines"]
