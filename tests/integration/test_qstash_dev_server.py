"""The QStash dev server, over real HTTP, driven by the real `qstash` SDK.

Each test starts the server on a free port and a local destination that records what
it receives (and can be told to fail), publishes with the SDK, and checks what arrived.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from qstash import QStash, Receiver
from qstash.errors import QStashError, SignatureError

from devstack.qstash_server import QStashDevServer, compute_backoff, parse_duration
from devstack.qstash_signing import sign_delivery
from lib.settings import DEV_QSTASH_CURRENT_SIGNING_KEY, DEV_QSTASH_NEXT_SIGNING_KEY, DEV_QSTASH_TOKEN

ROOT = Path(__file__).resolve().parents[2]
RECEIVER = Receiver(DEV_QSTASH_CURRENT_SIGNING_KEY, DEV_QSTASH_NEXT_SIGNING_KEY)


@dataclass
class Delivery:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    received_at: float  # time.monotonic()

    def json(self) -> Any:
        return json.loads(self.body)


class Destination:
    """A local endpoint that records deliveries; `fail_next(n)` makes it answer 500 n times."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self.failures_left = 0
        self.slow_seconds = 0.0  # how long requests to /slow take
        self._cond = threading.Condition()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True).start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self._httpd.server_port}{path}"

    def fail_next(self, times: int) -> None:
        self.failures_left = times

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Delivery]:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.deliveries) >= count, timeout), self.deliveries
            return list(self.deliveries)

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _record(self, handler: BaseHTTPRequestHandler) -> int:
        body = handler.rfile.read(int(handler.headers.get("Content-Length", 0)))
        headers = {name.lower(): value for name, value in handler.headers.items()}
        if handler.path.startswith("/slow"):
            time.sleep(self.slow_seconds)
        with self._cond:
            self.deliveries.append(Delivery(handler.command, handler.path, headers, body, time.monotonic()))
            self._cond.notify_all()
            if self.failures_left > 0:
                self.failures_left -= 1
                return 500
        return 200

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        destination = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                status = destination._record(self)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_PUT = do_POST

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        return Handler


@pytest.fixture
def destination() -> Iterator[Destination]:
    destination = Destination()
    yield destination
    destination.stop()


@pytest.fixture
def start_server() -> Iterator[Callable[..., QStashDevServer]]:
    servers: list[QStashDevServer] = []

    def start(**options: Any) -> QStashDevServer:
        server = QStashDevServer(port=0, **{"backoff_scale": 0.01, **options}).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def server(start_server: Callable[..., QStashDevServer]) -> QStashDevServer:
    return start_server()


def sdk(server: QStashDevServer, token: str = DEV_QSTASH_TOKEN) -> QStash:
    return QStash(token, base_url=server.url, retry=False)


def dev(server: QStashDevServer, name: str, payload: dict[str, Any] | None = None) -> Any:
    """GET (or, with a payload, POST) a /__dev/ control endpoint."""
    url = f"{server.url}/__dev/{name}"
    response = requests.post(url, json=payload, timeout=5) if payload is not None else requests.get(url, timeout=5)
    response.raise_for_status()
    return response.json()


def settled_stats(server: QStashDevServer, timeout: float = 5.0) -> dict[str, int]:
    """The stats once no message is pending."""
    deadline = time.monotonic() + timeout
    while (stats := dev(server, "stats"))["pending"] and time.monotonic() < deadline:
        time.sleep(0.02)
    return stats


# Publishing and delivery


def test_a_published_json_message_is_delivered_once_with_its_body_headers_and_a_valid_signature(server, destination):
    url = destination.url()
    result = sdk(server).message.publish_json(url=url, body={"batchId": "b1"}, headers={"X-Batch-Id": "b1"})

    [delivery] = destination.wait_for(1)
    assert delivery.method == "POST" and delivery.path == "/hook"
    assert delivery.json() == {"batchId": "b1"}
    assert delivery.headers["content-type"] == "application/json"
    assert delivery.headers["x-batch-id"] == "b1"
    assert delivery.headers["upstash-message-id"] == result.message_id
    assert delivery.headers["upstash-retried"] == "0"
    RECEIVER.verify(signature=delivery.headers["upstash-signature"], body=delivery.body.decode(), url=url)
    assert settled_stats(server) == {
        "published": 1, "deduplicated": 0, "deliveryAttempts": 1, "succeeded": 1, "failedAttempts": 0,
        "dropped": 0, "duplicated": 0, "dlq": 0, "pending": 0,
    }  # fmt: skip
    time.sleep(0.1)
    assert len(destination.deliveries) == 1


def test_a_destination_with_a_query_string_receives_it_and_the_signature_names_it(server, destination):
    url = destination.url("/hook?batch=b1&step=2")
    sdk(server).message.publish_json(url=url, body={})

    [delivery] = destination.wait_for(1)
    assert delivery.path == "/hook?batch=b1&step=2"
    RECEIVER.verify(signature=delivery.headers["upstash-signature"], body=delivery.body.decode(), url=url)


def test_a_message_published_with_upstash_method_put_is_delivered_with_put(server, destination):
    sdk(server).message.publish(url=destination.url(), body="plain", method="PUT", content_type="text/plain")

    [delivery] = destination.wait_for(1)
    assert (delivery.method, delivery.body, delivery.headers["content-type"]) == ("PUT", b"plain", "text/plain")


def test_a_publish_with_a_wrong_token_is_refused_and_the_sdk_raises(server, destination):
    with pytest.raises(QStashError, match="401"):
        sdk(server, token="not-the-token").message.publish_json(url=destination.url(), body={})

    response = requests.post(f"{server.url}/v2/publish/{destination.url()}", data="{}", timeout=5)
    assert response.status_code == 401 and "error" in response.json()
    assert dev(server, "stats")["published"] == 0


def test_other_qstash_api_routes_answer_404_with_a_json_error(server):
    response = requests.get(f"{server.url}/v2/schedules", headers={"Authorization": f"Bearer {DEV_QSTASH_TOKEN}"})

    assert response.status_code == 404 and "error" in response.json()


def test_a_message_delayed_by_one_second_is_not_delivered_before_it(server, destination):
    published_at = time.monotonic()
    sdk(server).message.publish_json(url=destination.url(), body={}, delay="1s")

    [delivery] = destination.wait_for(1)
    assert delivery.received_at - published_at >= 0.95


def test_a_repeated_deduplication_id_is_delivered_once_and_answers_with_the_first_message_id(server, destination):
    client = sdk(server)
    first = client.message.publish_json(url=destination.url(), body={"n": 1}, deduplication_id="batch-1:1")
    second = client.message.publish_json(url=destination.url(), body={"n": 2}, deduplication_id="batch-1:1")

    assert (second.message_id, first.deduplicated, second.deduplicated) == (first.message_id, False, True)
    assert settled_stats(server)["deduplicated"] == 1
    time.sleep(0.1)
    assert [d.json() for d in destination.deliveries] == [{"n": 1}]


def test_content_based_deduplication_delivers_one_message_per_distinct_content(server, destination):
    client = sdk(server)
    for body in ({"n": 1}, {"n": 1}, {"n": 2}):
        client.message.publish_json(url=destination.url(), body=body, content_based_deduplication=True)

    assert settled_stats(server)["published"] == 2
    assert sorted(d.json()["n"] for d in destination.wait_for(2)) == [1, 2]


def test_a_slow_destination_does_not_hold_up_deliveries_to_others(server, destination):
    destination.slow_seconds = 0.6
    client = sdk(server)
    client.message.publish_json(url=destination.url("/slow"), body={})
    time.sleep(0.05)
    client.message.publish_json(url=destination.url("/fast"), body={})

    first, second = destination.wait_for(2)
    assert (first.path, second.path) == ("/fast", "/slow")


# Retries and the DLQ


def test_a_destination_answering_500_twice_is_retried_with_upstash_retried_1_then_2_until_it_succeeds(
    server, destination
):
    destination.fail_next(2)
    result = sdk(server).message.publish_json(url=destination.url(), body={})

    deliveries = destination.wait_for(3)
    assert [d.headers["upstash-retried"] for d in deliveries] == ["0", "1", "2"]
    assert {d.headers["upstash-message-id"] for d in deliveries} == {result.message_id}
    stats = settled_stats(server)
    assert (stats["succeeded"], stats["failedAttempts"], stats["deliveryAttempts"]) == (1, 2, 3)
    [message] = dev(server, "messages")
    assert (message["status"], message["attempts"], message["lastStatus"]) == ("delivered", 3, 200)


def test_a_message_whose_retries_run_out_lands_in_the_dlq(server, destination):
    destination.fail_next(10)
    result = sdk(server).message.publish_json(url=destination.url(), body={}, retries=1)

    stats = settled_stats(server)
    assert (stats["dlq"], stats["failedAttempts"], stats["pending"]) == (1, 2, 0)
    assert len(destination.deliveries) == 2
    [message] = dev(server, "messages?status=dlq")
    assert (message["messageId"], message["attempts"], message["lastStatus"]) == (result.message_id, 2, 500)


def test_an_unreachable_destination_is_retried_and_then_dead_lettered(server, destination):
    url = destination.url()
    destination.stop()
    sdk(server).message.publish_json(url=url, body={}, retries=1)

    assert settled_stats(server)["dlq"] == 1
    [message] = dev(server, "messages")
    assert message["lastStatus"] is None and "Connection" in message["lastError"]


def test_a_delivery_that_outlasts_the_delivery_timeout_counts_as_failed(start_server, destination):
    server = start_server(delivery_timeout=0.2)
    destination.slow_seconds = 0.5
    sdk(server).message.publish_json(url=destination.url("/slow"), body={}, retries=0)

    assert settled_stats(server)["dlq"] == 1
    assert "timed out" in dev(server, "messages")[0]["lastError"]


# Faults


def test_the_duplicate_fault_delivers_every_message_twice_with_the_same_message_id(start_server, destination):
    server = start_server(faults={"duplicate": True})
    result = sdk(server).message.publish_json(url=destination.url(), body={})

    deliveries = destination.wait_for(2)
    assert [d.headers["upstash-message-id"] for d in deliveries] == [result.message_id] * 2
    stats = settled_stats(server)
    assert (stats["published"], stats["duplicated"], stats["deliveryAttempts"], stats["succeeded"]) == (1, 1, 2, 1)


def test_the_drop_first_fault_loses_the_first_attempt_and_a_retry_delivers_the_message(start_server, destination):
    server = start_server(faults={"drop_first": True})
    sdk(server).message.publish_json(url=destination.url(), body={})

    [delivery] = destination.wait_for(1)
    assert delivery.headers["upstash-retried"] == "1"
    stats = settled_stats(server)
    assert (stats["dropped"], stats["deliveryAttempts"], stats["succeeded"]) == (1, 1, 1)


def test_the_drop_rate_fault_with_a_seed_drops_the_same_messages_on_every_run(start_server, destination):
    def delivered_numbers() -> set[int]:
        server = start_server(faults={"drop_rate": 0.5, "seed": 42})
        client = sdk(server)
        for n in range(20):
            client.message.publish_json(url=destination.url(f"/n{n}"), body={"n": n}, retries=0)
        stats = settled_stats(server)
        delivered = {int(m["url"].rsplit("/n", 1)[1]) for m in dev(server, "messages?status=delivered")}
        assert stats["dropped"] == stats["dlq"] == 20 - len(delivered)
        return delivered

    first_run, second_run = delivered_numbers(), delivered_numbers()
    assert first_run == second_run and 0 < len(first_run) < 20


def test_the_latency_fault_delays_every_delivery(start_server, destination):
    server = start_server(faults={"latency_ms": 300})
    published_at = time.monotonic()
    sdk(server).message.publish_json(url=destination.url(), body={})

    [delivery] = destination.wait_for(1)
    assert delivery.received_at - published_at >= 0.28


def test_pausing_through_the_control_endpoint_holds_deliveries_until_unpaused(server, destination):
    assert dev(server, "faults", {"paused": True})["paused"] is True
    assert dev(server, "faults")["paused"] is True
    sdk(server).message.publish_json(url=destination.url(), body={})
    time.sleep(0.2)
    assert destination.deliveries == [] and dev(server, "stats")["pending"] == 1

    dev(server, "faults", {"paused": False})
    destination.wait_for(1)
    assert settled_stats(server)["succeeded"] == 1


def test_an_unknown_or_invalid_fault_is_refused_with_400(server):
    for payload in ({"explode": True}, {"drop_rate": 2}, {"duplicate": "yes"}):
        response = requests.post(f"{server.url}/__dev/faults", json=payload, timeout=5)
        assert response.status_code == 400 and "error" in response.json(), payload


def test_reset_forgets_messages_and_counters(server, destination):
    sdk(server).message.publish_json(url=destination.url(), body={})
    settled_stats(server)

    assert dev(server, "reset", {})["published"] == 0
    assert dev(server, "messages") == []


# Signatures


def test_a_fresh_signature_from_sign_delivery_is_accepted_by_the_sdk_receiver():
    for key in (DEV_QSTASH_CURRENT_SIGNING_KEY, DEV_QSTASH_NEXT_SIGNING_KEY):
        signature = sign_delivery(b'{"a": 1}', "http://app/step", key, time.time())
        RECEIVER.verify(signature=signature, body='{"a": 1}', url="http://app/step")


@pytest.mark.parametrize(
    ("signed_at", "signed_url", "signed_body", "key"),
    [
        pytest.param(-600, "http://app/step", b"{}", DEV_QSTASH_CURRENT_SIGNING_KEY, id="expired"),
        pytest.param(0, "http://app/other", b"{}", DEV_QSTASH_CURRENT_SIGNING_KEY, id="another-url"),
        pytest.param(0, "http://app/step", b'{"x": 1}', DEV_QSTASH_CURRENT_SIGNING_KEY, id="another-body"),
        pytest.param(0, "http://app/step", b"{}", "sig_" + "x" * 28, id="another-key"),
    ],
)
def test_a_signature_is_rejected_when_it_is_expired_or_made_for_another_url_body_or_key(
    signed_at, signed_url, signed_body, key
):
    signature = sign_delivery(signed_body, signed_url, key, time.time() + signed_at)

    with pytest.raises(SignatureError):
        RECEIVER.verify(signature=signature, body="{}", url="http://app/step")


# Pure rules


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("10s", 10), ("2m", 120), ("1h", 3600), ("1d", 86400), ("1h30m", 5400), ("7", 7)],
)
def test_qstash_durations_parse_to_seconds(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "10x", "s", "1.5.5s", "-1s"])
def test_a_malformed_duration_is_refused(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_the_backoff_follows_qstash_curve_scaled_and_capped_at_a_day():
    assert [round(compute_backoff(n, 0.02), 2) for n in range(3)] == [0.02, 0.24, 2.97]
    assert compute_backoff(10, 1.0) == 86400


# Command line


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_the_server_runs_as_a_module_and_stops_cleanly_on_a_signal(stop_signal):
    process = subprocess.Popen(
        [sys.executable, "-m", "devstack.qstash_server", "--port", "0", "--quiet"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = process.stdout.readline().strip()
        assert line.startswith("QSTASH_URL=http://127.0.0.1:")
        assert requests.get(f"{line.removeprefix('QSTASH_URL=')}/__dev/stats", timeout=5).json()["published"] == 0

        process.send_signal(stop_signal)
        assert process.wait(timeout=5) == 0
    finally:
        process.kill()
        process.stdout.close()
