"""The HTTP edge: WSGI endpoints, JSON bodies, the error envelope, one log line per request.

Every `api/` file builds one `Endpoint` around a handler from `lib` and exposes it as
`app`. An `Endpoint` is a plain object whose `__call__` takes `(environ,
start_response)`, which is what Vercel's Python loader recognises.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from werkzeug.wrappers import Request, Response

from lib.errors import AppError, BadRequest, MethodNotAllowed, PayloadTooLarge, Unauthorized, UnsupportedMediaType

log = logging.getLogger("ai_answers.http")

_READ_CHUNK = 64 * 1024


def to_jsonable(value: Any) -> Any:
    """JSON default: datetimes as ISO 8601 UTC with Z, anything else (ObjectId) as str."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return str(value)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(data, default=to_jsonable, ensure_ascii=False, separators=(",", ":"))
    response = Response(body, status=status, mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def error_response(error: AppError) -> Response:
    return json_response(error.to_body(), status=error.status, headers=error.headers)


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
    """Yield the body in chunks; raise 413 as soon as more than `limit` bytes arrive."""
    stream = request.stream
    total = 0
    while True:
        chunk = stream.read(_READ_CHUNK)
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
        request_id = request.headers.get("X-Vercel-Id") or request.headers.get("X-Request-Id") or uuid.uuid4().hex
        request_id = request_id[:64]
        call = Call(request=request, request_id=request_id, max_body_bytes=0)
        response = self._respond(call)
        response.headers["X-Request-Id"] = request_id
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
            if error.status >= 500:
                log.error("request id=%s failed code=%s: %s", call.request_id, error.code, error.message)
            return error_response(error)
        except Exception:  # the edge: anything unknown is a logged 500 with no detail leaked
            log.exception("request id=%s failed with an unexpected error", call.request_id)
            return error_response(AppError("An unexpected error occurred. Quote the request id to support.",
                                           details={"requestId": call.request_id}))
