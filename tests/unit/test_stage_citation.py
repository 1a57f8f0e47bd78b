"""Stage 9: the citation's shape and site rules, and the live check against a real local HTTP server."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from lib.chat.stages import citation
from lib.chat.stages.citation import CitationInput, CitationStatus, allowed_hosts, rejection

SEARCH = "https://www.canada.ca/en/sr/srb.html?q=How+do+I+renew%3F"
CANADA = ("canada.ca", "gc.ca")


class Pages(BaseHTTPRequestHandler):
    """/ok, /head-refused, /redirect (to /ok), /loop, /gone, /away (off site), /slow."""

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def do_GET(self) -> None:
        self._answer(head=False)

    def _answer(self, head: bool) -> None:
        routes = {
            "/ok": (200, {}),
            "/head-refused": ((405, {}) if head else (200, {})),
            "/redirect": (302, {"Location": "/ok"}),
            "/loop": (302, {"Location": "/loop"}),
            "/gone": (404, {}),
            "/away": (301, {"Location": "https://example.com/"}),
        }
        if self.path == "/slow":
            time.sleep(1.5)
        status, headers = routes.get(self.path, (200, {}))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Pages)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


def live(url: str, session: requests.Session, timeout: float = 10.0) -> citation.CitationResult:
    return citation.run(CitationInput(url, "How do I renew?"), session, live=True, schemes=("http",),
                        extra_hosts=("127.0.0.1",), timeout=timeout)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://www.canada.ca/en/services.html", None),
        ("https://www.cra-arc.gc.ca/x", None),
        ("https://canada.ca/fr.html", None),
        ("http://www.canada.ca/en.html", "scheme http is not allowed"),
        ("https://canada.ca.evil.com/x", "host canada.ca.evil.com is not an allowed site"),
        ("https://notcanada.ca/x", "host notcanada.ca is not an allowed site"),
        ("https://user:pw@www.canada.ca/", "not a well-formed URL"),
        ("https://www.canada.ca/a b", "not a well-formed URL"),
        ("javascript:alert(1)", "scheme javascript is not allowed"),
        ("https://www.canada.ca:abc/", "not a well-formed URL"),
    ],
)
def test_a_citation_must_be_https_on_canada_ca_or_gc_ca(url, reason):
    assert rejection(url, CANADA) == reason


def test_the_departments_own_site_is_allowed_too():
    hosts = allowed_hosts("https://www.bankofcanada.ca/")

    assert rejection("https://www.bankofcanada.ca/rates/", hosts) is None


@pytest.mark.parametrize("url", [None, "", "https://example.com/page", "not a url"])
def test_a_missing_or_disallowed_citation_falls_back_to_a_canada_ca_search(url):
    outcome = citation.run(CitationInput(url, "How do I renew?"))

    assert (outcome.citation_url, outcome.status, outcome.ai_citation_url) == (SEARCH, CitationStatus.FALLBACK, url)


def test_without_the_live_flag_an_allowed_citation_is_kept_unchecked():
    outcome = citation.run(CitationInput("https://www.canada.ca/en.html", "q"), requests.Session())

    assert outcome.citation_url == "https://www.canada.ca/en.html"
    assert outcome.status is CitationStatus.UNCHECKED and outcome.checked is False


def test_a_live_page_that_answers_is_verified(server, session):
    outcome = live(f"{server}/ok", session)

    assert outcome.status is CitationStatus.VERIFIED and outcome.citation_url == f"{server}/ok"


def test_a_refused_head_is_followed_by_a_get(server, session):
    assert live(f"{server}/head-refused", session).status is CitationStatus.VERIFIED


def test_a_redirect_is_followed_and_the_final_url_kept(server, session):
    outcome = live(f"{server}/redirect", session)

    assert outcome.citation_url == f"{server}/ok" and outcome.ai_citation_url == f"{server}/redirect"


@pytest.mark.parametrize(("path", "reason"), [
    ("/gone", "answered 404"), ("/loop", "more than 10 redirects"), ("/away", "redirected off the allowed sites")])
def test_a_dead_looping_or_escaping_link_falls_back_to_the_search_page(server, session, path, reason):
    outcome = live(f"{server}{path}", session)

    assert outcome.status is CitationStatus.FALLBACK and outcome.citation_url == SEARCH
    assert reason in outcome.reason


def test_a_page_slower_than_the_budget_falls_back(server, session):
    outcome = live(f"{server}/slow", session, timeout=0.5)

    assert outcome.status is CitationStatus.FALLBACK and "unreachable" in outcome.reason


def test_an_unreachable_host_falls_back_without_raising(session):
    outcome = live("http://127.0.0.1:9/nothing", session)

    assert outcome.status is CitationStatus.FALLBACK
