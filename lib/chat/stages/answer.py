"""Stage 8: the answer prompt, and the strict parser of the tagged answer format (ai-answers.md §2).

The model replies with tagged sections: `<preliminary-checks>` (its notes, dropped),
`<english-answer>` and, for a question not in English, `<answer>` in the question's
language; sentences `<s-1>`…`<s-4>` inside them; the whole answer possibly wrapped
in `<not-gc>`, `<pt-muni>` or `<clarifying-question>` (the answer type); then
`<citation-head>`, `<citation-url>` and `<confidence>`. `parse_answer` turns that
into a `ParsedAnswer` or raises `StageReplyError` (no answer at all, more than four
sentences, a tag opened and never closed, two answer types, a section twice).

With the offline provider, `answer_offline.compose` writes the same format from the
search results, and it goes through the same parser.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

from lib.chat.stages.answer_offline import compose
from lib.chat.stages.base import NO_USAGE, Refused, StageReplyError, Usage, ask, page_lang
from lib.chat.stages.offline import is_offline, offline_usage, take_offline_time
from lib.providers.base import AIProvider, ChatTurn, CompletionRequest, SearchResult

STAGE = "answer"
MAX_SENTENCES = 4
ANSWER_TYPES = ("not-gc", "pt-muni", "clarifying-question")
NORMAL = "normal"
SECTIONS = ("preliminary-checks", "english-answer", "answer", "citation-head", "citation-url", "confidence")
_TAG = re.compile(r"<(/?)([a-z][a-z0-9-]*)>")
_SENTENCE_TAG = re.compile(r"^s-(\d+)$")
LANGUAGE_NAMES = {
    "eng": "English", "fra": "French", "spa": "Spanish", "deu": "German", "ara": "Arabic", "zho": "Chinese",
    "por": "Portuguese", "ita": "Italian", "pan": "Punjabi", "tgl": "Tagalog", "vie": "Vietnamese", "rus": "Russian",
    "ukr": "Ukrainian", "kor": "Korean", "jpn": "Japanese", "fas": "Persian", "hin": "Hindi", "urd": "Urdu",
    "pol": "Polish", "tam": "Tamil", "guj": "Gujarati", "ben": "Bengali", "som": "Somali", "tur": "Turkish",
}

GENERAL_RULES = """\
You answer questions about Government of Canada programs and services for the public.
Rules:
- Base the answer on the search results below and on pages of canada.ca, gc.ca and the
  department's own site. Do not invent programs, amounts, dates or links.
- Answer in plain language, in at most four short sentences; put each sentence in its own tag,
  <s-1></s-1> to <s-4></s-4>.
- If the question is about a provincial, territorial or municipal matter, wrap the whole answer in
  <pt-muni></pt-muni>; if it is not about government at all, wrap it in <not-gc></not-gc>; if you
  cannot tell what is asked, ask one short question back, wrapped in
  <clarifying-question></clarifying-question>.
- Never ask for personal information; XXX in a question stands for something removed.
Reply in this order:
<preliminary-checks>your own brief notes: the language, the topic, the page that answers</preliminary-checks>
<english-answer>the answer in English, in sentence tags</english-answer>
<answer>the same answer in the output language, in sentence tags (only when it is not English)</answer>
<citation-head>the link text of the one page that best supports the answer</citation-head>
<citation-url>that page's URL</citation-url>
<confidence>a number from 0 to 1: how sure you are that the page answers the question</confidence>"""


@dataclass(frozen=True)
class AnswerInput:
    """Everything the answer is made from.

    `history`: the earlier turns as the model should see them (user and assistant);
    `scenario`: the department's scenario text (or a user's override for it);
    `today`: the date written into the prompt.
    """

    english_question: str
    question: str
    question_language: str = "eng"
    lang: str = "en"
    history: tuple[ChatTurn, ...] = ()
    search_results: tuple[SearchResult, ...] = ()
    department: str | None = None
    department_url: str | None = None
    scenario: str = ""
    today: date = field(default_factory=date.today)
    referring_url: str | None = None


@dataclass(frozen=True)
class ParsedAnswer:
    """The answer's fields: its type, the text in the output language and in English, the sentences."""

    answer_type: str
    content: str
    english_answer: str
    sentences: tuple[str, ...]
    english_sentences: tuple[str, ...] = ()
    citation_head: str | None = None
    citation_url: str | None = None
    confidence: str | None = None


@dataclass(frozen=True)
class AnswerResult:
    """The parsed answer and what it cost."""

    answer: ParsedAnswer
    usage: Usage = NO_USAGE
    refused: bool = False


def output_language(question_language: str) -> str:
    """The name of the language the answer is written in."""
    return LANGUAGE_NAMES.get(question_language, f"the language with ISO 639-3 code {question_language}")


def build_request(inp: AnswerInput) -> CompletionRequest:
    """The model call: general rules, scenario, search results, today's date, then the conversation."""
    parts = [GENERAL_RULES]
    if inp.department:
        parts.append(f"Department most likely to hold the answer: {inp.department} ({inp.department_url or ''})")
    if inp.scenario.strip():
        parts.append(f"<department-scenarios>\n{inp.scenario.strip()}\n</department-scenarios>")
    results = "\n".join(f"<result><title>{r.title}</title><url>{r.url}</url><summary>{r.snippet}</summary></result>"
                        for r in inp.search_results) or "(no results)"
    parts.append(f"<search-results>\n{results}\n</search-results>")
    if inp.referring_url:
        parts.append(f"The user asked from this page: {inp.referring_url}")
    parts.append(f"Today's date: {inp.today.isoformat()}")
    parts.append(f"Output language: {output_language(inp.question_language)}")
    question = inp.english_question
    if inp.question_language != "eng":
        question = f"{inp.english_question}\n(Asked in {output_language(inp.question_language)}: {inp.question})"
    return CompletionRequest(system="\n\n".join(parts), messages=[*inp.history, ChatTurn("user", question)],
                             lang=page_lang(inp.lang), search_results=list(inp.search_results))  # type: ignore[arg-type]


def _fail(reason: str, reply: str) -> StageReplyError:
    return StageReplyError(STAGE, reason, reply=reply)


def _check_tags(reply: str) -> None:
    depth: dict[str, int] = {}
    for closing, name in _TAG.findall(reply):
        number = _SENTENCE_TAG.match(name)
        if number and not 1 <= int(number.group(1)) <= MAX_SENTENCES:
            raise _fail(f"a sentence tag <{name}>: more than {MAX_SENTENCES} sentences", reply)
        if not (number or name in SECTIONS or name in ANSWER_TYPES):
            continue  # markup the model quoted, not ours
        depth[name] = depth.get(name, 0) + (-1 if closing else 1)
        if depth[name] < 0:
            raise _fail(f"</{name}> closes nothing", reply)
    unclosed = [name for name, d in depth.items() if d]
    if unclosed:
        raise _fail(f"<{unclosed[0]}> is never closed", reply)


def _section(reply: str, name: str) -> str | None:
    found = re.findall(rf"<{name}>(.*?)</{name}>", reply, re.DOTALL)
    if len(found) > 1:
        raise _fail(f"<{name}> appears {len(found)} times", reply)
    return found[0].strip() if found else None


def _sentences(text: str, reply: str) -> tuple[str, tuple[str, ...]]:
    for kind in ANSWER_TYPES:
        text = text.replace(f"<{kind}>", "").replace(f"</{kind}>", "")
    tagged = re.findall(r"<s-(\d)>(.*?)</s-\1>", text, re.DOTALL)
    numbers = [int(n) for n, _ in tagged]
    if len(set(numbers)) != len(numbers):
        raise _fail("a sentence number is used twice", reply)
    sentences = tuple(" ".join(s.split()) for _, s in sorted(tagged, key=lambda t: int(t[0])) if s.strip())
    content = " ".join(sentences) if tagged else " ".join(re.sub(r"<[^>]+>", " ", text).split())
    return content, sentences


def parse_answer(reply: str) -> ParsedAnswer:
    """The fields of a tagged answer. Raises `StageReplyError` when the reply is malformed."""
    _check_tags(reply)
    body = re.sub(r"<preliminary-checks>.*?</preliminary-checks>", "", reply, flags=re.DOTALL)
    english, answer = _section(body, "english-answer"), _section(body, "answer")
    if english is None and answer is None:
        raise _fail("no <english-answer> or <answer>", reply)
    kinds = {kind for kind in ANSWER_TYPES if f"<{kind}>" in body}
    if len(kinds) > 1:
        raise _fail(f"two answer types: {', '.join(sorted(kinds))}", reply)
    english_content, english_sentences = _sentences(english or "", reply)
    content, sentences = _sentences(answer, reply) if answer is not None else (english_content, english_sentences)
    if not content:
        raise _fail("the answer is empty", reply)
    return ParsedAnswer(
        answer_type=kinds.pop() if kinds else NORMAL,
        content=content,
        english_answer=english_content or content,
        sentences=sentences,
        english_sentences=english_sentences or sentences,
        citation_head=_section(body, "citation-head") or None,
        citation_url=_section(body, "citation-url") or None,
        confidence=_section(body, "confidence") or None,
    )


def run(inp: AnswerInput, ai: AIProvider) -> AnswerResult:
    """Stage 8: the answer. Raises `StageReplyError` for a malformed reply, `UpstreamError` on failure.

    A content-filter refusal comes back as `refused=True` (the pipeline blocks it as
    `contentFilter`).
    """
    request = build_request(inp)
    if is_offline(ai):
        take_offline_time(ai)
        text = compose(inp.question, inp.english_question, inp.question_language, inp.search_results)
        read = request.system + " " + " ".join(turn.content for turn in request.messages)
        return AnswerResult(parse_answer(text), offline_usage(read, text))
    completion = ask(ai, STAGE, request)
    if isinstance(completion, Refused):
        return AnswerResult(ParsedAnswer(NORMAL, "", "", ()), completion.usage, refused=True)
    try:
        parsed = parse_answer(completion.text)
    except StageReplyError as exc:
        raise StageReplyError(STAGE, exc.reason, provider=ai.name, reply=completion.text) from exc
    return AnswerResult(parsed, Usage.of(completion))
