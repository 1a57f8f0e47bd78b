"""Stage 5: the question (plus the conversation and the referring page) becomes a short search query.

The model drops question numbering ("001."), personal circumstances and filler, and
writes the query in the language of the search (`search_lang`: French for a French
question, English for an English one, the page's language for any other), possibly
with a `site:` restriction to the department's site. Its reply is `<query>…</query>`.

The offline stage does what rules can: numbering and filler phrases go
(`lib/chat/data/query_words.json`), and a follow-up with no topic of its own ("How long
does it take?") carries the topic words of the last earlier question that had some,
so that it stays on passports.

`run_simpler` is the second chance the search stage asks for when a query found one
result or none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from lib.chat.stages.base import NO_USAGE, Refused, StageReplyError, Usage, ask
from lib.chat.stages.data import fold_chars, load, phrase_pattern
from lib.chat.stages.offline import is_offline, offline_usage
from lib.providers.base import AIProvider, ChatTurn, CompletionRequest
from lib.providers.offline import tokenize

STAGE = "queryRewrite"
MAX_QUERY_CHARS = 200
SIMPLER_WORDS = 3
_NUMBERING = re.compile(r"^\s*(?:(?:q|question|#)\s*)?\d{1,4}\s*[.):\-]+\s*(?=\S)", re.IGNORECASE)
_QUERY = re.compile(r"^\s*<query>(?P<q>[^<>\n]*)</query>\s*$")
_SITE = re.compile(r"\bsite:\S+\s*")
LANGUAGE_NAMES = {"en": "English", "fr": "French"}

SYSTEM_PROMPT = """\
You write search queries for a Government of Canada help service.
From the user's latest question, and the conversation before it, write one short search query
(usually 3 to 8 words) that would find the Government of Canada page answering it.
- Leave out question numbering such as "001." or "Q3:", greetings, thanks and filler.
- Leave out personal circumstances (ages, family events, amounts, dates) unless they decide
  which program applies.
- A follow-up question ("how long does it take?") keeps the topic of the conversation.
- Write the query in {language}.
- You may end the query with site:HOST when one department's site clearly holds the answer.
Reply with the query inside <query></query> tags and nothing else."""

SIMPLER_PROMPT = """\
The search query below found one result or none on the Government of Canada's sites.
Write a shorter, more general query in {language} about the same topic: keep only its most
important 2 to 4 words and drop any site: restriction.
Reply with the query inside <query></query> tags and nothing else."""


@dataclass(frozen=True)
class RewriteInput:
    """The question in English and as asked, its language, the page, and the earlier questions."""

    english_question: str
    question: str
    question_language: str = "eng"
    lang: str = "en"
    earlier_questions: tuple[str, ...] = ()
    referring_url: str | None = None


@dataclass(frozen=True)
class RewriteResult:
    """The search query and the language to search in ("en" or "fr")."""

    query: str
    query_lang: str
    usage: Usage = NO_USAGE


def search_lang(question_language: str, lang: str) -> str:
    """The language to search in: the question's when it is English or French, else the page's."""
    if question_language == "fra":
        return "fr"
    if question_language == "eng":
        return "en"
    return "fr" if lang == "fr" else "en"


def build_request(inp: RewriteInput) -> CompletionRequest:
    """The model call: instructions, the earlier questions, the referring page and the question."""
    target = search_lang(inp.question_language, inp.lang)
    lines = []
    if inp.earlier_questions:
        lines.append("Earlier questions in this conversation:")
        lines += [f"- {q}" for q in inp.earlier_questions]
    if inp.referring_url:
        lines.append(f"The user asked from this page: {inp.referring_url}")
    question = inp.question if target == "fr" and inp.question_language == "fra" else inp.english_question
    lines.append(f"Latest question: {question}")
    return CompletionRequest(system=SYSTEM_PROMPT.format(language=LANGUAGE_NAMES[target]),
                             messages=[ChatTurn("user", "\n".join(lines))], lang=target)  # type: ignore[arg-type]


def parse_reply(reply: str, *, provider: str = "") -> str:
    """The query of a `<query>…</query>` reply. Raises `StageReplyError` when malformed."""
    match = _QUERY.match(reply)
    if match is None:
        raise StageReplyError(STAGE, "expected one <query>…</query> on one line and nothing else",
                              provider=provider, reply=reply)
    query = " ".join(match["q"].split())
    if not query or len(query) > MAX_QUERY_CHARS:
        raise StageReplyError(STAGE, f"the query is empty or longer than {MAX_QUERY_CHARS} characters",
                              provider=provider, reply=reply)
    return query


@lru_cache(maxsize=2)
def _words(lang: str) -> tuple[re.Pattern[str] | None, frozenset[str]]:
    words = load("query_words.json")[lang]
    generic = frozenset(term for g in words["generic"] for term in tokenize(g, lang))
    return phrase_pattern([fold_chars(f) for f in words["filler"]]), generic


def strip_filler(text: str, lang: str) -> str:
    """The question without its numbering and filler phrases, spaces tidied."""
    text = _NUMBERING.sub("", text)
    filler, _ = _words(lang)
    if filler is not None:
        folded = fold_chars(text)
        for m in reversed(list(filler.finditer(folded))):
            text = text[: m.start()] + text[m.end():]
    text = re.sub(r"\s+([,?!.])", r"\1", " ".join(text.split()))
    return text.strip(" ,;:-")


def topic_words(text: str, lang: str) -> list[str]:
    """The words of a text that say what it is about (index terms minus generic words)."""
    _, generic = _words(lang)
    return [w for w in tokenize(_NUMBERING.sub("", text), lang) if w not in generic]


def run_offline(inp: RewriteInput) -> RewriteResult:
    """The deterministic rewrite: numbering and filler dropped, a follow-up's topic carried over."""
    target = search_lang(inp.question_language, inp.lang)
    own = inp.question_language == {"en": "eng", "fr": "fra"}[target]
    source = inp.question if own else inp.english_question
    query = strip_filler(source, target) or source.strip()
    if not topic_words(query, target):
        for earlier in reversed(inp.earlier_questions):
            carried = topic_words(earlier, target)
            if carried:
                query = f"{query.rstrip('?!. ')} {' '.join(dict.fromkeys(carried))}"
                break
    return RewriteResult(query, target, offline_usage(source, query))


def run(inp: RewriteInput, ai: AIProvider) -> RewriteResult:
    """Stage 5: the search query. Raises `StageReplyError` / `UpstreamError`.

    A content-filter refusal here does not block (stage 2 has already passed the
    question): the query falls back to the offline rewrite.
    """
    if is_offline(ai):
        return run_offline(inp)
    completion = ask(ai, STAGE, build_request(inp))
    if isinstance(completion, Refused):
        return run_offline(inp)
    target = search_lang(inp.question_language, inp.lang)
    return RewriteResult(parse_reply(completion.text, provider=ai.name), target, Usage.of(completion))


def simplify_offline(query: str, lang: str) -> str:
    """A shorter query: no `site:`, only its first few topic words."""
    words = topic_words(_SITE.sub("", query), lang)[:SIMPLER_WORDS]
    return " ".join(words) or _SITE.sub("", query).strip()


def run_simpler(query: str, query_lang: str, ai: AIProvider) -> RewriteResult:
    """A simpler query after `query` found one result or none. Raises `StageReplyError` / `UpstreamError`."""
    if is_offline(ai):
        simpler = simplify_offline(query, query_lang)
        return RewriteResult(simpler, query_lang, offline_usage(query, simpler))
    request = CompletionRequest(system=SIMPLER_PROMPT.format(language=LANGUAGE_NAMES[query_lang]),
                                messages=[ChatTurn("user", query)], lang=query_lang)  # type: ignore[arg-type]
    completion = ask(ai, STAGE, request)
    if isinstance(completion, Refused):
        return RewriteResult(simplify_offline(query, query_lang), query_lang)
    return RewriteResult(parse_reply(completion.text, provider=ai.name), query_lang, Usage.of(completion))
