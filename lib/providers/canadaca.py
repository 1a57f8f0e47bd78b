"""Canada.ca search client: `build_request` and `parse_response` around `http.send`.

Canada.ca's site search has no published JSON API, so this client speaks a small
contract that a proxy in front of it (or the local stub) provides:

    GET {CANADACA_SEARCH_URL}?q=<question>&lang=en|fr&rows=<n>
    x-api-key: <CANADACA_SEARCH_KEY>          (only when the key is set)

    200 {"results": [{"title": "...", "url": "https://www.canada.ca/...", "snippet": "..."}]}

`results` must be a list (an empty one means no page matched); a result without a
`url` is skipped; `title` and `snippet` default to "".
"""

from __future__ import annotations

from typing import Any

from lib.providers.base import SearchResult
from lib.providers.http import HttpSearch, ProviderRequest, Session, bad_reply
from lib.settings import Settings

NAME = "canadaca"


def build_request(settings: Settings, query: str, lang: str, limit: int) -> ProviderRequest:
    """The HTTP call for one search."""
    headers = {"x-api-key": settings.canadaca_search_key} if settings.canadaca_search_key else {}
    return ProviderRequest(
        method="GET",
        url=settings.canadaca_search_url or "",
        headers=headers,
        params={"q": query, "lang": "fr" if lang == "fr" else "en", "rows": str(max(1, limit))},
    )


def parse_response(payload: Any) -> list[SearchResult]:
    """The results in a search reply. Raises `UpstreamError` PROVIDER_BAD_REPLY."""
    if not isinstance(payload, dict):
        raise bad_reply(NAME, "the reply is not a JSON object")
    results = payload.get("results")
    if not isinstance(results, list):
        raise bad_reply(NAME, "no results list")
    return [
        SearchResult(title=_text(item.get("title")), url=item["url"], snippet=_text(item.get("snippet")))
        for item in results
        if isinstance(item, dict) and isinstance(item.get("url"), str) and item["url"]
    ]


def _text(value: Any) -> str:
    return " ".join(value.split()) if isinstance(value, str) else ""


def client(settings: Settings, session: Session) -> HttpSearch:
    """The `SearchProvider` for the Canada.ca search endpoint."""
    return HttpSearch(NAME, settings, session, build_request, parse_response)
