"""One turn sent to a deployed AI Answers and its stream read to the end, within a deadline.

The deployed assistant is a provider like the others, so this is where `requests` is met
for it and where its errors become `UpstreamError`s, once. It differs from
`lib.providers.http` in what it may retry: the endpoint is not idempotent (a retry after
a lost reply asks the question again), so the transport retries only a connection that
was never made, and never a status or a read.

The stream is read to its end (the deployment records the interaction after it sends
`result`; a client that hangs up early loses that record), but never past the deadline:
each read waits at most until then, so keepalives extend nothing. Our own end of a
stream given up on at the deadline comes back as AI_ANSWERS_TIMEOUT with `request_open`
set: the deployment may still be running that request.

Cookies are the conversation's own (each conversation has its session), sent and read
by hand: the process's session is shared by every thread and keeps no cookie jar.
"""

from __future__ import annotations

import http.cookiejar
import time
from dataclasses import dataclass, field
from http.cookies import CookieError, SimpleCookie
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.util.retry import Retry

from lib.errors import UpstreamError
from lib.pipelines.ai_answers_wire import ENDPOINT_PATH, PROVIDER, StreamOutcome, refusal_error, take_event
from lib.pipelines.events import EventParser, StreamTooLarge, framing_of
from lib.providers.http import parse_retry_after

READ_CHUNK = 65536
CONNECT_RETRIES = 2
MIN_READ_WAIT = 0.05


class _NoCookies(http.cookiejar.DefaultCookiePolicy):
    """The shared session never stores a cookie: each conversation carries its own."""

    def set_ok(self, cookie: http.cookiejar.Cookie, request: Any) -> bool:
        return False


@dataclass
class TurnReply:
    """What one request came to: the stream's outcome and the conversation's cookies after it."""

    outcome: StreamOutcome
    cookies: dict[str, str]
    ended_cleanly: bool  # the stream was read to its end (not cut by us at the deadline)
    framing: str | None = None
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


class AIAnswersTransport:
    def __init__(self, base_url: str, *, token: str | None, connect_timeout: float, read_timeout: float,
                 pool_size: int = 32, session: requests.Session | None = None):
        self.url = base_url.rstrip("/") + ENDPOINT_PATH
        self._token = token
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.session = session or build_session(pool_size)

    def send_turn(self, body: dict[str, Any], cookies: dict[str, str], deadline: float) -> TurnReply:
        """POST one turn and read its stream until it ends or `deadline` (time.monotonic()) passes.

        Raises `UpstreamError` for a refusal (see `refusal_error`), an unreachable deployment,
        no first byte before the deadline, or a reply that is not a stream.
        """
        started = time.monotonic()
        remaining = deadline - started
        if remaining <= 0:
            raise UpstreamError("no time left to ask ai-answers", provider=PROVIDER, retryable=True,
                                code="AI_ANSWERS_TIMEOUT")
        headers = {"Accept": "text/event-stream, application/x-ndjson", "Content-Type": "application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        if cookies:
            headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in cookies.items())
        try:
            response = self.session.post(self.url, json=body, headers=headers, stream=True,
                                         timeout=(self.connect_timeout, max(MIN_READ_WAIT, min(self.read_timeout,
                                                                                           remaining))))
        except requests.exceptions.ConnectTimeout:
            # Never connected: nothing reached the deployment.
            raise UpstreamError("ai-answers could not be reached in time", provider=PROVIDER, retryable=True,
                                code="AI_ANSWERS_UNREACHABLE") from None
        except requests.exceptions.ConnectionError as exc:
            if _is_timeout(exc):
                raise _timeout("ai-answers sent nothing before the deadline", open_=True) from None
            raise UpstreamError(f"ai-answers could not be reached ({type(exc).__name__})", provider=PROVIDER,
                                retryable=True, code="AI_ANSWERS_UNREACHABLE") from None
        except requests.Timeout:
            raise _timeout("ai-answers sent nothing before the deadline", open_=True) from None
        except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                requests.exceptions.InvalidSchema, requests.exceptions.InvalidHeader):
            raise UpstreamError("AI_ANSWERS_URL or AI_ANSWERS_TOKEN is not usable; check the settings",
                                provider=PROVIDER, retryable=False, code="AI_ANSWERS_UNREACHABLE") from None
        except (requests.RequestException, Urllib3Error) as exc:
            raise UpstreamError(f"ai-answers could not be reached ({type(exc).__name__})", provider=PROVIDER,
                                retryable=True, code="AI_ANSWERS_UNREACHABLE") from None
        with response:
            jar = merge_cookies(cookies, response.raw.headers.getlist("Set-Cookie"))
            if response.status_code != 200:
                raise refusal_error(response.status_code, _json_or_none(response),
                                    parse_retry_after(response.headers.get("Retry-After")))
            return self._read_stream(response, jar, deadline, started)

    def _read_stream(self, response: requests.Response, cookies: dict[str, str], deadline: float,
                     started: float) -> TurnReply:
        parser = EventParser(framing_of(response.headers.get("Content-Type")))
        outcome = StreamOutcome()
        raw = response.raw
        ended = False
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                _set_read_timeout(raw, max(MIN_READ_WAIT, min(self.read_timeout, remaining)))
                chunk = raw.read1(READ_CHUNK)
                if not chunk:
                    ended = True
                    break
                for event in parser.feed(chunk):
                    take_event(outcome, event.name, event.data, time.monotonic() - started)
        except (Urllib3Error, OSError, requests.RequestException) as exc:
            if _is_timeout(exc) and not outcome.final:
                raise _timeout("ai-answers' stream went silent before it answered", open_=True) from None
            # Dropped by the far end: what arrived stands; a stream with no result is retried.
            ended = not _is_timeout(exc)
        except StreamTooLarge:
            raise UpstreamError("ai-answers sent an event too large to be an answer", provider=PROVIDER,
                                retryable=False, code="AI_ANSWERS_BAD_REPLY") from None
        if ended:
            for event in parser.close():
                take_event(outcome, event.name, event.data, time.monotonic() - started)
        outcome.malformed = max(outcome.malformed, parser.malformed)
        if not outcome.final and not ended:
            raise _timeout("ai-answers did not answer before the deadline", open_=True)
        return TurnReply(outcome=outcome, cookies=cookies, ended_cleanly=ended, framing=parser.framing,
                         seconds=time.monotonic() - started)


def build_session(pool_size: int) -> requests.Session:
    """A session that retries only connections never made (the endpoint is not idempotent), keeps no cookies."""
    session = requests.Session()
    retry = Retry(total=CONNECT_RETRIES, connect=CONNECT_RETRIES, read=0, status=0, other=0, redirect=0,
                  allowed_methods=None, raise_on_status=False, backoff_factor=0.2)
    adapter = HTTPAdapter(max_retries=retry, pool_maxsize=max(10, pool_size))
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.cookies.set_policy(_NoCookies())
    session.headers["User-Agent"] = "ai-answers-batch/1"
    return session


def merge_cookies(cookies: dict[str, str], set_cookie_headers: list[str]) -> dict[str, str]:
    """The conversation's cookies after a reply's Set-Cookie headers (an expired one is dropped)."""
    jar = dict(cookies)
    for header in set_cookie_headers:
        parsed: SimpleCookie = SimpleCookie()
        try:
            parsed.load(header)
        except CookieError:
            continue
        for name, morsel in parsed.items():
            if morsel["max-age"] in ("0", "-1") or (morsel["expires"] and "1970" in morsel["expires"]):
                jar.pop(name, None)
            else:
                jar[name] = morsel.value
    return jar


def _set_read_timeout(raw: Any, seconds: float) -> None:
    """Bound the next read of the stream (urllib3 keeps the socket on the response's connection)."""
    sock = getattr(getattr(raw, "connection", None), "sock", None) or getattr(getattr(raw, "_connection", None),
                                                                               "sock", None)
    if sock is not None:
        sock.settimeout(seconds)


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except (ValueError, requests.RequestException, Urllib3Error, OSError):
        return None


def _timeout(message: str, *, open_: bool) -> UpstreamError:
    error = UpstreamError(message, provider=PROVIDER, retryable=True, code="AI_ANSWERS_TIMEOUT")
    error.details["requestOpen"] = open_
    return error


def _is_timeout(exc: BaseException) -> bool:
    seen: set[int] = set()
    pending: list[Any] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen or not isinstance(current, BaseException):
            continue
        seen.add(id(current))
        if isinstance(current, (TimeoutError, requests.Timeout)) or type(current).__name__.endswith("TimeoutError"):
            return True
        pending.extend(a for a in current.args if isinstance(a, BaseException))
        pending.extend([current.__cause__, current.__context__, getattr(current, "reason", None)])
    return False
