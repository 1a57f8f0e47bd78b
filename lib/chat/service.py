"""The chat pipeline: one message in, one answer (or a block) out, the same for a live chat and a batch row.

`ChatProcessingService.process_message` runs the stages of ai-answers.md §1
(`lib.chat.stages.pipeline`) on the message and its chat's history, and records what
comes back (`lib.chat.record`). A question the assistant refuses by design is a
result (`ChatResult.blocked_by`), never stored in clear.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlparse

import requests
from bson import ObjectId

from lib.chat.record import answer_fields, interaction_doc
from lib.chat.stages.base import Blocked, StageRecord
from lib.chat.stages.outcome import tokens_by_stage
from lib.chat.stages.pipeline import PipelineOptions, Turn, run_pipeline
from lib.errors import BadRequest, NotFound, UnprocessableEntity, UpstreamError
from lib.models import PromptOverride, User
from lib.providers.base import AIProvider, SearchProvider
from lib.store.chats import ChatStore
from lib.store.ids import new_chat_id, to_object_id

LANGUAGES = ("en", "fr")
_OVERRIDE_CACHE_SECONDS = 10.0
# An override under this key (or any key that is not a department's) applies to every answer.
GENERAL_OVERRIDE_KEYS = ("systemPrompt", "default", "")


@dataclass(frozen=True)
class ChatResult:
    chat_id: str
    interaction_id: str
    answer: str | None
    citation_url: str | None
    redacted_question: str
    model: str
    input_tokens: int
    output_tokens: int
    response_time_ms: int
    created: bool  # False when the interaction already existed (a repeated interaction_id)
    # The chat's interactions up to and including this one, oldest first: the next turn's history.
    turns: tuple[dict[str, Any], ...] = ()
    # With `record=False`: the interaction document the caller is to write (None if it exists).
    interaction: dict[str, Any] | None = None
    # The answer columns of a result row (api.md): language, English question, answer type...
    fields: dict[str, Any] = field(default_factory=dict)
    # A refused question: by which check (api.md `blockedBy`), and where to send the user instead.
    blocked_by: str | None = None
    fallback_url: str | None = None
    tokens_by_stage: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Providers:
    """How the pipeline reaches providers by name (wired in the composition root)."""

    ai: Callable[[str], AIProvider]
    search: Callable[[str], SearchProvider]


def valid_referring_url(value: str | None) -> str | None:
    """The URL if it is an http(s) URL of sane length, else None (junk is dropped, not fatal)."""
    if not value:
        return None
    value = value.strip()
    parsed = urlparse(value)
    if parsed.scheme in ("http", "https") and parsed.netloc and len(value) <= 2000:
        return value
    return None


class ChatProcessingService:
    def __init__(
        self,
        chats: ChatStore,
        load_overrides: Callable[[str], list[PromptOverride]],
        providers: Providers,
        *,
        max_message_chars: int,
        history_turns: int,
        now: Callable[[], datetime],
        check_citations: bool = False,
        citation_session: requests.Session | None = None,
    ):
        self.chats = chats
        self.load_overrides = load_overrides
        self.providers = providers
        self.max_message_chars = max_message_chars
        self.history_turns = history_turns
        self.now = now
        self.check_citations = check_citations
        self.citation_session = citation_session
        self._override_cache: dict[str, tuple[float, list[PromptOverride]]] = {}

    def process_message(
        self,
        chat_id: str | None,
        user_message: str,
        lang: str,
        selected_ai: str,
        selected_search: str,
        referring_url: str | None,
        user: User,
        override_user_id: str | None,
        interaction_id: str | None = None,
        answer_by: datetime | None = None,
        earlier_turns: Sequence[dict[str, Any]] | None = None,
        record: bool = True,
    ) -> ChatResult:
        """Answer one message in the chat `chat_id` (a new chat, with an id the server makes, when None).

        `lang` is the page language; the answer is in the question's own language.
        `record=True` (a live chat): `chat_id` must be a chat the server issued to this
        user; the interaction is written before returning, and a refused question raises
        `UnprocessableEntity` (422 `BLOCKED`). `record=False` (a batch row): `chat_id` was
        issued at upload to the batch's owner; the caller writes the returned
        `ChatResult.interaction` itself, grouped with other rows, and a refused question
        comes back with `blocked_by` set.
        `answer_by`: an answer that arrives later is not recorded (the caller has given up
        on it, and another attempt may be running); a retryable `UpstreamError` instead.
        `earlier_turns`: the chat's interactions when the caller already holds them (a batch
        step running a conversation's turns one after another passes the previous turn's
        `ChatResult.turns`); they are not read again.
        Raises `BadRequest` for an invalid message, `NotFound` for a chat that is not the
        user's or was never issued, and `UpstreamError` (retryable or not) when a provider fails.
        """
        started = time.perf_counter()
        question = self._validate(user_message, lang)
        referring_url = valid_referring_url(referring_url)
        ai = self.providers.ai(selected_ai)
        search = self.providers.search(selected_search)
        interaction_oid = self._interaction_oid(interaction_id)

        new_chat = False
        if record and chat_id is None:
            chat_id, new_chat, past = new_chat_id(), True, []
        elif record:
            if self.chats.owner_of(chat_id) != user.id:
                raise NotFound("No such chat.", code="CHAT_NOT_FOUND")
            past = self.chats.turns(chat_id)
        elif chat_id is None:
            raise ValueError("a batch row's chat id is issued at upload")
        else:
            past = list(earlier_turns) if earlier_turns is not None else self.chats.turns(chat_id)
        for index, doc in enumerate(past):
            if doc["_id"] == interaction_oid:
                return _result_from_doc(doc, created=False, turns=tuple(past[: index + 1]))
        history = [d for d in past if d["_id"] != interaction_oid][-self.history_turns :] if self.history_turns else []
        overrides = self._overrides(override_user_id) if override_user_id else []

        outcome = run_pipeline(question, [_turn(d) for d in history], lang, referring_url, ai, search,
                               self._options(overrides))
        if answer_by is not None and self.now() > answer_by:
            raise UpstreamError(f"{ai.name} answered after the caller's deadline; the answer was dropped",
                                provider=ai.name, retryable=True, code="ANSWER_TOO_LATE")
        if isinstance(outcome, Blocked):
            return self._blocked(outcome, chat_id, interaction_oid, record, started)

        doc = interaction_doc(
            outcome, interaction_id=interaction_oid, chat_id=chat_id, user_id=user.id, now=self.now(),
            referring_url=referring_url, search_provider=search.name, ai_provider=ai.name,
            history_ids=[d["_id"] for d in history], overrides_applied=[o.key for o in overrides],
            override_user_id=override_user_id, total_ms=_ms_since(started),
        )
        if not record:
            result = _result_from_doc(doc, created=True, turns=(*past, doc))
            return dataclasses.replace(result, interaction=doc)
        if new_chat:
            self.chats.create_chat(chat_id, user.id, self.now())
        if not self.chats.insert_interaction(doc):
            # Another delivery of the same message got there first: its answer stands.
            existing = self.chats.get_interaction(interaction_oid)
            if existing is not None:
                return _result_from_doc(existing, created=False, turns=(*past, existing))
        return _result_from_doc(doc, created=True, turns=(*past, doc))

    def _blocked(self, block: Blocked, chat_id: str, interaction_oid: ObjectId, record: bool,
                 started: float) -> ChatResult:
        """A refused question: the 422 of a live chat, or the outcome of a batch row (nothing stored here)."""
        if record:
            raise UnprocessableEntity(
                "The assistant does not answer this question.", code="BLOCKED",
                details={"blockedBy": block.by.value, "fallbackUrl": block.fallback_url},
            )
        # The trace holds every stage that ran, the refusing one included (its usage is `block.usage`):
        # priced by stage, by the model each one called.
        trace = block.trace or (StageRecord(block.stage, 0, block.usage),)
        models = [r.usage.model for r in trace if r.usage.model]
        return ChatResult(
            chat_id=chat_id, interaction_id=str(interaction_oid), answer=None, citation_url=None,
            redacted_question=block.masked_text, model=models[-1] if models else "",
            input_tokens=sum(r.usage.input_tokens for r in trace), output_tokens=sum(r.usage.output_tokens for r in trace),
            response_time_ms=_ms_since(started), created=False, blocked_by=block.by.value,
            fallback_url=block.fallback_url, tokens_by_stage=tokens_by_stage(trace),
        )

    def _options(self, overrides: list[PromptOverride]) -> PipelineOptions:
        """The pipeline's options: citation checks, and the user's overrides as scenarios by department."""
        general = "\n".join(o.text for o in overrides if o.key in GENERAL_OVERRIDE_KEYS or not _is_department(o.key))
        scenarios = {"": general}
        for o in overrides:
            if _is_department(o.key):
                scenarios[o.key] = "\n".join(t for t in (general, o.text) if t)
        return PipelineOptions(check_citations=self.check_citations, session=self.citation_session,
                               scenarios=scenarios)

    def _validate(self, message: Any, lang: str) -> str:
        if lang not in LANGUAGES:
            raise BadRequest("lang must be 'en' or 'fr'.", code="INVALID_LANG", details={"field": "lang"})
        if not isinstance(message, str) or not message.strip():
            raise BadRequest("The message is empty.", code="EMPTY_MESSAGE", details={"field": "message"})
        message = message.strip()
        if len(message) > self.max_message_chars:
            raise BadRequest(
                f"The message is {len(message)} characters; the limit is {self.max_message_chars}.",
                code="MESSAGE_TOO_LONG",
                details={"field": "message", "maxChars": self.max_message_chars},
            )
        return message

    @staticmethod
    def _interaction_oid(interaction_id: str | None) -> ObjectId:
        if interaction_id is None:
            return ObjectId()
        oid = to_object_id(interaction_id)
        if oid is None:
            raise BadRequest("interaction_id must be an ObjectId.", code="INVALID_ID")
        return oid

    def _overrides(self, user_id: str) -> list[PromptOverride]:
        # A short cache: a batch with overrides reads them once, not once per row.
        cached = self._override_cache.get(user_id)
        if cached and time.monotonic() - cached[0] < _OVERRIDE_CACHE_SECONDS:
            return cached[1]
        overrides = self.load_overrides(user_id)
        self._override_cache[user_id] = (time.monotonic(), overrides)
        return overrides


def _is_department(key: str) -> bool:
    from lib.chat.stages.department import departments

    return key in departments()


def _turn(doc: dict[str, Any]) -> Turn:
    """An earlier interaction as the pipeline's history sees it."""
    return Turn(question=doc["question"]["redactedText"], answer=doc["answer"].get("text") or "",
                english_question=doc["question"].get("englishQuestion"),
                citation_url=doc["answer"].get("citationUrl"))


def _result_from_doc(doc: dict[str, Any], *, created: bool, turns: tuple[dict[str, Any], ...] = ()) -> ChatResult:
    tokens = doc.get("tokens") or {}
    return ChatResult(
        chat_id=doc["chatId"],
        interaction_id=str(doc["_id"]),
        answer=doc["answer"]["text"],
        citation_url=doc["answer"].get("citationUrl"),
        redacted_question=doc["question"]["redactedText"],
        model=doc["answer"].get("model", ""),
        input_tokens=tokens.get("input", doc["answer"].get("inputTokens", 0)),
        output_tokens=tokens.get("output", doc["answer"].get("outputTokens", 0)),
        response_time_ms=doc.get("timings", {}).get("totalMs", 0),
        created=created,
        turns=turns,
        fields=answer_fields(doc),
        tokens_by_stage=tokens.get("byStage", {}),
    )


def _ms_since(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
