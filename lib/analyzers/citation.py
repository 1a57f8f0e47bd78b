"""The citation analyzer (rules): is the row's citation a proper link, on an allowed site, the expected one.

- `wellFormed`: an http or https URL with a host, by the citation stage's own rules
  (`lib.chat.stages.citation.rejection`: no spaces, a numeric port, no user name, at
  most 2,000 characters).
- `allowedDomain`: on canada.ca, gc.ca or a subdomain of either (the stage's
  `ALLOWED_DOMAINS`; a department's own site is not known here).
- `liveStatus`: the pipeline's live check, when it made one: `verified` (the page
  answered) or `fallback` (the model's link failed a check and the search page took its
  place); None when no live check ran. No request is made here: the live check is the
  citation stage's (setting `CITATION_CHECK`), so a batch never fetches a page twice.
- `matchesExpected`: equal to the file's `expectedCitation` after `normalize_url`
  (scheme, host case, `www.`, trailing slash and fragment ignored); None without one.

A blocked row has no citation: every cell is None.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from lib.analyzers.base import Cells, References, RowResult, empty
from lib.chat.stages.citation import ALLOWED_DOMAINS, CitationStatus, rejection
from lib.providers.base import AIProvider

NAME = "citation"
PREFIX = "citation"
COLUMNS = ("citation.wellFormed", "citation.allowedDomain", "citation.liveStatus", "citation.matchesExpected",
           "citation.error")
NEEDS_MODEL = False
SCHEMES = ("https", "http")
# The pipeline's statuses that say a live check ran; "unchecked" says it did not.
LIVE_STATUSES = (CitationStatus.VERIFIED.value, CitationStatus.FALLBACK.value)


def host_of(url: str) -> str:
    """The URL's host, lower-case, or "" when it has none or cannot be read."""
    try:
        return (urlsplit(url).hostname or "").rstrip(".")
    except ValueError:
        return ""


def is_well_formed(url: str) -> bool:
    """Whether `url` is an http(s) URL with a host that the citation stage would read."""
    host = host_of(url)
    return bool(host) and rejection(url, (host,), SCHEMES) is None


def is_allowed(url: str) -> bool:
    """Whether `url` is well formed and on canada.ca, gc.ca or one of their subdomains."""
    return rejection(url, ALLOWED_DOMAINS, SCHEMES) is None


def normalize_url(url: str) -> str:
    """A URL for comparison: no scheme, lower-case host without `www.`, no trailing slash, no fragment.

    The path and query keep their case: servers may treat them as case-sensitive.
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return url.strip()
    host = (parts.hostname or "").rstrip(".").removeprefix("www.")
    netloc = host if port is None or port in (80, 443) else f"{host}:{port}"
    return urlunsplit(("", netloc, parts.path.rstrip("/"), parts.query, "")).removeprefix("//")


def live_status(row: RowResult) -> str | None:
    """The pipeline's live-check result for the row's citation, or None when none ran."""
    return row.citation_status if row.citation_status in LIVE_STATUSES else None


def analyze(row: RowResult, refs: References, ai: AIProvider | None = None) -> Cells:
    """The four citation cells of a row; never makes a request."""
    if row.blocked:
        return Cells(empty(COLUMNS))
    url = (row.citation_url or "").strip()
    expected = (refs.expected_citation or "").strip()
    return Cells({
        "citation.wellFormed": bool(url) and is_well_formed(url),
        "citation.allowedDomain": bool(url) and is_allowed(url),
        "citation.liveStatus": live_status(row),
        "citation.matchesExpected": (bool(url) and normalize_url(url) == normalize_url(expected)) if expected else None,
        "citation.error": None,
    })


def passed(columns: dict[str, Any]) -> bool | None:
    """Passes when well formed and allowed (and equal to the expected one when given); None when not applicable."""
    if columns.get("citation.error") or columns.get("citation.wellFormed") is None:
        return None
    checks = [columns.get("citation.wellFormed"), columns.get("citation.allowedDomain")]
    if columns.get("citation.matchesExpected") is not None:
        checks.append(columns["citation.matchesExpected"])
    return all(checks)
