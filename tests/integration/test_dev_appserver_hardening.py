"""The local app server under attack (issue 10, findings 4 and 9), over raw sockets.

The server runs in-process on a free port (and once as `python -m devstack.appserver`);
the API routes talk to a real SecantusDB through the `installed` services.
"""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from werkzeug.test import Client

from devstack.appserver import Router, load_routes, make_app_server
from devstack.stack import free_port
from lib.http import PAGE_HEADERS
from tests.integration.conftest import bearer

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def static_dir(tmp_path: Path) -> Path:
    (tmp_path / "index.html").write_text("<!doctype html><title>t</title>")
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "app.js").write_text("console.log(1)")
    return tmp_path


@pytest.fixture
def server(installed, static_dir: Path) -> Iterator[tuple[str, int]]:
    """The app server with every route, a 2 s read timeout, serving in a thread."""
    httpd = make_app_server("127.0.0.1", 0, Router(load_routes(ROOT / "api"), static_dir), read_timeout=2)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield "127.0.0.1", httpd.server_port
    httpd.shutdown()
    httpd.server_close()


def _exchange(address: tuple[str, int], raw: bytes, *, wait: float = 10) -> tuple[int, dict[str, str], bytes] | None:
    """Send raw bytes and read one answer: (status, headers, body), or None if the server hung up."""
    with socket.create_connection(address, timeout=wait) as sock:
        sock.sendall(raw)
        response = http.client.HTTPResponse(sock)
        try:
            response.begin()
        except (http.client.RemoteDisconnected, ConnectionResetError):
            return None
        return response.status, dict(response.getheaders()), response.read()


def _error_code(answer: tuple[int, dict[str, str], bytes] | None) -> str:
    assert answer is not None, "the server hung up without answering"
    _, headers, body = answer
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Content-Type-Options"] == "nosniff"
    return json.loads(body)["error"]["code"]


# --- 9. protocol errors are JSON envelopes --------------------------------------------------


def test_a_header_line_over_64_kib_gets_a_431_json_envelope(server):
    answer = _exchange(server, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n")
    assert answer is not None and answer[0] == 431
    assert _error_code(answer) == "HEADERS_TOO_LARGE"
    assert b"<html" not in answer[2].lower()


def test_too_many_headers_get_a_431_json_envelope(server):
    headers = b"".join(b"X-H%d: v\r\n" % n for n in range(150))
    answer = _exchange(server, b"GET / HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
    assert answer is not None and answer[0] == 431
    assert _error_code(answer) == "HEADERS_TOO_LARGE"


def test_a_request_line_over_64_kib_gets_a_414_json_envelope(server):
    answer = _exchange(server, b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer is not None and answer[0] == 414
    assert _error_code(answer) == "URI_TOO_LONG"


def test_a_garbled_request_line_gets_a_400_json_envelope_that_does_not_echo_it(server):
    answer = _exchange(server, b"GET /x <script>alert(1)</script> HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer is not None and answer[0] == 400
    assert _error_code(answer) == "BAD_REQUEST"
    assert b"script" not in answer[2]


# --- 9. a stalled body ends instead of holding a thread ------------------------------------


def test_a_body_that_stalls_before_its_content_length_ends_within_the_read_timeout(server, users):
    token = bearer(users["partner"].id)["Authorization"]
    head = ("POST /api/chat/message HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Authorization: {token}\r\nContent-Length: 1000\r\n\r\n")
    started = time.monotonic()
    answer = _exchange(server, head.encode() + b'{"message"', wait=15)  # never sends the rest, never closes
    assert time.monotonic() - started < 10
    assert answer is not None and answer[0] == 400
    assert _error_code(answer) == "CLIENT_DISCONNECTED"


def test_the_read_timeout_is_a_command_line_argument(static_dir):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "devstack.appserver", "--port", str(port), "--static", str(static_dir),
         "--read-timeout", "1"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert "listening" in process.stdout.readline()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # the headers never end
            started = time.monotonic()
            try:
                while sock.recv(4096):
                    pass
            except ConnectionResetError:
                pass
            assert time.monotonic() - started < 5  # closed by the server, not by our 10 s timeout
    finally:
        process.terminate()
        process.wait(timeout=10)


# --- 4. the page's security headers ---------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/assets/app.js", "/some/client/route", "/api/no-such-endpoint"])
def test_the_page_and_everything_around_it_carry_the_page_headers(static_dir, path):
    response = Client(Router({}, static_dir)).get(path)
    for name, value in PAGE_HEADERS.items():
        assert response.headers[name] == value, (path, name)


def test_an_api_route_keeps_its_own_headers_and_gains_the_page_headers(server):
    answer = _exchange(server, b"GET /api/batch/options HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert answer is not None and answer[0] == 401
    _, headers, _ = answer
    assert headers["Cache-Control"] == "no-store"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Security-Policy"] == PAGE_HEADERS["Content-Security-Policy"]
