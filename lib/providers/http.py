"""The one HTTP sender of the provider clients, and the one place that maps its errors.

`build_session(settings)` makes a `requests.Session` whose urllib3 `Retry` waits out
429s (honouring `Retry-After`) and retries 5xx replies and failed connections a bounded
number of times, POST included. `send(...)` makes one logical call through it and turns
every outcome that is not a usable JSON reply into exactly one `UpstreamError`, in the
style of httpx's `map_httpcore_exceptions`:

| what happened                          | code                   | retryable |
|----------------------------------------|------------------------|-----------|
| connect or read timeout                | PROVIDER_TIMEOUT       | yes       |
| refused, reset, DNS failure            | PROVIDER_UNREACHABLE   | yes       |
| 429 (after our own waits ran out)      | PROVIDER_RATE_LIMITED  | yes, with `retry_after` |
| 408, 5xx                               | PROVIDER_ERROR         | yes       |
| any other 4xx / 3xx                    | PROVIDER_REJECTED      | no        |
| 2xx whose body is not JSON             | PROVIDER_BAD_REPLY     | no        |
| our URL or key setting is unusable     | PROVIDER_UNREACHABLE   | no        |
| the provider's content filter refused  | CONTENT_FILTER         | no        |

A client recognises its provider's content-filter signal itself: in a 2xx reply, in its
`parse_response` (`content_filtered(...)`); in an error reply, with the `parse_error`
hook that `send` hands the decoded error body to before the table above applies
(Azure answers a filtered prompt with a 400).

Messages name the provider and the status, never a key: secrets in our headers and
query are blanked out of the excerpt of the provider's error body, and lower-level
exceptions are not chained because their text holds the full URL (Google's key rides
in the query string).

Nothing outside `lib/providers` imports `requests`.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import MaxRetryError, ReadTimeoutError, ResponseError
from urllib3.util.retry import Retry

from lib.errors import UpstreamError
from lib.providers.base import CONTENT_FILTER, Completion, CompletionRequest, SearchResult
from lib.settings import Settings

Session = requests.Session

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504, 529})  # 529: Anthropic's "overloaded"
BACKOFF_FACTOR = 0.5  # waits 0 s, 1 s, 2 s ... between attempts without a Retry-After
# A Retry-After longer than this is not slept inside a serverless step: the reply goes
# back to the engine as PROVIDER_RATE_LIMITED and the row is rescheduled instead.
MAX_RETRY_AFTER_WAIT = 5.0
SECRET_HEADERS = frozenset({"authorization", "api-key", "x-api-key"})
SECRET_PARAMS = frozenset({"key"})
ERROR_EXCERPT_CHARS = 200


@dataclass(frozen=True)
class ProviderRequest:
    """One HTTP call a provider client wants made; built by pure `build_request` functions."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    json: Any = None
    params: dict[str, str] | None = None


# A client's reading of an error reply (status, decoded JSON body or None): the error it
# means, or None to let `send` classify it by status.
ErrorParser = Callable[[int, Any], UpstreamError | None]


class _BoundedRetry(Retry):
    """urllib3's Retry that refuses long Retry-After waits, ignores garbled ones, and tells
    the provider's gate about every 429 it retries, so that other calls slow down too."""

    on_rate_limited: Callable[[float | None], None] | None = None

    def new(self, **kw: Any) -> Retry:
        retry = super().new(**kw)
        retry.on_rate_limited = self.on_rate_limited  # type: ignore[attr-defined]
        return retry

    def get_retry_after(self, response: Any) -> float | None:
        try:
            return super().get_retry_after(response)
        except Urllib3Error:  # a garbled header must not escape as a raw urllib3 error
            return None

    def increment(self, method: str | None = None, url: str | None = None, response: Any = None, **kw: Any) -> Retry:
        if response is not None and (self.get_retry_after(response) or 0) > MAX_RETRY_AFTER_WAIT:
            # With raise_on_status=False urllib3 hands this response back to `send`.
            reason = ResponseError("Retry-After too long to wait")
            raise MaxRetryError(kw.get("_pool"), url or "", reason)  # type: ignore[arg-type]
        retry = super().increment(method, url, response=response, **kw)
        # Only a 429 that urllib3 really retries is reported here; one handed back to the
        # caller is reported by the gate's slot, and must not slow the gate down twice.
        if response is not None and response.status == 429 and self.on_rate_limited is not None:
            self.on_rate_limited(self.get_retry_after(response))
        return retry


def build_retry(max_retries: int, on_rate_limited: Callable[[float | None], None] | None = None) -> Retry:
    """The transport retry policy: bounded, backing off, POST included, final reply returned."""
    retry = _BoundedRetry(
        total=max_retries,
        connect=max_retries,
        # A read timeout has already spent the whole read budget (up to a minute for an
        # AI reply); trying again inside the same serverless step would overrun it, so
        # the engine reschedules the row instead.
        read=False,
        status=max_retries,
        allowed_methods=None,  # None means every verb: AI calls are POSTs
        status_forcelist=RETRY_STATUSES,
        backoff_factor=BACKOFF_FACTOR,
        respect_retry_after_header=True,
        raise_on_status=False,  # the last reply is classified by `send`, not by urllib3
    )
    retry.on_rate_limited = on_rate_limited
    return retry


def build_session(settings: Settings, on_rate_limited: Callable[[float | None], None] | None = None) -> Session:
    """A session with the retry policy mounted and a pool big enough for the batch threads."""
    session = requests.Session()
    adapter = HTTPAdapter(
        max_retries=build_retry(settings.provider_max_retries, on_rate_limited),
        pool_maxsize=max(10, settings.batch_concurrency, settings.provider_max_in_flight),
    )
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = "ai-answers-batch/1"
    return session


def timeout_of(settings: Settings) -> tuple[float, float]:
    """The (connect, read) timeout pair every provider call uses."""
    return (settings.provider_connect_timeout, settings.provider_read_timeout)


def send(
    session: Session,
    method: str,
    url: str,
    *,
    provider: str,
    headers: dict[str, str],
    json: Any = None,
    params: dict[str, str] | None = None,
    timeout: tuple[float, float],
    parse_error: ErrorParser | None = None,
) -> Any:
    """Make one call and return its decoded JSON body. Raises `UpstreamError`, and only that.

    `parse_error` reads a non-2xx reply's body first (see the module docstring).
    """
    try:
        response = session.request(method, url, headers=headers, json=json, params=params, timeout=timeout)
    except requests.Timeout:
        # `from None` here and below: the cause's text holds the URL, and Google's key is in it.
        raise UpstreamError(
            f"{provider} did not answer in time", provider=provider, retryable=True, code="PROVIDER_TIMEOUT"
        ) from None
    except (
        requests.exceptions.InvalidURL,
        requests.exceptions.MissingSchema,
        requests.exceptions.InvalidSchema,
        requests.exceptions.InvalidHeader,
    ):
        # Our own settings are wrong (URL or key); sending again cannot help.
        raise UpstreamError(
            f"{provider} URL or key is not usable; check its settings",
            provider=provider,
            retryable=False,
            code="PROVIDER_UNREACHABLE",
        ) from None
    except (requests.RequestException, Urllib3Error) as exc:
        if _is_read_timeout(exc):
            raise UpstreamError(
                f"{provider} did not answer in time", provider=provider, retryable=True, code="PROVIDER_TIMEOUT"
            ) from None
        raise UpstreamError(
            f"{provider} could not be reached ({type(exc).__name__})",
            provider=provider,
            retryable=True,
            code="PROVIDER_UNREACHABLE",
        ) from None
    return _classify(response, provider, _secrets_of(headers, params), parse_error)


def send_call(session: Session, call: ProviderRequest, *, provider: str, settings: Settings,
              parse_error: ErrorParser | None = None) -> Any:
    """`send` for a request built by a client's `build_request`, with the settings' timeouts."""
    return send(session, call.method, call.url, provider=provider, headers=call.headers, json=call.json,
                params=call.params, timeout=timeout_of(settings), parse_error=parse_error)


class HttpChat:
    """An `AIProvider` over HTTP: a client module's `build_request` and `parse_response` around `send_call`
    (and its `parse_error`, when its provider says something in error replies that the status does not)."""

    def __init__(self, name: str, settings: Settings, session: Session,
                 build_request: Callable[[Settings, CompletionRequest], ProviderRequest],
                 parse_response: Callable[[Any], Completion], parse_error: ErrorParser | None = None):
        self.name, self.settings, self.session = name, settings, session
        self._build, self._parse, self._parse_error = build_request, parse_response, parse_error

    def complete(self, request: CompletionRequest) -> Completion:
        """Answer the conversation. Raises `UpstreamError` (CONTENT_FILTER when the provider's filter refused)."""
        call = self._build(self.settings, request)
        return self._parse(send_call(self.session, call, provider=self.name, settings=self.settings,
                                     parse_error=self._parse_error))


class HttpSearch:
    """A `SearchProvider` over HTTP: a client module's `build_request` and `parse_response` around `send_call`."""

    def __init__(self, name: str, settings: Settings, session: Session,
                 build_request: Callable[[Settings, str, str, int], ProviderRequest],
                 parse_response: Callable[[Any], list[SearchResult]]):
        self.name, self.settings, self.session = name, settings, session
        self._build, self._parse = build_request, parse_response

    def search(self, query: str, lang: str, referring_url: str | None = None, limit: int = 5) -> list[SearchResult]:
        """Search for pages answering `query` (the referring URL plays no part). Raises `UpstreamError`."""
        call = self._build(self.settings, query, lang, limit)
        return self._parse(send_call(self.session, call, provider=self.name, settings=self.settings))[:limit]


def token_count(value: Any) -> int:
    """A token count from a reply; accounting, not content, so a missing one is 0, not a bad reply."""
    return value if isinstance(value, int) and value >= 0 else 0


def _classify(response: requests.Response, provider: str, secrets: list[str],
              parse_error: ErrorParser | None = None) -> Any:
    """Turn a final reply into its JSON body or the matching `UpstreamError`."""
    status = response.status_code
    if 200 <= status < 300:
        try:
            return response.json()
        except ValueError:
            raise UpstreamError(
                f"{provider} answered {status} with a body that is not JSON",
                provider=provider,
                retryable=False,
                code="PROVIDER_BAD_REPLY",
            ) from None
    if parse_error is not None:
        try:
            body = response.json()
        except ValueError:
            body = None
        meant = parse_error(status, body)
        if meant is not None:
            raise meant
    excerpt = _excerpt(response.text, secrets)
    if status == 429:
        raise UpstreamError(
            f"{provider} is rate limiting us (429){excerpt}",
            provider=provider,
            retryable=True,
            code="PROVIDER_RATE_LIMITED",
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
    if status >= 500 or status == 408:
        raise UpstreamError(
            f"{provider} failed with {status}{excerpt}", provider=provider, retryable=True, code="PROVIDER_ERROR"
        )
    raise UpstreamError(
        f"{provider} rejected the request with {status}{excerpt}",
        provider=provider,
        retryable=False,
        code="PROVIDER_REJECTED",
    )


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta seconds or HTTP date); None if absent or garbled."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    parsed = email.utils.parsedate_tz(text)
    if parsed is None:
        return None
    return max(0.0, email.utils.mktime_tz(parsed) - (time.time() if now is None else now))


def bad_reply(provider: str, what: str) -> UpstreamError:
    """The error for a JSON reply that lacks what the client needs (permanent)."""
    return UpstreamError(
        f"{provider} sent a reply of the wrong shape: {what}",
        provider=provider,
        retryable=False,
        code="PROVIDER_BAD_REPLY",
    )


def content_filtered(provider: str, signal: str) -> UpstreamError:
    """The error for a reply in which the provider's content filter refused the text (permanent).

    `signal` names what the provider sent (e.g. `finish_reason: content_filter`); the
    message never quotes the filtered text.
    """
    return UpstreamError(
        f"{provider}'s content filter refused the request ({signal})",
        provider=provider,
        retryable=False,
        code=CONTENT_FILTER,
    )


def _is_read_timeout(exc: BaseException) -> bool:
    """requests wraps a read timeout met while reading the body in a ConnectionError."""
    seen: set[int] = set()
    pending: list[Any] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, (ReadTimeoutError, requests.Timeout)):
            return True
        if isinstance(current, MaxRetryError):
            pending.append(current.reason)
        if isinstance(current, BaseException):
            pending.extend(a for a in current.args if isinstance(a, BaseException))
            pending.append(current.__cause__)
    return False


def _secrets_of(headers: dict[str, str], params: dict[str, str] | None) -> list[str]:
    values = [v for k, v in headers.items() if k.lower() in SECRET_HEADERS]
    values += [v for k, v in (params or {}).items() if k in SECRET_PARAMS]
    # "Bearer sk-..." also hides the bare key, which providers sometimes echo back.
    values += [v.split(" ", 1)[1] for v in values if v.lower().startswith("bearer ")]
    return [v for v in values if v]


def _excerpt(text: str, secrets: list[str]) -> str:
    """A short, single-line piece of the provider's error body with our keys blanked out."""
    for secret in secrets:
        text = text.replace(secret, "***")
    text = " ".join(text.split())[:ERROR_EXCERPT_CHARS]
    return f": {text}" if text else ""
