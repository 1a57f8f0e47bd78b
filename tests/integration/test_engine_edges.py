"""The step engine's edge cases, driven step by step with a recording queue (the port's fake)."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from bson import ObjectId
from pymongo import MongoClient

from lib.errors import UpstreamError
from lib.queue import StepMessage
from lib.services import Services, build_services
from lib.settings import Settings
from lib.upload import UploadedForm
from tests.support.command_log import CommandLog
from tests.support.provider_stub import Fault
from tests.support.recording_queue import RecordingQueue, drain


def make_services(env: dict[str, str], queue: RecordingQueue, **changes: str) -> Services:
    return build_services(Settings.from_env({**env, **changes}), queue=queue)


def create(services: Services, user, questions: list[str], **fields: str) -> str:
    content = ("QUESTION\n" + "\n".join(questions) + "\n").encode()
    form = UploadedForm(fields={"batchName": "edge", "lang": "en", "aiProvider": "openai", "searchProvider": "offline",
                                **fields}, file_name="q.csv", file_data=content)
    return services.batches.create(user, form)["batchId"]


def item_docs(services: Services, batch_id: str) -> list[dict]:
    return sorted(services.store.batch_items.find({"batchId": ObjectId(batch_id)}), key=lambda d: d["rowIndex"])


def test_a_row_left_in_flight_when_a_cancelling_batchs_step_ran_out_of_time_is_cancelled_as_the_step_ends(
        env, queue, users, stub):
    # An 8 s function: the step stops waiting for rows 3 s in; the one answer takes 6 s.
    services = make_services(env, queue, FUNCTION_MAX_DURATION="8", STEP_SAFETY_SECONDS="3",
                             PROVIDER_READ_TIMEOUT="10")
    stub.rule(lambda r: Fault.delay(6.0) if r.stage == "answer" else None)
    batch_id = create(services, users["partner"], ["A slow question about passports?"])
    queue.take()
    step = threading.Thread(target=services.engine.run_step, args=(StepMessage(batch_id, 0),))
    step.start()
    time.sleep(1.0)

    assert services.batches.cancel(users["partner"], batch_id)["status"] == "cancelling"
    step.join(timeout=10)  # returns at its deadline, the row's answer still on its way
    # That step has recorded all it ever will: the row is cancelled, and the batch with it.
    batch = services.batch_store.get(batch_id)
    assert item_docs(services, batch_id)[0]["status"] == "cancelled"
    assert batch.status.value == "cancelled" and batch.cancelled_items == 1 and batch.processed_items == 0
    assert batch.completed_at is not None
    time.sleep(4.0)  # the left-behind thread gets its answer...
    assert services.store.interactions.count_documents({}) == 0  # ...and records nothing
    assert item_docs(services, batch_id)[0]["status"] == "cancelled", item_docs(services, batch_id)[0]


def test_a_cancelled_batchs_row_whose_step_died_is_cancelled_by_the_next_step(env, queue, users):
    services = make_services(env, queue)
    batch_id = create(services, users["partner"], ["How do I renew my passport?", "How do I apply for EI?"])
    queue.take()
    oid = ObjectId(batch_id)
    past = datetime.now(timezone.utc) - timedelta(seconds=5)
    services.store.batch_items.update_one({"batchId": oid, "rowIndex": 0},
                                          {"$set": {"status": "processing", "claimId": "dead", "leaseUntil": past}})
    services.batches.cancel(users["partner"], batch_id)
    assert services.batch_store.get(batch_id).completed_at is None  # a row is still in flight

    drain(services, queue)

    batch = services.batch_store.get(batch_id)
    assert [d["status"] for d in item_docs(services, batch_id)] == ["cancelled", "cancelled"]
    assert batch.cancelled_items == 2 and batch.completed_at is not None


def test_an_answer_that_arrives_after_the_callers_deadline_is_not_recorded(services, users):
    with pytest.raises(UpstreamError) as info:
        services.chat.process_message(
            chat_id=None, user_message="How do I renew my passport?", lang="en", selected_ai="openai",
            selected_search="offline", referring_url=None, user=users["partner"], override_user_id=None,
            interaction_id=str(ObjectId()), answer_by=datetime.now(timezone.utc) - timedelta(seconds=1),
        )
    assert info.value.code == "ANSWER_TOO_LATE" and info.value.retryable
    assert services.store.interactions.count_documents({}) == 0


def test_rows_held_back_by_our_own_provider_gate_spend_no_attempt(env, queue, users, stub):
    services = make_services(env, queue, PROVIDER_LIMITS="openai=1", PROVIDER_WAIT_SECONDS="0.2", MAX_ATTEMPTS="1")
    stub.latency = 0.5
    batch_id = create(services, users["partner"], [f"Question {n} about EI?" for n in range(6)], concurrency="4")

    drain(services, queue)

    items = item_docs(services, batch_id)
    assert [i["status"] for i in items] == ["succeeded"] * 6
    assert all(i["attempts"] == 1 for i in items)
    assert services.batch_store.get(batch_id).status.value == "processed"
    assert stub.max_in_flight == 1


def test_a_retryable_failure_waits_out_its_backoff_in_a_later_step(env, queue, users, stub):
    services = make_services(env, queue, FUNCTION_MAX_DURATION="6", STEP_SAFETY_SECONDS="4.5")
    stub.enqueue(Fault.status(429, retry_after=30))  # longer than the step: the row is rescheduled
    batch_id = create(services, users["partner"], ["Rate limited question?"])
    queue.take()

    services.engine.run_step(StepMessage(batch_id, 0))

    item = item_docs(services, batch_id)[0]
    follow_up = queue.take()
    assert item["status"] == "pending" and item["attempts"] == 1 and item["error"]["code"] == "PROVIDER_RATE_LIMITED"
    assert len(follow_up) == 1 and follow_up[0].delay_seconds >= 20


def test_a_conversations_follow_ups_in_one_step_reuse_its_history_and_a_failed_turn_is_left_out(env, queue, users,
                                                                                               stub):
    commands = CommandLog()
    client = MongoClient(env["MONGODB_URI"], tz_aware=True, event_listeners=[commands])
    services = build_services(Settings.from_env(env), queue=queue, client=client)
    turns = [f"Turn {n} about my pension?" for n in range(1, 6)]
    stub.rule(lambda request: Fault.status(400) if request.question == turns[1] else None)
    content = ("chatId,QUESTION\n" + "".join(f"c1,{t}\n" for t in turns)).encode()
    form = UploadedForm(fields={"batchName": "edge", "lang": "en", "aiProvider": "openai", "searchProvider": "offline"},
                        file_name="conversation.csv", file_data=content)
    batch_id = services.batches.create(users["partner"], form)["batchId"]
    queue.take()
    commands.seen.clear()

    services.engine.run_step(StepMessage(batch_id, 0))
    step_commands = list(commands.seen)

    assert [i["status"] for i in item_docs(services, batch_id)] == ["succeeded", "failed", *["succeeded"] * 3]
    sent = {r.question: r.json["messages"][1:] for r in stub.requests if r.api == "openai"}
    last = sent[turns[4]]
    assert [m["content"] for m in last if m["role"] == "user"] == [turns[0], turns[2], turns[3], turns[4]]
    assert [m["role"] for m in last] == ["user", "assistant"] * 3 + ["user"]
    answers = {i["_id"]: i["answer"]["text"] for i in services.store.interactions.find({})}
    earlier = [answers[ObjectId(d["interactionId"])] for d in item_docs(services, batch_id) if d["rowIndex"] in (0, 2, 3)]
    replies = [m["content"] for m in last if m["role"] == "assistant"]
    assert all(reply.startswith(answer) for reply, answer in zip(replies, earlier, strict=True))
    # The chat is recorded once, with its first turn, in the flush's bulk write; every
    # follow-up (the one after the failed turn too) takes its history from memory, and the
    # first turn of a first attempt has none to read.
    assert step_commands.count(("update", "chats")) == 1
    assert step_commands.count(("find", "interactions")) == 0
    client.close()


def test_a_row_an_earlier_step_left_in_flight_runs_again_at_once_in_the_next_step(env, queue, users):
    services = make_services(env, queue)
    batch_id = create(services, users["partner"], ["How do I renew my passport?"], aiProvider="offline")
    queue.take()
    future = datetime.now(timezone.utc) + timedelta(seconds=60)
    services.store.batch_items.update_one({"batchId": ObjectId(batch_id)},
                                          {"$set": {"status": "processing", "claimId": "a-step-that-died",
                                                    "leaseUntil": future}})

    services.engine.run_step(StepMessage(batch_id, 0))  # it holds the lease: the old claim can never be recorded

    assert item_docs(services, batch_id)[0]["status"] == "succeeded"
    assert services.batch_store.get(batch_id).status.value == "processed"
