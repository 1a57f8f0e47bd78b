"""The stages of ai-answers.md §1, composed in order: one question in, `Answered` or `Blocked` out.

    1 short query -> 2 rules -> 3 AI PII -> 4 language (+ translation)
      -> [non-English: 2 again on the English text; neither English nor French: 3 again]
      -> 5 query rewrite -> 6 search (retry once, simpler) -> 7 department -> 8 answer -> 9 citation

A block ends the run at once: nothing after it runs, no search sees the question, and
the block carries the masked text and the trace so far. Every stage after stage 2
sees only the masked text. When the second rules pass or the second PII pass blocks,
the masked text kept is the English one (the original may hold what only the
translation made visible).

Pure but for the providers and the clock it is given: it never touches the database.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any, TypeVar

import requests

from lib.chat.stages import (
    ai_pii,
    answer,
    citation,
    department,
    language,
    query_rewrite,
    rules,
    short_query,
)
from lib.chat.stages import (
    search as search_stage,
)
from lib.chat.stages.base import NO_USAGE, Blocked, BlockedBy, StageRecord, Usage
from lib.chat.stages.outcome import Answered, AnswerFields, ContextFields, PipelineOutcome, QuestionFields
from lib.providers.base import AIProvider, ChatTurn, SearchProvider

T = TypeVar("T")


@dataclass(frozen=True)
class Turn:
    """One earlier exchange of the chat: the masked question, its English text, the answer."""

    question: str
    answer: str = ""
    english_question: str | None = None
    citation_url: str | None = None


@dataclass(frozen=True)
class PipelineOptions:
    """How a run behaves beyond its inputs.

    `scenarios`: scenario text by department key (a user's override keyed the same way;
    the key "" is used when no department was picked). `check_citations` fetches the
    cited page through `session`. `clock` is what stages are timed with.
    """

    check_citations: bool = False
    session: requests.Session | None = None
    citation_schemes: tuple[str, ...] = ("https",)
    citation_extra_hosts: tuple[str, ...] = ()
    scenarios: Mapping[str, str] = field(default_factory=dict)
    today: date | None = None
    clock: Callable[[], float] = time.perf_counter


class _Trace:
    """The stages run so far: each one timed, and its usage kept."""

    def __init__(self, clock: Callable[[], float]):
        self.clock = clock
        self.records: list[StageRecord] = []

    def run(self, stage: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        started = self.clock()
        result = fn(*args, **kwargs)
        usage = getattr(result, "usage", NO_USAGE)
        self.records.append(StageRecord(stage, round((self.clock() - started) * 1000), usage))
        return result

    def usage(self, *stages: str) -> Usage:
        total = NO_USAGE
        for record in self.records:
            if record.stage in stages:
                total = total.plus(record.usage)
        return total

    def blocked(self, block: Blocked) -> Blocked:
        return replace(block, trace=tuple(self.records))


def _history(turns: Sequence[Turn]) -> tuple[ChatTurn, ...]:
    out: list[ChatTurn] = []
    for turn in turns:
        out.append(ChatTurn("user", turn.english_question or turn.question))
        text = turn.answer + (f"\n<citation-url>{turn.citation_url}</citation-url>" if turn.citation_url else "")
        out.append(ChatTurn("assistant", text))
    return tuple(out)


def run_pipeline(
    question: str,
    history: Sequence[Turn],
    lang: str,
    referring_url: str | None,
    ai: AIProvider,
    search: SearchProvider,
    options: PipelineOptions = PipelineOptions(),
) -> PipelineOutcome:
    """Run every stage on one question. Raises `UpstreamError` (incl. `StageReplyError`) on failure."""
    trace = _Trace(options.clock)
    earlier = tuple(t.question for t in history)

    short = trace.run("shortQuery", short_query.run, short_query.ShortQueryInput(question, lang, earlier))
    if isinstance(short, Blocked):
        return trace.blocked(short)
    first = trace.run("rules", rules.run, rules.RulesInput(question, lang))
    if isinstance(first, Blocked):
        return trace.blocked(first)
    masked = first.masked_text
    second = trace.run("piStage2", ai_pii.run, ai_pii.PiiInput(masked, lang), ai)
    if isinstance(second, Blocked):
        return trace.blocked(second)

    detected = trace.run("translation", language.run, language.LanguageInput(masked, lang), ai)
    if isinstance(detected, Blocked):
        return trace.blocked(detected)
    english = detected.english_question
    if detected.translated:
        again = trace.run("rules.english", rules.run, rules.RulesInput(english, "en"))
        if isinstance(again, Blocked):
            return trace.blocked(again)
        if detected.language not in (language.ENGLISH, language.FRENCH):
            again_ai = trace.run("piStage2.english", ai_pii.run, ai_pii.PiiInput(english, "en"), ai)
            if isinstance(again_ai, Blocked):
                return trace.blocked(again_ai)

    rewrite = trace.run("queryRewrite", query_rewrite.run, query_rewrite.RewriteInput(
        english, masked, detected.language, lang, earlier, referring_url), ai)
    # A follow-up is about the page the conversation's last answer cited when the user came
    # from no page of their own ("how long does it take?" after a passport answer).
    search_page = referring_url or (history[-1].citation_url if history else None)
    found = trace.run("search", search_stage.run, search_stage.SearchInput(rewrite.query, rewrite.query_lang,
                      search_page), search, lambda q: query_rewrite.run_simpler(q, rewrite.query_lang, ai))
    dept = trace.run("context", department.run, department.DepartmentInput(
        english, lang, found.results, referring_url), ai)

    scenario = options.scenarios.get(dept.department or "", options.scenarios.get("", ""))
    replied = trace.run("answer", answer.run, answer.AnswerInput(
        english, masked, detected.language, lang, _history(history), found.results, dept.department,
        dept.department_url, scenario, options.today or date.today(), referring_url), ai)
    if replied.refused:
        return trace.blocked(Blocked(BlockedBy.CONTENT_FILTER, masked, answer.STAGE, kinds=("content_filter",),
                                     usage=replied.usage))

    parsed = replied.answer
    cited = trace.run("citation", citation.run, citation.CitationInput(
        parsed.citation_url, masked, query_rewrite.search_lang(detected.language, lang), dept.department_url),
        options.session, live=options.check_citations, schemes=options.citation_schemes,
        extra_hosts=options.citation_extra_hosts)

    context_usage = trace.usage("queryRewrite", "search", "context")
    return Answered(
        question=QuestionFields(masked, detected.language, english, lang),
        answer=AnswerFields(
            answer_type=parsed.answer_type, content=parsed.content, english_answer=parsed.english_answer,
            sentences=parsed.sentences, citation_head=parsed.citation_head, ai_citation_url=cited.ai_citation_url,
            citation_url=cited.citation_url, citation_status=cited.status.value, confidence=parsed.confidence,
            model=replied.usage.model, input_tokens=replied.usage.input_tokens,
            output_tokens=replied.usage.output_tokens,
            tools_used=("search", *(("citationCheck",) if options.check_citations else ())),
        ),
        context=ContextFields(
            department=dept.department, department_url=dept.department_url, department_source=dept.source,
            search_query=found.query, search_results=found.results, search_provider=found.provider,
            search_retried=found.retried, translated_question=english if detected.translated else None,
            original_language=detected.language, untranslated=detected.untranslated, model=context_usage.model,
            input_tokens=context_usage.input_tokens, output_tokens=context_usage.output_tokens,
        ),
        trace=tuple(trace.records),
    )
