"""The engine under load (issue 10): grouped writes, cancels of any size, database faults, chat ids."""

from __future__ import annotations

import time

import pytest
from bson import ObjectId
from pymongo import MongoClient

from lib.errors import Conflict, ServiceUnavailable
from lib.models import Role
from lib.services import Services, build_services
from lib.settings import Settings
from lib.store.client import translate_errors
from lib.upload import UploadedForm
from tests.support.command_log import CommandLog
from tests.support.recording_queue import RecordingQueue, drain


@pytest.fixture
def counted(env: dict[str, str], queue: RecordingQueue):
    """Services on a client of their own whose every command is counted."""
    commands = CommandLog()
    client = MongoClient(env["MONGODB_URI"], tz_aware=True, event_listeners=[commands])
    services = build_services(Settings.from_env({**env, "MAX_BATCH_ROWS": "20000"}), queue=queue, client=client)
    partner = services.users.upsert("partner@example.gc.ca", Role.PARTNER)
    yield services, commands, partner
    client.close()


def upload(services: Services, user, rows: int, *, conversations: int = 0, **fields: str) -> str:
    lines = ["chatId,QUESTION"]
    for n in range(rows):
        label = f"c{n % conversations}" if conversations else ""
        lines.append(f"{label},Question {n} about my passport renewal?")
    form = UploadedForm(fields={"batchName": "load", "lang": "en", "aiProvider": "offline",
                                "searchProvider": "offline", **fields},
                        file_name="q.csv", file_data=("\n".join(lines) + "\n").encode())
    return services.batches.create(user, form)["batchId"]


@pytest.mark.parametrize("conversations", [0, 40], ids=["independent rows", "conversations of 5 turns"])
def test_a_batch_writes_at_most_two_database_commands_per_row(counted, queue, conversations):
    services, commands, partner = counted
    batch_id = upload(services, partner, 200, conversations=conversations, concurrency="16")
    commands.seen.clear()  # the upload's own writes are not the engine's

    drain(services, queue)

    status = services.batches.status(partner, batch_id)
    assert status["status"] == "processed" and status["processedItems"] == 200
    writes = commands.writes()
    assert len(writes) / 200 <= 2, f"{len(writes)} writes for 200 rows: {sorted(set(writes))}"
    # Interactions and chats go in bulk: far fewer commands than rows.
    assert sum(1 for c in writes if c == ("insert", "interactions")) <= 20
    assert sum(1 for c in writes if c == ("update", "chats")) <= 20


def test_a_cancel_of_a_big_batch_is_acknowledged_at_once_with_one_write(counted, queue):
    services, commands, partner = counted
    batch_id = upload(services, partner, 5000)
    queue.take()
    commands.seen.clear()

    started = time.perf_counter()
    answer = services.batches.cancel(partner, batch_id)
    took = time.perf_counter() - started

    assert answer == {"batchId": batch_id, "status": "cancelling"}
    assert took < 1.0
    assert commands.writes() == [("update", "batches")]
    # Its pending rows are settled in the background, in chunks, and the batch ends cancelled.
    drain(services, queue)
    final = services.batches.status(partner, batch_id)
    assert final["status"] == "cancelled" and final["cancelledItems"] == 5000 and final["completedAt"] is not None
    with pytest.raises(Conflict):
        services.batches.cancel(partner, batch_id)


def test_a_cancel_that_took_effect_is_not_an_error_when_the_queue_is_away(counted, queue):
    services, _, partner = counted
    batch_id = upload(services, partner, 30)
    queue.take()
    queue.fail_next = 1

    assert services.batches.cancel(partner, batch_id)["status"] == "cancelling"
    assert services.batches.status(partner, batch_id)["status"] == "cancelling"
    # The sweep publishes the step the cancel could not.
    services.store.batches.update_one({"_id": ObjectId(batch_id)}, {"$set": {"heartbeatAt": None,
                                                                           "updatedAt": services.now().replace(year=2000)}})
    from lib.sweep import sweep

    assert batch_id in sweep(services)["kicked"]
    drain(services, queue)
    assert services.batches.status(partner, batch_id)["status"] == "cancelled"


def test_a_second_cancel_while_cancelling_answers_the_same(counted, queue):
    services, _, partner = counted
    batch_id = upload(services, partner, 30)
    services.batches.cancel(partner, batch_id)

    assert services.batches.cancel(partner, batch_id)["status"] == "cancelling"


def test_counters_never_sum_above_the_total_while_a_cancel_settles(counted, queue):
    services, _, partner = counted
    batch_id = upload(services, partner, 40)
    # A stale flush from a step that counted rows the cancel has also counted.
    services.store.batches.update_one({"_id": ObjectId(batch_id)}, {"$set": {"processedItems": 30,
                                                                           "cancelledItems": 40}})
    status = services.batches.status(partner, batch_id)
    shown = status["processedItems"] + status["failedItems"] + status["blockedItems"] + status["cancelledItems"]
    assert shown <= status["totalItems"]


def test_a_database_operation_failure_is_a_503_not_a_500(counted):
    services, _, _ = counted
    collection = services.store.db["scratch"]
    collection.insert_one({"_id": 1})
    with pytest.raises(ServiceUnavailable) as info, translate_errors():
        collection.insert_many([{"_id": 1}, {"_id": 2}], ordered=False)  # a BulkWriteError (code 65)
    assert info.value.status == 503 and info.value.code == "DATABASE_ERROR"


def test_batch_conversations_get_chat_ids_nobody_can_predict(counted, queue):
    services, _, partner = counted
    first = upload(services, partner, 6, conversations=2)
    second = upload(services, partner, 6, conversations=2)

    def chat_ids(batch_id: str) -> list[str]:
        return [d["chatId"] for d in services.store.batch_items.find({"batchId": ObjectId(batch_id)})]

    a, b = chat_ids(first), chat_ids(second)
    assert len(set(a)) == 2 and len(set(b)) == 2 and not set(a) & set(b)
    assert all(len(c) == 32 and batch_id not in c for c, batch_id in zip(a, [first] * 6))
