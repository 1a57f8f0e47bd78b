"""A QStash-compatible dev server: accepts the `qstash` SDK's publishes, delivers them.

Run it with `python -m devstack.qstash_server [--host H] [--port P] [--quiet]` (it prints
`QSTASH_URL=http://...` on stdout once listening), or embed it in tests:
`QStashDevServer(port=0).start()`, then `.url`, then `.stop()`. Its token and signing
keys default to the official dev server's fixed ones (`lib.settings`), so one `.env`
works with either server. Everything is in memory.

QStash API (Bearer token required, errors answer `{"error": "..."}`):
- `POST /v2/publish/{destination-url}`: headers `Upstash-Retries` (default 3),
  `Upstash-Delay` (`500ms`, `10s`, `2m`, `1h`, `1d`, `1h30m`), `Upstash-Not-Before`
  (unix seconds, wins over the delay), `Upstash-Deduplication-Id`,
  `Upstash-Content-Based-Deduplication: true`, `Upstash-Forward-<Name>`,
  `Upstash-Method`, `Upstash-Timeout`, `Content-Type`. Answers 201 `{"messageId"}`;
  a deduplication id seen within `dedup_window` answers 202 with the first message's
  id and `"deduplicated": true`, as QStash does. Callbacks, flow control, URL groups
  and `Upstash-Retry-Delay` are not supported; other routes answer 404.
- `GET /v2/keys`: `{"current", "next"}` signing keys.

Delivery: worker threads send each due message to its URL with the body, its
`Content-Type`, forwarded headers (prefix removed), `Upstash-Message-Id`,
`Upstash-Retried` and `Upstash-Signature` (see `devstack.qstash_signing`). A 2xx ends
the message; anything else, a connection error or a timeout is retried after
`compute_backoff(retried)` seconds until `Upstash-Retries` is used up, then the
message goes to the DLQ.

Control endpoints (no token; for tests and benchmarks):
- `GET /__dev/faults`, `POST /__dev/faults` (JSON, fields merged into the current
  ones, answers them all): `duplicate` (every message is also sent a second time,
  concurrently with its first attempt), `drop_first` (each message's first attempt is
  lost and retried as a failure), `drop_rate` (0..1: each attempt is lost with that
  probability), `seed` (makes `drop_rate` and `jitter_ms` reproducible: each message
  draws from its own generator, seeded by `seed` and its publish order since the seed
  was set), `latency_ms` (added before every attempt), `jitter_ms` (random 0..N ms more,
  so messages get reordered), `paused` (hold every delivery). camelCase aliases
  (`dropFirst`, `dropRate`, `latencyMs`, `jitterMs`) are accepted too.
- `GET /__dev/stats`: counters since start or reset: `published` (messages accepted,
  not counting duplicates), `deduplicated` (publishes answered as duplicates),
  `deliveryAttempts` (HTTP requests sent, duplicate copies included), `succeeded`
  (messages ended with a 2xx), `failedAttempts` (sent requests that failed),
  `dropped` (attempts lost by a fault), `duplicated` (extra copies sent), `dlq`
  (messages in the DLQ), `pending` (messages not yet ended:
  `published - succeeded - dlq`).
- `GET /__dev/messages[?status=pending|delivered|dlq][&limit=N]`: a JSON list, oldest
  first, of `{messageId, url, method, status, attempts, retries, deduplicationId,
  createdAt (unix ms), lastStatus, lastError, body}`; `attempts` counts dropped ones.
- `POST /__dev/reset`: forget messages, pending deliveries, deduplication ids and
  counters (faults stay).

Each publish and each delivery attempt logs one line (logger `devstack.qstash_server`),
never the token or a key.
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import hmac
import http.client
import itertools
import json
import logging
import math
import random
import re
import secrets
import signal
import sys
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from werkzeug.wrappers import Request, Response

from devstack.qstash_signing import sign_delivery
from lib.errors import AppError, BadRequest, MethodNotAllowed, NotFound, Unauthorized
from lib.settings import DEV_QSTASH_CURRENT_SIGNING_KEY, DEV_QSTASH_NEXT_SIGNING_KEY, DEV_QSTASH_TOKEN

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_RETRIES = 3
MAX_RETRIES = 100
PUBLISH_PREFIX = "/v2/publish/"
FORWARD_PREFIX = "upstash-forward-"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_FAULT_ALIASES = {
    "dropFirst": "drop_first", "dropRate": "drop_rate", "latencyMs": "latency_ms", "jitterMs": "jitter_ms"
}  # fmt: skip
# Stats counters; `pending` is derived from them.
_COUNTERS = (
    "published", "deduplicated", "deliveryAttempts", "succeeded", "failedAttempts", "dropped", "duplicated", "dlq"
)  # fmt: skip


class MessageStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DLQ = "dlq"


def parse_duration(text: str) -> float:
    """Seconds in a QStash duration (`500ms`, `10s`, `2m`, `1h30m`, `1d`; a bare number is seconds).

    Raises ValueError on anything else.
    """
    text = text.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    if not text or _DURATION.sub("", text):
        raise ValueError(f"invalid duration {text!r}")
    return sum(float(number) * _UNITS[unit] for number, unit in _DURATION.findall(text))


def compute_backoff(retried: int, scale: float) -> float:
    """Seconds to wait after attempt number `retried` (0-based) failed: QStash's curve, scaled."""
    return min(86400.0, math.exp(2.5 * retried)) * scale


def content_deduplication_id(url: str, body: bytes, headers: Mapping[str, str]) -> str:
    """QStash's content-based id: destination, body, Content-Type and forwarded headers."""
    digest = hashlib.sha256(url.encode())
    digest.update(b"\0" + body)
    for name, value in sorted((k.lower(), v) for k, v in headers.items()):
        digest.update(f"\0{name}:{value}".encode())
    return f"content:{digest.hexdigest()}"


@dataclass(frozen=True)
class Faults:
    """The fault switches; see the module docstring."""

    duplicate: bool = False
    drop_first: bool = False
    drop_rate: float = 0.0
    seed: int | None = None
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    paused: bool = False

    def updated(self, changes: Mapping[str, Any]) -> Faults:
        """A copy with `changes` applied; raises ValueError naming an unknown or invalid field."""
        values = asdict(self)
        for name, value in changes.items():
            key = _FAULT_ALIASES.get(name, name)
            if key not in values:
                raise ValueError(f"unknown fault {name!r}")
            values[key] = _checked_fault(key, value)
        return Faults(**values)

    def extra_delay(self, rng: random.Random) -> float:
        """Seconds added before an attempt by `latency_ms` and `jitter_ms`."""
        jitter = rng.uniform(0, self.jitter_ms) if self.jitter_ms else 0.0
        return (self.latency_ms + jitter) / 1000


def _checked_fault(key: str, value: Any) -> Any:
    if key in ("duplicate", "drop_first", "paused"):
        if not isinstance(value, bool):
            raise ValueError(f"{key} must be true or false")
        return value
    if key == "seed":
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError("seed must be an integer or null")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{key} must be a number >= 0")
    if key == "drop_rate" and value > 1:
        raise ValueError("drop_rate must be between 0 and 1")
    return float(value)


@dataclass
class Message:
    """One published message and where its delivery stands."""

    id: str
    url: str
    method: str
    body: bytes
    headers: dict[str, str]  # Content-Type and forwarded headers, as delivered
    retries: int
    timeout: float
    deduplication_id: str | None
    created_at: float
    rng: random.Random = field(repr=False)
    status: MessageStatus = MessageStatus.PENDING
    attempts: int = 0
    last_status: int | None = None
    last_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "messageId": self.id,
            "url": self.url,
            "method": self.method,
            "status": self.status,
            "attempts": self.attempts,
            "retries": self.retries,
            "deduplicationId": self.deduplication_id,
            "createdAt": int(self.created_at * 1000),
            "lastStatus": self.last_status,
            "lastError": self.last_error,
            "body": self.body.decode("utf-8", errors="replace"),
        }


@dataclass(order=True)
class _Attempt:
    due: float
    seq: int
    message_id: str = field(compare=False)
    copy_of: int | None = field(default=None, compare=False)  # a `duplicate` copy: the attempt it copies

    @property
    def copy(self) -> bool:
        return self.copy_of is not None


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # the server logs its own one line per publish and delivery


class QStashDevServer:
    """An in-memory QStash: an HTTP API on `url` and a pool of delivery threads."""

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        token: str = DEV_QSTASH_TOKEN,
        current_signing_key: str = DEV_QSTASH_CURRENT_SIGNING_KEY,
        next_signing_key: str = DEV_QSTASH_NEXT_SIGNING_KEY,
        *,
        backoff_scale: float = 0.02,
        delivery_timeout: float = 120.0,
        workers: int = 16,
        dedup_window: float = 600.0,
        max_messages: int = 10_000,
        faults: Faults | Mapping[str, Any] | None = None,
    ):
        self.host, self.port = host, port
        self._token, self._current_key, self._next_key = token, current_signing_key, next_signing_key
        self._backoff_scale, self._delivery_timeout = backoff_scale, delivery_timeout
        self._workers, self._dedup_window, self._max_messages = workers, dedup_window, max_messages
        self._faults = faults if isinstance(faults, Faults) else Faults().updated(faults or {})
        self._cond = threading.Condition()  # guards everything below
        self._schedule: list[_Attempt] = []
        self._messages: OrderedDict[str, Message] = OrderedDict()
        self._dedup: dict[str, tuple[str, float]] = {}  # deduplication id -> (message id, seen at)
        self._counts: Counter[str] = Counter()
        self._ordinal = 0  # messages published since the seed was set
        self._seq = itertools.count()
        self._stopping = False
        self._httpd: WSGIServer | None = None
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> QStashDevServer:
        """Listen and start delivering; returns once the socket accepts connections."""
        self._httpd = make_server(self.host, self.port, self._app, _ThreadingWSGIServer, _QuietHandler)
        self.port = self._httpd.server_port
        serve = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), name="qstash-dev-http", daemon=True)
        workers = [threading.Thread(target=self._work, name=f"qstash-dev-worker-{n}", daemon=True)
                   for n in range(self._workers)]  # fmt: skip
        self._threads = [serve, *workers]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and delivering. Deliveries in flight are abandoned (daemon threads)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        deadline = time.monotonic() + 2.0
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> QStashDevServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # Observation and control (also served under /__dev/)

    @property
    def faults(self) -> Faults:
        return self._faults

    def set_faults(self, changes: Mapping[str, Any]) -> Faults:
        """Merge `changes` into the faults; raises ValueError on a bad field."""
        with self._cond:
            self._faults = self._faults.updated(changes)
            if "seed" in changes:
                self._ordinal = 0
            self._cond.notify_all()  # `paused` may have changed
            return self._faults

    def stats(self) -> dict[str, int]:
        with self._cond:
            counts = {name: self._counts[name] for name in _COUNTERS}
        counts["pending"] = counts["published"] - counts["succeeded"] - counts["dlq"]
        return counts

    def messages(self, status: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        with self._cond:
            found = [m.to_json() for m in self._messages.values() if status is None or m.status == status]
        return found[-limit:] if limit and limit > 0 else found

    def reset(self) -> None:
        with self._cond:
            self._schedule.clear()
            self._messages.clear()
            self._dedup.clear()
            self._counts.clear()
            self._ordinal = 0

    # Publishing

    def _accept(self, request: Request, url: str) -> tuple[dict[str, Any], int]:
        """Store and schedule a publish; answer QStash's JSON and status."""
        now = time.time()
        header = request.headers.get
        body = request.get_data()
        headers = {name[len(FORWARD_PREFIX) :]: value for name, value in request.headers.items()
                   if name.lower().startswith(FORWARD_PREFIX)}  # fmt: skip
        if request.content_type:
            headers["Content-Type"] = request.content_type
        method = header("Upstash-Method", "POST").upper()
        try:
            retries = int(header("Upstash-Retries", DEFAULT_RETRIES))
            delay = parse_duration(header("Upstash-Delay", "0"))
            not_before = float(header("Upstash-Not-Before", 0))
            timeout = parse_duration(header("Upstash-Timeout")) if header("Upstash-Timeout") else None
        except ValueError as exc:
            raise BadRequest(f"invalid Upstash header: {exc}") from exc
        if method not in METHODS or not 0 <= retries <= MAX_RETRIES:
            raise BadRequest(f"Upstash-Method must be one of {METHODS}, Upstash-Retries 0..{MAX_RETRIES}")
        dedup_id = header("Upstash-Deduplication-Id")
        if dedup_id is None and header("Upstash-Content-Based-Deduplication", "").lower() == "true":
            dedup_id = content_deduplication_id(url, body, headers)
        with self._cond:
            self._forget_old_dedup_ids(now)
            if dedup_id is not None and dedup_id in self._dedup:
                self._counts["deduplicated"] += 1
                first_id = self._dedup[dedup_id][0]
                log.info("publish deduplicated url=%s dedup=%s -> %s", url, dedup_id, first_id)
                return {"messageId": first_id, "deduplicated": True}, 202
            seed = self._faults.seed
            rng = random.Random(f"{seed}:{self._ordinal}") if seed is not None else random.Random()
            message = Message(
                id=f"msg_{secrets.token_hex(12)}", url=url, method=method, body=body, headers=headers,
                retries=retries, timeout=timeout or self._delivery_timeout, deduplication_id=dedup_id,
                created_at=now, rng=rng,
            )  # fmt: skip
            self._ordinal += 1
            self._messages[message.id] = message
            if dedup_id is not None:
                self._dedup[dedup_id] = (message.id, now)
            self._counts["published"] += 1
            self._schedule_attempt(message, not_before or now + delay)
            self._forget_old_messages()
        log.info("publish %s url=%s delay=%.3gs retries=%d dedup=%s", message.id, url, delay, retries, dedup_id)
        return {"messageId": message.id}, 201

    def _forget_old_dedup_ids(self, now: float) -> None:
        # Insertion order is time order, so the expired ids are at the front.
        while self._dedup:
            dedup_id, (_, seen) = next(iter(self._dedup.items()))
            if now - seen < self._dedup_window:
                return
            del self._dedup[dedup_id]

    def _forget_old_messages(self) -> None:
        excess = len(self._messages) - self._max_messages
        if excess > 0:
            ended = [m.id for m in self._messages.values() if m.status is not MessageStatus.PENDING]
            for message_id in ended[:excess]:
                del self._messages[message_id]

    def _schedule_attempt(self, message: Message, due: float, *, copy_of: int | None = None) -> None:
        if copy_of is None:
            due += self._faults.extra_delay(message.rng)
        heapq.heappush(self._schedule, _Attempt(due, next(self._seq), message.id, copy_of))
        self._cond.notify_all()

    # Delivering

    def _work(self) -> None:
        while (attempt := self._next_attempt()) is not None:
            try:
                self._run(attempt)
            except Exception:  # a bug here must not silently stop a worker
                log.exception("delivery of %s crashed", attempt.message_id)

    def _next_attempt(self) -> _Attempt | None:
        """Wait until an attempt is due (and deliveries are not paused); None once stopping."""
        with self._cond:
            while not self._stopping:
                wait = None
                if self._schedule and not self._faults.paused:
                    wait = self._schedule[0].due - time.time()
                    if wait <= 0:
                        return heapq.heappop(self._schedule)
                self._cond.wait(wait)
            return None

    def _run(self, attempt: _Attempt) -> None:
        with self._cond:
            message = self._messages.get(attempt.message_id)
            if message is None or (message.status is not MessageStatus.PENDING and not attempt.copy):
                return  # reset, or ended by an earlier attempt
            faults = self._faults
            retried = message.attempts if attempt.copy_of is None else attempt.copy_of
            dropped = not attempt.copy and (
                (faults.drop_first and retried == 0)
                or (faults.drop_rate > 0 and message.rng.random() < faults.drop_rate)
            )
            if not attempt.copy:
                message.attempts += 1
                if retried == 0 and faults.duplicate:
                    self._counts["duplicated"] += 1
                    self._schedule_attempt(message, time.time(), copy_of=retried)
            self._counts["dropped" if dropped else "deliveryAttempts"] += 1
        started = time.monotonic()
        status, error = (None, "dropped by fault") if dropped else self._send(message, retried)
        with self._cond:
            outcome = self._settle(message, attempt, retried, status, error, dropped)
        log.info(
            "deliver %s%s url=%s retried=%d -> %s in %dms; %s", message.id, " (copy)" if attempt.copy else "",
            message.url, retried, status or error, (time.monotonic() - started) * 1000, outcome,
        )  # fmt: skip

    def _settle(self, message: Message, attempt: _Attempt, retried: int, status: int | None,
                error: str | None, dropped: bool) -> str:  # fmt: skip
        """Record an attempt's result; say what happens next."""
        if self._messages.get(message.id) is not message:
            return "forgotten by a reset"
        succeeded = status is not None and 200 <= status < 300
        if not succeeded and not dropped:
            self._counts["failedAttempts"] += 1
        if attempt.copy or message.status is not MessageStatus.PENDING:
            return "copy" if attempt.copy else f"already {message.status}"
        message.last_status, message.last_error = status, error
        if succeeded:
            message.status = MessageStatus.DELIVERED
            self._counts["succeeded"] += 1
            return "delivered"
        if retried < message.retries:
            backoff = compute_backoff(retried, self._backoff_scale)
            self._schedule_attempt(message, time.time() + backoff)
            return f"retry in {backoff:.3g}s"
        message.status = MessageStatus.DLQ
        self._counts["dlq"] += 1
        return "retries exhausted, moved to DLQ"

    def _send(self, message: Message, retried: int) -> tuple[int | None, str | None]:
        """One HTTP request to the destination: (status, None) or (None, error)."""
        target = urlsplit(message.url)
        path = (target.path or "/") + (f"?{target.query}" if target.query else "")
        headers = {
            **message.headers,
            "Upstash-Message-Id": message.id,
            "Upstash-Retried": str(retried),
            "Upstash-Signature": sign_delivery(message.body, message.url, self._current_key, time.time()),
            "User-Agent": "Upstash-QStash",
        }
        connection_class = http.client.HTTPSConnection if target.scheme == "https" else http.client.HTTPConnection
        connection = connection_class(target.netloc.rpartition("@")[2], timeout=message.timeout)
        try:
            connection.request(message.method, path, body=message.body, headers=headers)
            response = connection.getresponse()
            response.read()
            return response.status, None
        except (OSError, http.client.HTTPException) as exc:  # refused, reset, timeout, bad reply
            return None, f"{type(exc).__name__}: {exc}"
        finally:
            connection.close()

    # HTTP edge

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        try:
            payload, status = self._route(request)
            headers: dict[str, str] = {}
        except AppError as exc:
            payload, status, headers = {"error": exc.message}, exc.status, exc.headers
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            payload, status, headers = {"error": "internal error"}, 500, {}
        response = Response(json.dumps(payload), status, headers, mimetype="application/json")
        return response(environ, start_response)

    def _route(self, request: Request) -> tuple[Any, int]:
        path = request.path
        if path.startswith("/__dev/"):
            return self._control(request, path.removeprefix("/__dev/"))
        supplied = request.headers.get("Authorization", "")
        if not hmac.compare_digest(supplied.encode(), f"Bearer {self._token}".encode()):
            raise Unauthorized("Unauthorized: invalid or missing token")
        if path.startswith(PUBLISH_PREFIX):
            _require(request, "POST")
            return self._accept(request, _destination(request))
        if path == "/v2/keys":
            _require(request, "GET")
            return {"current": self._current_key, "next": self._next_key}, 200
        raise NotFound(f"{request.method} {path} is not supported by the QStash dev server")

    def _control(self, request: Request, name: str) -> tuple[Any, int]:
        if name == "faults":
            _require(request, "GET", "POST")
            if request.method == "GET":
                return asdict(self.faults), 200
            changes = request.get_json(silent=True)
            if not isinstance(changes, dict):
                raise BadRequest("send a JSON object of faults")
            try:
                return asdict(self.set_faults(changes)), 200
            except ValueError as exc:
                raise BadRequest(str(exc)) from exc
        if name == "stats":
            _require(request, "GET")
            return self.stats(), 200
        if name == "messages":
            _require(request, "GET")
            limit = request.args.get("limit", type=int)
            return self.messages(request.args.get("status"), limit), 200
        if name == "reset":
            _require(request, "POST")
            self.reset()
            return self.stats(), 200
        raise NotFound(f"no dev endpoint {name!r}")



def _require(request: Request, *methods: str) -> None:
    if request.method not in methods:
        raise MethodNotAllowed(list(methods))


def _destination(request: Request) -> str:
    """The destination URL: the path after /v2/publish/, with the query the SDK left on it."""
    url = request.path.removeprefix(PUBLISH_PREFIX)
    url = re.sub(r"^(https?):/(?!/)", r"\1://", url)  # a proxy may have merged the slashes
    query = request.query_string.decode("latin-1")
    url += f"?{query}" if query else ""
    target = urlsplit(url)
    if target.scheme not in ("http", "https") or not target.netloc:
        raise BadRequest(f"destination must be an http(s) URL (URL groups are not supported), got {url!r}")
    return url


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def main(argv: list[str] | None = None) -> int:
    """Run the dev server until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m devstack.qstash_server", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    parser.add_argument("--quiet", action="store_true", help="no log line per publish and delivery")
    parser.add_argument("--backoff-scale", type=float, default=0.02, help="multiplies QStash's retry backoff")
    parser.add_argument("--delivery-timeout", type=float, default=120.0, help="seconds per delivery attempt")
    parser.add_argument("--workers", type=int, default=16, help="concurrent deliveries")
    parser.add_argument("--faults", type=_json_object, default={}, help='JSON, e.g. \'{"duplicate": true}\'')
    args = parser.parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr, level=logging.WARNING if args.quiet else logging.INFO, format="%(asctime)s %(message)s"
    )
    try:
        server = QStashDevServer(
            args.host, args.port, backoff_scale=args.backoff_scale, delivery_timeout=args.delivery_timeout,
            workers=args.workers, faults=args.faults,
        ).start()  # fmt: skip
    except (OSError, ValueError) as exc:
        print(f"qstash dev server: {exc}", file=sys.stderr)
        return 1
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    print(f"QSTASH_URL={server.url}", flush=True)
    log.info("QStash dev server listening on %s (faults: %s)", server.url, asdict(server.faults))
    while not stopping.wait(0.5):
        pass
    server.stop()
    log.info("QStash dev server stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
