"""The page's security headers: one Python constant, mirrored in vercel.json, fit for the build."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from lib.http import PAGE_HEADERS, page_headers, storage_sources

ROOT = Path(__file__).resolve().parents[2]


def _directives(policy: str) -> dict[str, str]:
    return {d.split()[0]: " ".join(d.split()[1:]) for d in (p.strip() for p in policy.split(";")) if d}


def test_vercel_json_serves_exactly_the_page_headers_of_the_python_constant():
    vercel = json.loads((ROOT / "vercel.json").read_text())
    [rule] = [r for r in vercel["headers"] if r["source"] == "/(.*)"]
    assert {h["key"]: h["value"] for h in rule["headers"]} == dict(PAGE_HEADERS)


def test_the_content_security_policy_allows_only_the_apps_own_origin_and_s3_for_uploads():
    policy = _directives(PAGE_HEADERS["Content-Security-Policy"])
    assert policy == {
        "default-src": "'self'", "script-src": "'self'", "style-src": "'self'", "img-src": "'self' data:",
        "connect-src": "'self' https://*.s3.amazonaws.com", "frame-ancestors": "'none'", "base-uri": "'none'",
        "form-action": "'self'", "object-src": "'none'",
    }
    assert PAGE_HEADERS["X-Frame-Options"] == "DENY"
    assert PAGE_HEADERS["Referrer-Policy"] == "no-referrer"
    assert PAGE_HEADERS["X-Content-Type-Options"] == "nosniff"


def test_the_built_page_has_no_inline_script_or_style_that_the_policy_would_block():
    index = ROOT / "ui" / "dist" / "index.html"
    if not index.exists():
        pytest.skip("the UI is not built")
    html = index.read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "an inline <script> needs a hash in script-src"
    assert "<style" not in html and " style=" not in html, "inline styles need style-src 'unsafe-inline'"
    assert not re.search(r"""(src|href)=["']https?://""", html), "a third-party origin is not allowed"


@pytest.mark.parametrize(("endpoint", "bucket", "region", "sources"), [
    ("http://127.0.0.1:9000", "ai-answers-local", "us-east-1", ("http://127.0.0.1:9000",)),
    ("http://127.0.0.1:9000/some/path", "b", None, ("http://127.0.0.1:9000",)),
    (None, "answers", "ca-central-1",
     ("https://answers.s3.amazonaws.com", "https://answers.s3.ca-central-1.amazonaws.com")),
    (None, "my.bucket", "ca-central-1", ("https://s3.ca-central-1.amazonaws.com",)),
    (None, "my.bucket", "us-east-1", ("https://s3.amazonaws.com",)),
    (None, None, "us-east-1", ()),
    ("ftp://x", "b", None, ()),
])
def test_the_local_stack_lets_the_page_post_files_to_its_own_storage_only(endpoint, bucket, region, sources):
    assert storage_sources(endpoint, bucket, region) == sources
    policy = _directives(page_headers(sources)["Content-Security-Policy"])
    assert policy["connect-src"] == " ".join(("'self'", *sources))
    assert policy["form-action"] == "'self'" and policy["default-src"] == "'self'"
