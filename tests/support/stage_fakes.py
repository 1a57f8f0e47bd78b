"""Fake providers for the stage tests: tiny classes that implement the provider ports.

`ScriptedAI` answers each `complete` with the next scripted reply (a text, or an
exception to raise) and records the requests; `ListSearch` returns fixed results
and records the queries. Neither patches anything: they are what a stage is given.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from lib.errors import UpstreamError
from lib.providers.base import Completion, CompletionRequest, SearchResult


class ScriptedAI:
    """An `AIProvider` whose replies are written in advance, in order."""

    def __init__(self, *replies: str | Exception, name: str = "scripted", model: str = "fake-model"):
        self.name = name
        self.model = model
        self.replies = list(replies)
        self.requests: list[CompletionRequest] = []

    def complete(self, request: CompletionRequest) -> Completion:
        self.requests.append(request)
        if not self.replies:
            raise AssertionError(f"no scripted reply left for request #{len(self.requests)}")
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return Completion(text=reply, model=self.model, input_tokens=10 * len(self.requests), output_tokens=3)


def content_filter_error(provider: str = "scripted") -> UpstreamError:
    """What a provider client raises when the provider's content filter refuses the text."""
    return UpstreamError("The provider's content filter refused the prompt", provider=provider, retryable=False,
                         code="CONTENT_FILTER")


class ListSearch:
    """A `SearchProvider` with fixed results: per query when given a mapping, else the same list."""

    name = "list-search"

    def __init__(self, results: Iterable[SearchResult] | Mapping[str, Iterable[SearchResult]] = ()):
        self.results = {k: list(v) for k, v in results.items()} if isinstance(results, Mapping) else list(results)
        self.calls: list[tuple[str, str, str | None, int]] = []

    def search(self, query: str, lang: str, referring_url: str | None = None, limit: int = 5) -> list[SearchResult]:
        self.calls.append((query, lang, referring_url, limit))
        found = self.results.get(query, []) if isinstance(self.results, dict) else self.results
        return list(found)[:limit]


def result(url: str, title: str = "A page", snippet: str = "A summary.") -> SearchResult:
    """A search result with just the URL that matters to a test."""
    return SearchResult(title=title, url=url, snippet=snippet)
