"""What the pipeline gives back: an answered message with every field of ai-answers.md §3, or a block.

Persistence maps these to the stored interaction; nothing here touches the database.
`trace` records each stage that ran, in order, with its milliseconds and model usage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lib.chat.stages.base import Blocked, StageRecord
from lib.providers.base import SearchResult


@dataclass(frozen=True)
class QuestionFields:
    """The question as kept: masked text, detected language (ISO 639-3), English text."""

    masked_text: str
    language: str
    english_question: str
    page_language: str


@dataclass(frozen=True)
class AnswerFields:
    """The answer: text, type, sentences, citation, and the answer model's usage."""

    answer_type: str
    content: str
    english_answer: str
    sentences: tuple[str, ...]
    citation_head: str | None
    ai_citation_url: str | None
    citation_url: str
    citation_status: str
    confidence: str | None
    model: str
    input_tokens: int
    output_tokens: int
    tools_used: tuple[str, ...] = ()


@dataclass(frozen=True)
class ContextFields:
    """How the answer was found: department, search, translation, and the context stages' usage.

    The context stages are the query rewrite, the search retry's rewrite and the
    department pick; `model` is the last of them that used one.
    """

    department: str | None
    department_url: str | None
    department_source: str
    search_query: str
    search_results: tuple[SearchResult, ...]
    search_provider: str
    search_retried: bool
    translated_question: str | None
    original_language: str
    untranslated: bool
    model: str
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class Answered:
    """An answered message: question, answer and context fields, and the per-stage trace."""

    question: QuestionFields
    answer: AnswerFields
    context: ContextFields
    trace: tuple[StageRecord, ...] = field(default=())

    def timings_ms(self) -> dict[str, int]:
        """Milliseconds per stage, by stage name (a stage that ran twice adds up)."""
        return timings_ms(self.trace)

    def tokens_by_stage(self) -> dict[str, dict[str, Any]]:
        """Model and tokens per stage, for the stages that used a model."""
        return tokens_by_stage(self.trace)

    @property
    def input_tokens(self) -> int:
        """Input tokens of every stage."""
        return sum(r.usage.input_tokens for r in self.trace)

    @property
    def output_tokens(self) -> int:
        """Output tokens of every stage."""
        return sum(r.usage.output_tokens for r in self.trace)


PipelineOutcome = Answered | Blocked


def timings_ms(trace: tuple[StageRecord, ...]) -> dict[str, int]:
    """Milliseconds per stage name."""
    out: dict[str, int] = {}
    for record in trace:
        out[record.stage] = out.get(record.stage, 0) + record.ms
    return out


def tokens_by_stage(trace: tuple[StageRecord, ...]) -> dict[str, dict[str, Any]]:
    """`{stage: {"model", "inputTokens", "outputTokens"}}` for the stages that used a model."""
    out: dict[str, dict[str, Any]] = {}
    for record in trace:
        if not record.usage.model and not record.usage.input_tokens:
            continue
        entry = out.setdefault(record.stage, {"model": record.usage.model, "inputTokens": 0, "outputTokens": 0})
        entry["inputTokens"] += record.usage.input_tokens
        entry["outputTokens"] += record.usage.output_tokens
    return out
