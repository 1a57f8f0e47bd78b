"""The HTTP edge under attack (issue 10): headers, request ids, bodies cut short, 503s.

Real SecantusDB, the route files in-process through werkzeug's test client, and the
`live` app over real sockets where the transport itself is the point.
"""

from __future__ import annotations

import http.client
import io
import json
import re
import socket
from pathlib import Path

import pytest
import requests
from werkzeug.test import Client

from devstack.appserver import load_routes
from tests.integration.conftest import bearer

ROOT = Path(__file__).resolve().parents[2]
SAFE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
CSV = b"question,chatId\nHow do I renew my passport?,c1\nWhat is EI?,c2\n"


@pytest.fixture
def routes(installed):
    return load_routes(ROOT / "api")


def _log_lines(caplog) -> list[str]:
    lines = [r.getMessage() for r in caplog.records if r.name == "ai_answers.http"]
    return [line for line in lines if line.startswith("request ")]


# --- 4. headers -----------------------------------------------------------------------------


def test_every_endpoint_answers_nosniff_on_errors_and_preflights(routes):
    for route, app in routes.items():
        client = Client(app)
        for method in ("DELETE", "OPTIONS", "GET", "POST"):
            response = client.open(route, method=method)
            assert response.headers.get("X-Content-Type-Options") == "nosniff", (route, method, response.status)


def test_a_successful_answer_carries_nosniff(routes, users):
    response = Client(routes["/api/batch/options"]).get("/api/batch/options", headers=bearer(users["partner"].id))
    assert response.status_code == 200
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_status_and_results_in_every_format_are_never_cached(live):
    batch_id = live.upload("partner", CSV).json()["batchId"]
    live.wait_final("partner", batch_id)
    status = requests.get(f"{live.base_url}/api/batch/status", params={"batchId": batch_id},
                          headers=live.headers("partner"), timeout=10)
    answers = [status] + [live.results("partner", batch_id, fmt) for fmt in ("json", "csv", "xlsx")]
    for response in answers:
        assert response.status_code == 200, response.text
        assert response.headers["Cache-Control"] == "no-store", response.url
        assert response.headers["X-Content-Type-Options"] == "nosniff", response.url


# --- 5. request ids -------------------------------------------------------------------------


@pytest.mark.parametrize("header", ["X-Request-Id", "X-Vercel-Id"])
@pytest.mark.parametrize(
    "forged",
    ["evil user=admin status=200", "a" * 65, "id\twith\ttabs", "ünïcode", "x;rm -rf", "line\\nbreak", " "],
    ids=["spaces", "too-long", "tabs", "non-ascii", "semicolon", "backslash", "blank"],
)
def test_a_forged_request_id_is_replaced_by_a_fresh_one_in_the_log_and_the_answer(routes, caplog, header, forged):
    with caplog.at_level("INFO", logger="ai_answers"):
        response = Client(routes["/api/batch/options"]).get("/api/batch/options", headers={header: forged})
    request_id = response.headers["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    [line] = _log_lines(caplog)
    assert line.startswith(f"request id={request_id} method=GET ")
    assert "user=admin" not in line
    if forged.strip():  # a blank id has nothing to look for
        assert forged not in line


@pytest.mark.parametrize("header", ["X-Request-Id", "X-Vercel-Id"])
@pytest.mark.parametrize("given", ["iad1::abcde-1234567890123-abcdef123456", "0123456789abcdef", "a.b_c-d:e"])
def test_a_well_formed_incoming_request_id_is_kept(routes, caplog, header, given):
    with caplog.at_level("INFO", logger="ai_answers"):
        response = Client(routes["/api/batch/options"]).get("/api/batch/options", headers={header: given})
    assert response.headers["X-Request-Id"] == given
    [line] = _log_lines(caplog)
    assert line.startswith(f"request id={given} ")


def test_a_forged_vercel_id_falls_back_to_a_well_formed_request_id(routes):
    headers = {"X-Vercel-Id": "evil id", "X-Request-Id": "fine-id-1"}
    response = Client(routes["/api/batch/options"]).get("/api/batch/options", headers=headers)
    assert response.headers["X-Request-Id"] == "fine-id-1"
    assert SAFE_ID.fullmatch(response.headers["X-Request-Id"])


# --- 7. a body shorter than its Content-Length ----------------------------------------------


def _send_truncated(base_url: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict] | None:
    """Send `body` under a Content-Length of 1000, close our side, and read the answer.

    None when the server closed the connection without answering.
    """
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=15) as sock:
        head = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Content-Length: 1000", "Connection: close"]
        head += [f"{name}: {value}" for name, value in headers.items()]
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        sock.shutdown(socket.SHUT_WR)
        response = http.client.HTTPResponse(sock)
        try:
            response.begin()
        except (http.client.RemoteDisconnected, ConnectionResetError):
            return None
        return response.status, json.loads(response.read())


@pytest.mark.parametrize(
    "path, content_type, body",
    [
        ("/api/chat/message", "application/json", b'{"message"'),
        ("/api/batch/create", "multipart/form-data; boundary=XyZ", b"--XyZ\r\nCon"),
    ],
    ids=["chat-message", "batch-create"],
)
def test_a_client_that_closes_before_its_content_length_gets_400_and_no_traceback(live, caplog, path, content_type,
                                                                                    body):
    assert len(body) == 10
    headers = {**live.headers("partner"), "Content-Type": content_type}
    with caplog.at_level("INFO", logger="ai_answers"):
        answer = _send_truncated(live.base_url, path, headers, body)
    assert answer is not None, "the server hung up without answering"
    status, payload = answer
    assert status == 400
    assert payload["error"]["code"] == "CLIENT_DISCONNECTED"
    http_records = [r for r in caplog.records if r.name == "ai_answers.http"]
    assert not [r for r in http_records if "unexpected" in r.getMessage() or r.exc_info]
    assert any("went away" in r.getMessage() and r.levelname == "INFO" for r in http_records)


def test_a_body_cut_short_in_process_is_a_400_client_disconnected(routes, users, caplog):
    with caplog.at_level("INFO", logger="ai_answers"):
        response = Client(routes["/api/chat/message"]).post(
            "/api/chat/message", headers=bearer(users["partner"].id), content_type="application/json",
            input_stream=io.BytesIO(b'{"message"'), environ_overrides={"CONTENT_LENGTH": "1000"},
        )
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "CLIENT_DISCONNECTED"
    assert not [r for r in caplog.records if r.exc_info]


# --- 503 always says when to retry ----------------------------------------------------------


def test_a_503_always_carries_retry_after(live):
    live.qstash.stop()  # the queue is down: create answers 503 QUEUE_UNAVAILABLE
    response = live.upload("partner", CSV)
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
