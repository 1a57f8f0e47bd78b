"""Stage 6: the query on the search provider, top 3 results, one retry with a simpler query.

When a query finds one result or none, the query rewrite is asked once for a simpler
query (`simplify`), and the retry's results are kept when there are more of them.
Search failures are not blocks: the provider's `UpstreamError` goes up as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lib.chat.stages.base import NO_USAGE, Usage
from lib.chat.stages.query_rewrite import RewriteResult
from lib.providers.base import SearchProvider, SearchResult

STAGE = "search"
TOP_RESULTS = 3
RETRY_AT_MOST = 1  # a query with this many results or fewer is retried once, simpler


@dataclass(frozen=True)
class SearchInput:
    """The query, the language to search in ("en" or "fr"), and the page the user asked from."""

    query: str
    lang: str = "en"
    referring_url: str | None = None


@dataclass(frozen=True)
class SearchOutcome:
    """The results kept (at most three), the query that found them, and whether it was a retry.

    `first_query` is the original query when a retry ran; `usage` is what the simpler
    query's rewrite cost.
    """

    query: str
    results: tuple[SearchResult, ...]
    provider: str
    retried: bool = False
    first_query: str | None = None
    usage: Usage = NO_USAGE


def needs_retry(results: list[SearchResult]) -> bool:
    """Whether a search found too little to answer from (one result or none)."""
    return len(results) <= RETRY_AT_MOST


def run(
    inp: SearchInput,
    search: SearchProvider,
    simplify: Callable[[str], RewriteResult] | None = None,
) -> SearchOutcome:
    """Stage 6: search, and retry once with `simplify(query)` when one result or none came back.

    Raises `UpstreamError` when the search provider fails (or the simpler rewrite does).
    """
    results = search.search(inp.query, inp.lang, inp.referring_url, TOP_RESULTS)[:TOP_RESULTS]
    if not needs_retry(results) or simplify is None:
        return SearchOutcome(inp.query, tuple(results), search.name)
    simpler = simplify(inp.query)
    if not simpler.query.strip() or simpler.query.strip().lower() == inp.query.strip().lower():
        return SearchOutcome(inp.query, tuple(results), search.name, usage=simpler.usage)
    retry = search.search(simpler.query, simpler.query_lang, inp.referring_url, TOP_RESULTS)[:TOP_RESULTS]
    if len(retry) > len(results):
        return SearchOutcome(simpler.query, tuple(retry), search.name, retried=True, first_query=inp.query,
                             usage=simpler.usage)
    return SearchOutcome(inp.query, tuple(results), search.name, retried=True, first_query=inp.query,
                         usage=simpler.usage)
