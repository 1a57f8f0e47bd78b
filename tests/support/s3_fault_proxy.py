"""An HTTP proxy in front of moto's S3 server that makes object storage fail at the wire.

    with S3FaultProxy(moto_url) as proxy:       # point S3_ENDPOINT_URL at proxy.url
        proxy.mode = "refuse"                    # every connection closed unanswered (storage away)
        proxy.mode = "error"                     # every request answered 503 SlowDown (S3's XML)
        proxy.error_rate = 0.2                   # or a share of requests, drawn from `seed`
        proxy.rule = lambda r: "error" if r.operation == "copy" else None   # or chosen requests
        proxy.mode = "pass"                      # back to normal
        proxy.stats()                            # requests by operation, faults by kind

Unlike stopping moto's server, the objects survive a fault (moto keeps them in memory),
so an outage can come and go in the middle of an upload, an ingestion or an export.
Requests are forwarded as they are (the Host header included: moto checks no
signature), bodies streamed in both directions. A fault is decided per request; the
proxy never changes a byte of what it forwards. Loopback only: it is test support.
"""

from __future__ import annotations

import http.client
import random
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal, Self
from urllib.parse import urlsplit

Action = Literal["pass", "refuse", "error"]
READ_SIZE = 64 * 1024
LOOPBACK = ("127.0.0.1", "localhost")
SLOW_DOWN = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
             b"<Message>Please reduce your request rate (injected by the test proxy).</Message></Error>")


@dataclass(frozen=True)
class S3Request:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names

    @property
    def operation(self) -> str:
        """A rough name of the S3 operation, for rules and stats."""
        query = urlsplit(self.path).query
        if "x-amz-copy-source" in self.headers:
            return "copy"
        if self.method == "POST":
            if "uploads" in query.split("&"):
                return "multipart-start"
            if "uploadId=" in query:
                return "multipart-complete"
            if "delete" in query.split("&"):
                return "delete"
            return "form-post"
        if self.method == "PUT":
            return "multipart-part" if "partNumber=" in query else "put"
        return {"GET": "get", "HEAD": "head", "DELETE": "delete-one"}.get(self.method, self.method.lower())


class S3FaultProxy:
    """See the module docstring. `mode`, `error_rate` and `rule` may be changed from any thread."""

    def __init__(self, target_url: str, *, seed: int = 1, host: str = "127.0.0.1", port: int = 0):
        target = urlsplit(target_url)
        if target.hostname not in LOOPBACK or host not in LOOPBACK:
            raise ValueError("the S3 fault proxy only listens on and forwards to loopback addresses")
        self.target = (target.hostname, target.port or 80)
        self.mode: Action = "pass"
        self.error_rate = 0.0  # a share of the requests that `mode` lets pass, answered 503
        self.rule: Callable[[S3Request], Action | None] | None = None
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._server.serve_forever, name="s3-fault-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stats(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def reset_stats(self) -> None:
        with self._lock:
            self._counts.clear()

    def _count(self, *names: str) -> None:
        with self._lock:
            self._counts.update(names)

    def decide(self, request: S3Request) -> Action:
        """The fault for one request: the rule's, else the mode's, else the error rate's."""
        action = self.rule(request) if self.rule is not None else None
        if action is None:
            action = self.mode
        if action == "pass" and self.error_rate > 0:
            with self._lock:
                drawn = self._rng.random()
            if drawn < self.error_rate:
                action = "error"
        return action

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _any(self) -> None:
                request = S3Request(self.command, self.path, {k.lower(): v for k, v in self.headers.items()})
                action = proxy.decide(request)
                proxy._count(f"requests {request.operation}", f"{action} {request.operation}" if action != "pass"
                             else "passed")
                if action == "refuse":
                    self.close_connection = True  # closed unanswered: the client sees the connection drop
                    return
                body = self._body()
                if action == "error":
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(SLOW_DOWN)))
                    self.send_header("Retry-After", "1")
                    self.end_headers()
                    self.wfile.write(SLOW_DOWN)
                    return
                self._forward(body)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_OPTIONS = _any

            def _body(self) -> bytes:
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    parts = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            self.rfile.readline()
                            return b"".join(parts)
                        parts.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _forward(self, body: bytes) -> None:
                upstream = http.client.HTTPConnection(*proxy.target, timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() != "transfer-encoding"}
                    headers["Content-Length"] = str(len(body))
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    answer = upstream.getresponse()
                    self.send_response(answer.status, answer.reason)
                    chunked = answer.getheader("Content-Length") is None and self.command != "HEAD"
                    for name, value in answer.getheaders():
                        if name.lower() not in ("transfer-encoding", "connection"):
                            self.send_header(name, value)
                    if chunked:
                        self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    if self.command == "HEAD":
                        return
                    while chunk := answer.read(READ_SIZE):
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
                    if chunked:
                        self.wfile.write(b"0\r\n\r\n")
                except OSError:
                    self.close_connection = True  # moto went away mid-answer: so does this connection
                finally:
                    upstream.close()

        return Handler
