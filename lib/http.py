"""The HTTP edge: WSGI endpoints, JSON bodies, the error envelope, one log line per request.

Every `api/` file builds one `Endpoint` around a handler from `lib` and exposes it as
`app`. An `Endpoint` is a plain object whose `__call__` takes `(environ,
start_response)`, which is what Vercel's Python loader recognises.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from werkzeug.exceptions import ClientDisconnected
from werkzeug.wrappers import Request, Response

from lib.errors import AppError, BadRequest, MethodNotAllowed, PayloadTooLarge, Unauthorized, UnsupportedMediaType

log = logging.getLogger("ai_answers.http")

_READ_CHUNK = 64 * 1024

# An incoming request id is written into the log line and echoed back, so only ids that
# cannot forge a field (no spaces, `=`, control characters) are taken; Vercel's look like
# `iad1::abcde-1234567890123-abcdef123456`.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
REQUEST_ID_HEADERS = ("X-Vercel-Id", "X-Request-Id")

CLIENT_DISCONNECTED = "CLIENT_DISCONNECTED"

# A 503 tells the caller to come back; without a Retry-After, clients guess (or hammer).
DEFAULT_RETRY_AFTER_SECONDS = 5

# Where the page may send a file straight to (a presigned POST, lib/direct_upload.py). In
# production that is the bucket's virtual-hosted S3 name, which boto3 presigns as
# https://<bucket>.s3.amazonaws.com in every region; the local stack computes its own
# (moto's server) with `storage_sources`.
PRODUCTION_STORAGE_SOURCES = ("https://*.s3.amazonaws.com",)


def content_security_policy(storage_sources: Sequence[str] = PRODUCTION_STORAGE_SOURCES) -> str:
    """The page's policy; `storage_sources` are the origins it may post files to."""
    return "; ".join((
        "default-src 'self'",
        "script-src 'self'",  # the Vite build has no inline script (tests/unit/test_page_headers.py checks)
        "style-src 'self'",
        "img-src 'self' data:",  # the favicon is a data: URL
        " ".join(("connect-src 'self'", *storage_sources)),
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "object-src 'none'",
    ))


def storage_sources(endpoint_url: str | None, bucket: str | None, region: str | None) -> tuple[str, ...]:
    """The origins a presigned POST of these storage settings goes to (none without a bucket).

    An S3-compatible server (S3_ENDPOINT_URL, moto's locally) is addressed by path: its
    own origin. AWS itself: the bucket's virtual-hosted names, or the regional endpoint
    for a bucket name with dots (which boto3 addresses by path).
    """
    if not bucket:
        return ()
    if endpoint_url:
        parts = urlsplit(endpoint_url)
        return (f"{parts.scheme}://{parts.netloc}",) if parts.scheme in ("http", "https") and parts.netloc else ()
    region = region or "us-east-1"
    if "." in bucket:
        return ("https://s3.amazonaws.com",) if region == "us-east-1" else (f"https://s3.{region}.amazonaws.com",)
    return (f"https://{bucket}.s3.amazonaws.com", f"https://{bucket}.s3.{region}.amazonaws.com")


def page_headers(storage: Sequence[str] = PRODUCTION_STORAGE_SOURCES) -> Mapping[str, str]:
    """The headers of the page (the static UI), its policy allowing posts to `storage`."""
    return MappingProxyType({
        "Content-Security-Policy": content_security_policy(storage),
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
    })


CONTENT_SECURITY_POLICY = content_security_policy()
# The headers of the page in production, in one place: vercel.json's `headers` mirrors
# them (a test keeps the two equal); the local app server sends `page_headers` of its
# own storage settings.
PAGE_HEADERS: Mapping[str, str] = page_headers()


def to_jsonable(value: Any) -> Any:
    """JSON default: datetimes as ISO 8601 UTC with Z, anything else (ObjectId) as str."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return str(value)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON answer that no cache keeps (answers here are per user and change as batches run)."""
    body = json.dumps(data, default=to_jsonable, ensure_ascii=False, separators=(",", ":"))
    response = Response(body, status=status, mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def error_response(error: AppError) -> Response:
    """The error envelope of api.md, with the error's headers; a 503 always says when to retry."""
    headers = dict(error.headers)
    if error.status == 503:
        headers.setdefault("Retry-After", str(DEFAULT_RETRY_AFTER_SECONDS))
    return json_response(error.to_body(), status=error.status, headers=headers)


def request_id_of(request: Request) -> str:
    """The caller's (or Vercel's) request id when it is well formed, otherwise a fresh one."""
    for name in REQUEST_ID_HEADERS:
        given = request.headers.get(name)
        if given is not None and _REQUEST_ID.fullmatch(given):
            return given
    return uuid.uuid4().hex


@dataclass
class Call:
    """One request as the handler sees it: the werkzeug request, its id, and its caller."""

    request: Request
    request_id: str
    max_body_bytes: int
    user: Any = None
    log_fields: dict[str, Any] = field(default_factory=dict)

    def check_length(self) -> None:
        """Refuse with 413 a body whose declared length passes the cap, before reading it."""
        length = self.request.content_length
        if length is not None and length > self.max_body_bytes:
            raise PayloadTooLarge(
                f"The request body is {length} bytes; the limit is {self.max_body_bytes}.",
                details={"maxBytes": self.max_body_bytes},
            )

    def read_body(self) -> bytes:
        """The raw body, refused with 413 once it passes the cap (before reading further)."""
        self.check_length()
        return b"".join(iter_body(self.request, self.max_body_bytes))

    def json_body(self) -> dict[str, Any]:
        """The body parsed as a JSON object (400 for anything else)."""
        mimetype = self.request.mimetype
        if mimetype and mimetype != "application/json":
            raise UnsupportedMediaType("Send the body as application/json.", code="UNSUPPORTED_CONTENT_TYPE")
        return parse_json_object(self.read_body(), code="INVALID_JSON")

    def query(self, name: str) -> str | None:
        value = self.request.args.get(name)
        return value if value not in (None, "") else None

    def bearer_token(self) -> str:
        header = self.request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Send an Authorization: Bearer <token> header.", code="MISSING_TOKEN")
        return token.strip()


def parse_json_object(raw: bytes, *, code: str) -> dict[str, Any]:
    """A JSON object from a raw body; `BadRequest(code)` for anything else.

    Refused too: nesting too deep for the parser, and strings that cannot be stored
    (lone surrogates such as "\\ud800" decode fine but do not encode to UTF-8 or BSON).
    """
    if not raw.strip():
        raise BadRequest("The request body is empty; send a JSON object.", code=code)
    try:
        data = json.loads(raw)
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except (UnicodeDecodeError, UnicodeEncodeError, json.JSONDecodeError, RecursionError) as exc:
        raise BadRequest(f"The request body is not valid JSON: {exc.__class__.__name__}.", code=code) from exc
    if not isinstance(data, dict):
        raise BadRequest("The request body must be a JSON object.", code=code)
    return data


def iter_body(request: Request, limit: int) -> Iterator[bytes]:
    """Yield the body in chunks; raise 413 as soon as more than `limit` bytes arrive.

    Raises `BadRequest(CLIENT_DISCONNECTED)` when the body ends, or stalls past the
    server's read timeout, before its Content-Length: the client's doing, never a 500.
    """
    stream = request.stream
    total = 0
    while True:
        try:
            chunk = stream.read(_READ_CHUNK)
        except ClientDisconnected as exc:  # werkzeug's: the stream ended early, or the socket read failed
            raise BadRequest("The request body ended before its Content-Length.",
                             code=CLIENT_DISCONNECTED) from exc
        if not chunk:
            return
        total += len(chunk)
        if total > limit:
            raise PayloadTooLarge(
                f"The request body is larger than the limit of {limit} bytes.", details={"maxBytes": limit}
            )
        yield chunk


Handler = Callable[[Call], Response]


class Endpoint:
    """A WSGI application for one route: method check, body cap, errors, logging."""

    def __init__(
        self,
        handler: Handler,
        *,
        methods: Iterable[str],
        authenticate: Callable[[Call], Any] | None = None,
        max_body_bytes: Callable[[], int] | None = None,
    ):
        self.handler = handler
        self.methods = [m.upper() for m in methods]
        self.authenticate = authenticate
        self.max_body_bytes = max_body_bytes or (lambda: 4_718_592)
        self.name = getattr(handler, "__name__", "endpoint")

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        started = time.perf_counter()
        request = Request(environ)
        request_id = request_id_of(request)
        call = Call(request=request, request_id=request_id, max_body_bytes=0)
        response = self._respond(call)
        response.headers["X-Request-Id"] = request_id
        # Every answer, errors and preflights included: a browser must never sniff JSON as HTML.
        response.headers["X-Content-Type-Options"] = "nosniff"
        user_id = getattr(call.user, "id", None)
        extra = "".join(f" {k}={v}" for k, v in call.log_fields.items())
        log.info(
            "request id=%s method=%s path=%s status=%s ms=%.0f user=%s%s",
            request_id,
            request.method,
            request.path,
            response.status_code,
            (time.perf_counter() - started) * 1000,
            user_id or "-",
            extra,
        )
        return response(environ, start_response)

    def _respond(self, call: Call) -> Response:
        try:
            head_of_get = call.request.method == "HEAD" and "GET" in self.methods  # werkzeug sends no body
            if call.request.method not in self.methods and not head_of_get:
                if call.request.method == "OPTIONS":
                    return Response(status=204, headers={"Allow": ", ".join(self.methods)})
                raise MethodNotAllowed(self.methods)
            call.max_body_bytes = self.max_body_bytes()
            if self.authenticate is not None:
                call.user = self.authenticate(call)
            return self.handler(call)
        except AppError as error:
            _log_known_error(call.request_id, error)
            return error_response(error)
        except Exception:  # the edge: anything unknown is a logged 500 with no detail leaked
            log.exception("request id=%s failed with an unexpected error", call.request_id)
            return error_response(AppError("An unexpected error occurred. Quote the request id to support.",
                                           details={"requestId": call.request_id}))


def _log_known_error(request_id: str, error: AppError) -> None:
    """Our faults (5xx) at ERROR; a client that went away at INFO; other 4xx only in the request line."""
    if error.status >= 500:
        log.error("request id=%s failed code=%s: %s", request_id, error.code, error.message)
    elif error.code == CLIENT_DISCONNECTED:
        log.info("request id=%s client went away before sending its whole body", request_id)
