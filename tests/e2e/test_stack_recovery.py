"""The local stack as child processes: a batch survives the app server being SIGKILLed."""

from __future__ import annotations

import time
from collections import Counter

import pymongo
import pytest
import requests
from bson import ObjectId

from tests.support.provider_stub import ProviderStub

FINAL = ("processed", "completed_with_errors", "cancelled", "failed")


@pytest.fixture(scope="module")
def stub():
    with ProviderStub() as server:
        yield server


@pytest.fixture(scope="module")
def crash_stack(stack_factory, stub):
    # A short function budget so a dead step's lease expires within the test's patience.
    return stack_factory({**stub.env(), "FUNCTION_MAX_DURATION": "12", "STEP_SAFETY_SECONDS": "4",
                          "PROVIDER_MAX_RETRIES": "0"})


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_batch_finishes_with_no_row_lost_or_duplicated_after_the_app_server_is_killed(crash_stack, stub):
    stack = crash_stack.stack
    stub.latency = 0.3
    headers = {"Authorization": f"Bearer {stack.tokens['partner']}"}
    questions = [f"Question {n}: how do I renew my passport?" for n in range(60)]
    content = ("QUESTION\n" + "\n".join(questions) + "\n").encode()
    created = requests.post(f"{stack.base_url}/api/batch/create", headers=headers, timeout=30,
                            files={"file": ("q.csv", content)},
                            data={"batchName": "crash", "lang": "en", "aiProvider": "openai",
                                  "searchProvider": "offline", "concurrency": "4"})
    assert created.status_code == 202, created.text
    batch_id = created.json()["batchId"]

    def status() -> dict:
        return requests.get(f"{stack.base_url}/api/batch/status", params={"batchId": batch_id}, headers=headers,
                            timeout=10).json()

    wait_for(lambda: status()["processedItems"] >= 8, 30, "some rows to finish")
    stack.kill_app()  # SIGKILL mid-step: rows in flight, a lease held, counters not flushed
    time.sleep(1.0)
    stack.start_app()

    final = wait_for(lambda: (s := status())["status"] in FINAL and s, 120, "the batch to finish")

    with pymongo.MongoClient(stack.mongodb_uri) as client:
        db = client[stack.db_name]
        items = list(db.batch_items.find({"batchId": ObjectId(batch_id)}))
        interactions = list(db.interactions.find({"_id": {"$in": [i["interactionId"] for i in items]}}))
        batch = db.batches.find_one({"_id": ObjectId(batch_id)})
    assert final["status"] == "processed"
    assert len(items) == 60 and all(i["status"] == "succeeded" for i in items)
    assert len(interactions) == 60
    assert Counter(str(i["_id"]) for i in interactions).most_common(1)[0][1] == 1
    assert sorted(batch["interactions"]) == sorted(i["interactionId"] for i in items)
    assert final["processedItems"] == 60 and final["failedItems"] == 0
    asked = Counter(r.question for r in stub.requests if r.api == "openai" and r.stage == "piStage2")
    assert set(asked) == set(questions)  # every row reached the provider; re-runs are allowed, extra rows are not
