"""A full run's logs and error bodies carry no secret and no unredacted personal information."""

from __future__ import annotations

import time

import pytest
import requests

from lib.settings import DEV_QSTASH_CURRENT_SIGNING_KEY, DEV_QSTASH_NEXT_SIGNING_KEY, DEV_QSTASH_TOKEN
from tests.support.provider_stub import STUB_KEYS, Fault, ProviderStub

PII = ["claire.roy@example.com", "046 454 286", "613-555-0147", "K2P 1L4", "4111 1111 1111 1111"]


@pytest.fixture(scope="module")
def stub():
    with ProviderStub() as server:
        yield server


def test_logs_and_error_bodies_hold_no_token_key_or_personal_information(stack_factory, stub):
    running = stack_factory({**stub.env(), "LOG_LEVEL": "DEBUG", "PROVIDER_MAX_RETRIES": "2"})
    stack = running.stack
    token = stack.tokens["partner"]
    headers = {"Authorization": f"Bearer {token}"}
    question = f"I am {PII[0]}, SIN {PII[1]}, phone {PII[2]}, {PII[3]}, card {PII[4]}. How do I renew my passport?"
    bodies = []

    # A question with personal information is refused (422 BLOCKED), its text in no log.
    blocked = requests.post(f"{stack.base_url}/api/chat/message", headers=headers, timeout=60,
                            json={"message": question, "lang": "en", "aiProvider": "openai",
                                  "searchProvider": "google"})
    bodies.append(blocked.text)
    # A rate limit and a dropped connection on the way, so that retry paths log too.
    stub.enqueue(Fault.status(429, retry_after=1))
    chat = requests.post(f"{stack.base_url}/api/chat/message", headers=headers, timeout=60,
                         json={"message": "How do I renew my passport?", "lang": "en", "aiProvider": "openai",
                               "searchProvider": "google"})
    bodies.append(chat.text)
    stub.enqueue(Fault.disconnect())
    content = f"QUESTION,chatId\n\"{question}\",c1\n\"And {PII[0]} again?\",c1\n".encode()
    created = requests.post(f"{stack.base_url}/api/batch/create", headers=headers, timeout=30,
                            files={"file": ("pii.csv", content)},
                            data={"batchName": "pii", "lang": "en", "aiProvider": "anthropic", "searchProvider": "canadaca"})
    batch_id = created.json()["batchId"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = requests.get(f"{stack.base_url}/api/batch/status", params={"batchId": batch_id}, headers=headers,
                              timeout=10).json()
        if status["status"] in ("processed", "completed_with_errors"):
            break
        time.sleep(0.3)
    results = requests.get(f"{stack.base_url}/api/batch/results", params={"batchId": batch_id}, headers=headers,
                           timeout=10)
    for bad in ({"Authorization": f"Bearer {token}x"}, {"Authorization": "Bearer " + token[:-3]}, {}):
        bodies.append(requests.get(f"{stack.base_url}/api/batch/list", headers=bad, timeout=10).text)
    bodies.append(requests.post(f"{stack.base_url}/api/batch/process-step", data=b'{"batchId":"x"}',
                                headers={"Upstash-Signature": "forged"}, timeout=10).text)
    bodies.append(results.text)

    logs = "".join((stack.data_dir / "logs" / name).read_text(errors="replace")
                   for name in ("app.log", "qstash.log"))
    secrets = [token, DEV_QSTASH_TOKEN, DEV_QSTASH_CURRENT_SIGNING_KEY, DEV_QSTASH_NEXT_SIGNING_KEY,
               stack.jwt_secret, stack.cron_secret, *STUB_KEYS.values()]
    assert blocked.status_code == 422 and blocked.json()["error"]["code"] == "BLOCKED"
    assert chat.status_code == 200 and created.status_code == 202
    assert "request id=" in logs  # the logs were captured
    for secret in secrets:
        assert secret not in logs
        assert all(secret not in body for body in bodies[2:])
    for value in PII:
        assert value not in logs
        assert all(value not in body for body in bodies)
