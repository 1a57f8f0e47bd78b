"""Google Custom Search JSON API client: `build_request` and `parse_response` around `http.send`.

GET `{GOOGLE_SEARCH_URL}` with params `key`, `cx`, `q`, `num` (1-10), and
`lr=lang_en|lang_fr`; the reply's `items[].title/link/snippet` are the results. A reply
without `items` means no page matched (that is how the API says it), not a bad reply.
"""

from __future__ import annotations

from typing import Any

from lib.providers.base import SearchResult
from lib.providers.http import HttpSearch, ProviderRequest, Session, bad_reply
from lib.settings import Settings

NAME = "google"
MAX_NUM = 10  # the API refuses num > 10


def build_request(settings: Settings, query: str, lang: str, limit: int) -> ProviderRequest:
    """The HTTP call for one search."""
    return ProviderRequest(
        method="GET",
        url=settings.google_search_url,
        params={
            "key": settings.google_search_api_key or "",
            "cx": settings.google_search_cx or "",
            "q": query,
            "num": str(max(1, min(MAX_NUM, limit))),
            "lr": "lang_fr" if lang == "fr" else "lang_en",
        },
    )


def parse_response(payload: Any) -> list[SearchResult]:
    """The results in a Custom Search reply. Raises `UpstreamError` PROVIDER_BAD_REPLY."""
    if not isinstance(payload, dict):
        raise bad_reply(NAME, "the reply is not a JSON object")
    items = payload.get("items", [])
    if not isinstance(items, list):
        raise bad_reply(NAME, "items is not a list")
    results = []
    for item in items:
        # An item without a link cannot be cited; skip it rather than fail the search.
        if isinstance(item, dict) and isinstance(item.get("link"), str) and item["link"]:
            results.append(
                SearchResult(title=_text(item.get("title")), url=item["link"], snippet=_text(item.get("snippet")))
            )
    return results


def _text(value: Any) -> str:
    return " ".join(value.split()) if isinstance(value, str) else ""


def client(settings: Settings, session: Session) -> HttpSearch:
    """The `SearchProvider` for a Google Programmable Search Engine."""
    return HttpSearch(NAME, settings, session, build_request, parse_response)
