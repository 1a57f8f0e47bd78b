"""Stage 9: the citation URL is checked, and replaced by a canada.ca search when it fails.

A citation must be a well-formed URL with an allowed scheme (https; tests may allow
http explicitly) on an allowed host: canada.ca, gc.ca and their subdomains, plus the
department's own site. Optionally (`check_live`, off by default) the page is fetched:
HEAD first, GET when HEAD is refused, redirects followed by hand (at most 10, each hop
checked against the same rules, so a redirect off the allowed sites fails) within one
10-second budget. A citation that fails any check becomes the canada.ca search page
for the question.

This module is the one place outside the provider clients that speaks HTTP; it only
uses the `requests.Session` it is given, and maps every `requests` error to a failed
check (a dead link is a finding, not a fault).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urljoin, urlsplit

import requests

from lib.chat.stages.base import search_url

STAGE = "citation"
ALLOWED_DOMAINS = ("canada.ca", "gc.ca")
MAX_REDIRECTS = 10
TIMEOUT_SECONDS = 10.0
MAX_URL_CHARS = 2000
_REDIRECTS = (301, 302, 303, 307, 308)
_HEAD_REFUSED = (403, 405, 501)


class CitationStatus(StrEnum):
    """What became of the model's citation."""

    UNCHECKED = "unchecked"  # well-formed and allowed; no live check asked for
    VERIFIED = "verified"  # fetched, and answered below 400 (possibly after redirects)
    FALLBACK = "fallback"  # missing, malformed, off the allowed sites, or dead: a search page instead


@dataclass(frozen=True)
class CitationInput:
    """The model's citation URL, the (masked) question and page language, the department's site."""

    ai_citation_url: str | None
    question: str
    lang: str = "en"
    department_url: str | None = None


@dataclass(frozen=True)
class CitationResult:
    """The model's URL as given, the URL kept, and why."""

    ai_citation_url: str | None
    citation_url: str
    status: CitationStatus
    reason: str = ""

    @property
    def checked(self) -> bool:
        """Whether the page was fetched and answered."""
        return self.status is CitationStatus.VERIFIED


def allowed_hosts(department_url: str | None) -> tuple[str, ...]:
    """The hosts a citation may be on: canada.ca, gc.ca and the department's own host."""
    hosts = list(ALLOWED_DOMAINS)
    if department_url:
        host = (urlsplit(department_url).hostname or "").lower().removeprefix("www.")
        if host and host not in hosts:
            hosts.append(host)
    return tuple(hosts)


def rejection(url: str, hosts: Iterable[str], schemes: Iterable[str] = ("https",)) -> str | None:
    """Why `url` is not an acceptable citation, or None when it is."""
    if len(url) > MAX_URL_CHARS or any(c.isspace() for c in url):
        return "not a well-formed URL"
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower().rstrip(".")
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return "not a well-formed URL"
    if parts.scheme.lower() not in tuple(schemes):
        return f"scheme {parts.scheme or '(none)'} is not allowed"
    if not host or parts.username or parts.password:
        return "not a well-formed URL"
    if not any(host == h or host.endswith("." + h) for h in hosts):
        return f"host {host} is not an allowed site"
    return None


def check_live(
    url: str,
    session: requests.Session,
    hosts: Iterable[str],
    schemes: Iterable[str] = ("https",),
    timeout: float = TIMEOUT_SECONDS,
    max_redirects: int = MAX_REDIRECTS,
) -> tuple[str | None, str]:
    """Fetch `url` (HEAD, then GET if HEAD is refused): the final URL and "", or None and why it failed."""
    hosts, schemes = tuple(hosts), tuple(schemes)
    deadline = time.monotonic() + timeout
    current = url
    for _ in range(max_redirects + 1):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None, "timed out"
        try:
            response = session.head(current, allow_redirects=False, timeout=remaining)
            if response.status_code in _HEAD_REFUSED:
                response.close()
                response = session.get(current, allow_redirects=False, timeout=max(0.1, deadline - time.monotonic()),
                                       stream=True)
            response.close()
        except requests.RequestException as exc:
            return None, f"unreachable ({type(exc).__name__})"
        if response.status_code in _REDIRECTS:
            location = response.headers.get("Location")
            if not location:
                return None, f"redirect {response.status_code} without a Location"
            current = urljoin(current, location)
            reason = rejection(current, hosts, schemes)
            if reason:
                return None, f"redirected off the allowed sites: {reason}"
            continue
        if response.status_code >= 400:
            return None, f"answered {response.status_code}"
        return current, ""
    return None, f"more than {max_redirects} redirects"


def run(
    inp: CitationInput,
    session: requests.Session | None = None,
    *,
    live: bool = False,
    schemes: Iterable[str] = ("https",),
    extra_hosts: Iterable[str] = (),
    timeout: float = TIMEOUT_SECONDS,
) -> CitationResult:
    """Stage 9: the citation kept for the answer. Never raises: a bad citation becomes a search page.

    `schemes` and `extra_hosts` widen the rules for tests (a local server on http://127.0.0.1).
    """
    fallback = search_url(inp.question, inp.lang)
    url = (inp.ai_citation_url or "").strip()
    if not url:
        return CitationResult(inp.ai_citation_url, fallback, CitationStatus.FALLBACK, "no citation")
    hosts = (*allowed_hosts(inp.department_url), *extra_hosts)
    reason = rejection(url, hosts, schemes)
    if reason:
        return CitationResult(inp.ai_citation_url, fallback, CitationStatus.FALLBACK, reason)
    if not live or session is None:
        return CitationResult(inp.ai_citation_url, url, CitationStatus.UNCHECKED)
    final, reason = check_live(url, session, hosts, schemes, timeout)
    if final is None:
        return CitationResult(inp.ai_citation_url, fallback, CitationStatus.FALLBACK, reason)
    return CitationResult(inp.ai_citation_url, final, CitationStatus.VERIFIED)
