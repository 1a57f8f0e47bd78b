"""Provider names to provider objects: the one place that wires clients to sessions.

A batch or chat request names its providers (`aiProvider`, `searchProvider`); these
functions turn a name into a ready client, or refuse with 400 UNKNOWN_PROVIDER when the
name is unknown or its settings are missing. HTTP clients share one `requests.Session`
per provider per process, made on first use, so warm invocations reuse connections.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from lib.errors import BadRequest
from lib.providers import anthropic, azure, canadaca, google, openai
from lib.providers.base import AIProvider, Completion, CompletionRequest, SearchProvider, SearchResult
from lib.providers.gate import Limits, ProviderGate
from lib.providers.http import Session, build_session
from lib.providers.offline import OfflineAI, OfflineSearch
from lib.settings import Settings

AI_CLIENTS: dict[str, Callable[[Settings, Session], AIProvider]] = {
    "openai": openai.client,
    "azure": azure.client,
    "anthropic": anthropic.client,
}
SEARCH_CLIENTS: dict[str, Callable[[Settings, Session], SearchProvider]] = {
    "google": google.client,
    "canadaca": canadaca.client,
}

# Keyed by settings too: the retry policy and pool size are baked into a session, so
# settings built for a test must not be served a session made for other settings.
_sessions: dict[tuple[str, Settings], Session] = {}
_sessions_lock = threading.Lock()


_gates: dict[tuple[str, Settings], ProviderGate] = {}


def shared_gate(provider: str, settings: Settings) -> ProviderGate:
    """The process's gate for a provider: every batch and chat in this instance shares it."""
    key = (provider, settings)
    with _sessions_lock:
        if key not in _gates:
            _gates[key] = ProviderGate(provider, Limits(*settings.provider_limits(provider)))
        return _gates[key]


def shared_session(provider: str, settings: Settings) -> Session:
    """The process's session for a provider, created on first use."""
    key = (provider, settings)
    with _sessions_lock:
        if key not in _sessions:
            gate = _gates.get((provider, settings))
            _sessions[key] = build_session(settings, gate.rate_limited if gate else None)
        return _sessions[key]


class GatedAI:
    """An AI provider whose calls pass through the provider's gate."""

    def __init__(self, inner: AIProvider, gate: ProviderGate, wait_seconds: float):
        self.inner, self.gate, self.wait_seconds = inner, gate, wait_seconds
        self.name = inner.name
        self.latency_seconds = getattr(inner, "latency_seconds", 0.0)  # the offline provider's, for its stages

    def complete(self, request: CompletionRequest) -> Completion:
        with self.gate.slot(self.wait_seconds):
            return self.inner.complete(request)


class GatedSearch:
    """A search provider whose calls pass through the provider's gate."""

    def __init__(self, inner: SearchProvider, gate: ProviderGate, wait_seconds: float):
        self.inner, self.gate, self.wait_seconds = inner, gate, wait_seconds
        self.name = inner.name

    def search(self, query: str, lang: str, referring_url: str | None = None, limit: int = 5) -> list[SearchResult]:
        with self.gate.slot(self.wait_seconds):
            return self.inner.search(query, lang, referring_url, limit)


def build_ai_provider(name: str, settings: Settings, session: Session | None = None) -> AIProvider:
    """The AI provider called `name`. Raises `BadRequest` UNKNOWN_PROVIDER."""
    _check(name, settings.configured_ai_providers(), field="aiProvider")
    if name == "offline":
        return OfflineAI(settings)
    gate = shared_gate(name, settings)
    client = AI_CLIENTS[name](settings, session or shared_session(name, settings))
    return GatedAI(client, gate, settings.provider_wait_seconds)


def build_search_provider(name: str, settings: Settings, session: Session | None = None) -> SearchProvider:
    """The search provider called `name`. Raises `BadRequest` UNKNOWN_PROVIDER."""
    _check(name, settings.configured_search_providers(), field="searchProvider")
    if name == "offline":
        return OfflineSearch(settings)
    gate = shared_gate(name, settings)
    client = SEARCH_CLIENTS[name](settings, session or shared_session(name, settings))
    return GatedSearch(client, gate, settings.provider_wait_seconds)


def _check(name: str, configured: tuple[str, ...], *, field: str) -> None:
    if name not in configured:
        raise BadRequest(
            f"{field} must be one of {', '.join(configured)}; {name[:40]!r} is unknown or not configured",
            code="UNKNOWN_PROVIDER",
            details={"field": field, "allowed": list(configured)},
        )


def citation_session(settings: Settings) -> Session | None:
    """The session that checks cited pages live (stage 9), when `CITATION_CHECK` is on."""
    return shared_session("citation", settings) if settings.citation_check else None
