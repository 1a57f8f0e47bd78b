"""Stage 7 (context): the department most likely to hold the answer, or none.

The list is `lib/chat/data/departments.json` (a bilingual key such as `CRA-ARC`, names
and home pages in English and French). The model is shown the list, the question and
the search results, and replies with one key or `none`; anything else is malformed.
When it says none, the referring page's department is the fallback.

A URL belongs to a department when the department's home page (reduced to host and
path, without index files and language segments) prefixes it, or when one of the
extra paths of `department_paths.json` does (canada.ca theme pages such as
/en/services/taxes). The longest prefix wins. The offline stage picks the department
of the first search result that has one, then the referring page's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

from lib.chat.stages.base import NO_USAGE, Refused, StageReplyError, Usage, ask, page_lang
from lib.chat.stages.data import load
from lib.chat.stages.offline import is_offline, offline_usage
from lib.providers.base import AIProvider, ChatTurn, CompletionRequest, SearchResult

STAGE = "context"
NONE_REPLY = "none"
_HOME_SEGMENT = re.compile(
    r"^(?:en|fr|eng|fra|e|f|english|francais|home|accueil|index|menu|default|start|debut|intro)"
    r"(?:[-_.](?:en|fr|eng|fra|e|f|accueil|home))*(?:\.(?:html?|aspx?|shtml|php|page))?$",
    re.IGNORECASE,
)

SYSTEM_PROMPT = """\
You route questions to the Government of Canada department or agency whose website is most
likely to hold the answer. Here is the list, one per line as KEY: English name / French name:
{departments}

Use the question, the search results and the page the user asked from. Reply with exactly one
KEY from the list, or the word none when no department fits, and nothing else."""


@dataclass(frozen=True)
class Department:
    """One department or agency: its key, and its name and home page in each language."""

    key: str
    names: dict[str, str]
    urls: dict[str, str]

    def url(self, lang: str) -> str:
        """The home page in a page language ("en" or "fr")."""
        return self.urls[page_lang(lang)]


@dataclass(frozen=True)
class DepartmentInput:
    """The English question, the page language, the search results and the referring page."""

    english_question: str
    lang: str = "en"
    search_results: tuple[SearchResult, ...] = ()
    referring_url: str | None = None


@dataclass(frozen=True)
class DepartmentResult:
    """The department's key and home page (None when none fits), and where the choice came from.

    `source` is "model", "search" (a result's URL), "referrer" (the referring page) or "none".
    """

    department: str | None
    department_url: str | None
    source: str
    usage: Usage = NO_USAGE


@lru_cache(maxsize=1)
def departments() -> dict[str, Department]:
    """Every department by key, in the file's order."""
    out = {}
    for d in load("departments.json")["departments"]:
        out[d["key"]] = Department(d["key"], {"en": d["en"]["name"], "fr": d["fr"]["name"]},
                                   {"en": d["en"]["url"], "fr": d["fr"]["url"]})
    return out


def url_prefix(url: str) -> str:
    """A URL reduced to host (no www.) and path, without its home-page file or language segments."""
    parts = urlsplit(url.strip())
    segments = [s for s in parts.path.split("/") if s]
    while segments and _HOME_SEGMENT.match(segments[-1]):
        segments.pop()
    if segments and segments[-1].endswith((".html", ".htm")):
        segments[-1] = segments[-1].rsplit(".", 1)[0]
    host = parts.netloc.lower().removeprefix("www.")
    return "/".join([host, *segments]).lower()


@lru_cache(maxsize=1)
def _prefixes() -> tuple[tuple[str, str], ...]:
    table: dict[str, str] = {}
    for dept in departments().values():
        for url in dept.urls.values():
            table.setdefault(url_prefix(url), dept.key)
    table.update({prefix.lower(): key for prefix, key in load("department_paths.json")["paths"].items()})
    # canada.ca itself is no department's: a bare home page prefix would claim every page.
    table = {p: k for p, k in table.items() if p not in ("canada.ca", "gc.ca")}
    return tuple(sorted(table.items(), key=lambda item: len(item[0]), reverse=True))


def department_for_url(url: str | None) -> Department | None:
    """The department whose site holds `url` (longest matching prefix), if any."""
    if not url:
        return None
    parts = urlsplit(url.strip())
    target = (parts.netloc.lower().removeprefix("www.") + parts.path.lower()).rstrip("/")
    target = target.removesuffix(".html")
    for prefix, key in _prefixes():
        if target == prefix or target.startswith((prefix + "/", prefix + ".")):
            return departments()[key]
    return None


def build_request(inp: DepartmentInput) -> CompletionRequest:
    """The model call: the department list, then the question, results and referring page."""
    listing = "\n".join(f"{d.key}: {d.names['en']} / {d.names['fr']}" for d in departments().values())
    lines = [f"Question: {inp.english_question}"]
    if inp.referring_url:
        lines.append(f"Asked from: {inp.referring_url}")
    lines += [f"Result: {r.title} <{r.url}>" for r in inp.search_results]
    return CompletionRequest(system=SYSTEM_PROMPT.format(departments=listing),
                             messages=[ChatTurn("user", "\n".join(lines))], lang=page_lang(inp.lang))  # type: ignore[arg-type]


def parse_reply(reply: str, *, provider: str = "") -> str | None:
    """The department key of a reply (None for "none"). Raises `StageReplyError` otherwise."""
    text = reply.strip()
    if text.lower() == NONE_REPLY:
        return None
    by_lower = {key.lower(): key for key in departments()}
    if text.lower() not in by_lower:
        raise StageReplyError(STAGE, "the reply is neither a department key from the list nor none",
                              provider=provider, reply=text)
    return by_lower[text.lower()]


def _result(dept: Department | None, source: str, lang: str, usage: Usage) -> DepartmentResult:
    if dept is None:
        return DepartmentResult(None, None, "none", usage)
    return DepartmentResult(dept.key, dept.url(lang), source, usage)


def run_offline(inp: DepartmentInput) -> DepartmentResult:
    """The deterministic pick: the first search result with a department, else the referring page's."""
    usage = offline_usage(inp.english_question, "")
    for result in inp.search_results:
        dept = department_for_url(result.url)
        if dept is not None:
            return _result(dept, "search", inp.lang, offline_usage(inp.english_question, dept.key))
    return _result(department_for_url(inp.referring_url), "referrer", inp.lang, usage)


def run(inp: DepartmentInput, ai: AIProvider) -> DepartmentResult:
    """Stage 7: the department, or the referring page's when the model names none.

    Raises `StageReplyError` for a malformed reply, `UpstreamError` when the provider fails.
    A content-filter refusal falls back on the offline pick (the question has passed stage 2).
    """
    if is_offline(ai):
        return run_offline(inp)
    completion = ask(ai, STAGE, build_request(inp))
    if isinstance(completion, Refused):
        return run_offline(inp)
    usage = Usage.of(completion)
    key = parse_reply(completion.text, provider=ai.name)
    if key is not None:
        return _result(departments()[key], "model", inp.lang, usage)
    return _result(department_for_url(inp.referring_url), "referrer", inp.lang, usage)
