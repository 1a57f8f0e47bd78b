"""What every stage shares: blocks as results, model usage, the malformed-reply error, one model call.

A stage is a module with a frozen input dataclass, a typed result and `run(...)`. A
question the assistant refuses by design is a `Blocked` result, never an exception;
an exception is a failure (a provider down, a model that answered nonsense).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from urllib.parse import quote_plus

from lib.errors import UpstreamError
from lib.providers.base import CONTENT_FILTER, AIProvider, Completion, CompletionRequest

MALFORMED_STAGE_REPLY = "MALFORMED_STAGE_REPLY"
# How a model says the same in its reply, when a stage's prompt allows it to.
REFUSAL_MARKER = "<refused/>"
SEARCH_URL = {"en": "https://www.canada.ca/en/sr/srb.html?q=", "fr": "https://www.canada.ca/fr/sr/srb.html?q="}


class BlockedBy(StrEnum):
    """Why a question was refused (the `blockedBy` column of a result row)."""

    SHORT_QUERY = "shortQuery"
    PI_STAGE1 = "piStage1"
    PI_STAGE2 = "piStage2"
    PROFANITY = "profanity"
    THREAT = "threat"
    MANIPULATION = "manipulation"
    OBFUSCATED = "obfuscated"
    UNDETERMINED = "undetermined"
    CONTENT_FILTER = "contentFilter"


@dataclass(frozen=True)
class Usage:
    """What one model call cost: the model's name and its tokens (all zero when no model ran)."""

    model: str = ""
    input_tokens: int = 0
    output_tokens: int = 0

    @classmethod
    def of(cls, completion: Completion) -> Usage:
        """The usage a provider reported for a completion."""
        return cls(completion.model, completion.input_tokens, completion.output_tokens)

    def plus(self, other: Usage) -> Usage:
        """Two calls of one stage added up (the model of the last call that had one)."""
        return Usage(other.model or self.model, self.input_tokens + other.input_tokens,
                     self.output_tokens + other.output_tokens)


NO_USAGE = Usage()


@dataclass(frozen=True)
class StageRecord:
    """One stage as it ran: its name, its wall time and its model usage."""

    stage: str
    ms: int
    usage: Usage = NO_USAGE


@dataclass(frozen=True)
class Blocked:
    """A refused question: which check refused it, and the only copy of the text that is kept.

    `masked_text` has every piece of personal information (and every flagged word)
    replaced; `fallback_url` is a canada.ca search the user can be sent to instead;
    `trace` is filled in by the pipeline (the stages that ran before the block).
    """

    by: BlockedBy
    masked_text: str
    stage: str
    kinds: tuple[str, ...] = ()
    fallback_url: str | None = None
    usage: Usage = NO_USAGE
    trace: tuple[StageRecord, ...] = field(default=(), compare=False)


class StageReplyError(UpstreamError):
    """A model's reply to a stage's prompt is not in the shape that prompt asked for.

    Retryable: the same prompt usually gets a well-formed reply on another try.
    """

    code = MALFORMED_STAGE_REPLY

    def __init__(self, stage: str, reason: str, *, provider: str = "", reply: str = ""):
        super().__init__(f"The {stage} stage could not read the model's reply: {reason}", provider=provider,
                         retryable=True, code=MALFORMED_STAGE_REPLY)
        self.stage = stage
        self.reason = reason
        self.details["stage"] = stage
        # An excerpt only: a reply can echo the question, which may hold personal information.
        self.reply_excerpt = reply[:200]


@dataclass(frozen=True)
class Refused:
    """The provider's content filter (or the model itself) refused to process the text."""

    stage: str
    usage: Usage = NO_USAGE


def ask(ai: AIProvider, stage: str, request: CompletionRequest) -> Completion | Refused:
    """One model call for a stage; a content-filter refusal comes back as `Refused`.

    Raises `UpstreamError` for every other provider failure (retryable or not).
    """
    try:
        completion = ai.complete(request)
    except UpstreamError as exc:
        if exc.code == CONTENT_FILTER:
            return Refused(stage)
        raise
    if completion.text.strip() == REFUSAL_MARKER:
        return Refused(stage, Usage.of(completion))
    return completion


def refused_block(refused: Refused, masked_text: str) -> Blocked:
    """The block of a question that a provider's content filter refused."""
    return Blocked(BlockedBy.CONTENT_FILTER, masked_text, refused.stage, kinds=("content_filter",),
                   usage=refused.usage)


def search_url(question: str, lang: str) -> str:
    """The canada.ca search page for a question: where a refused or uncited question is sent."""
    return SEARCH_URL["fr" if lang == "fr" else "en"] + quote_plus(question.strip())


def page_lang(lang: str) -> str:
    """The page language of the two the site has: "fr" for French, "en" for anything else."""
    return "fr" if lang in ("fr", "fra") else "en"
