"""The chat pipeline: one message in, one answer out, the same for a live chat and a batch row."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlparse

from bson import ObjectId

from lib.chat.prompts import build_system_prompt, parse_answer
from lib.chat.redaction import redact
from lib.errors import BadRequest, NotFound, UpstreamError
from lib.models import PromptOverride, User
from lib.providers.base import AIProvider, ChatTurn, CompletionRequest, SearchProvider, SearchResult
from lib.store.chats import ChatStore
from lib.store.ids import new_chat_id, to_object_id

LANGUAGES = ("en", "fr")
_OVERRIDE_CACHE_SECONDS = 10.0


@dataclass(frozen=True)
class ChatResult:
    chat_id: str
    interaction_id: str
    answer: str
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
    ):
        self.chats = chats
        self.load_overrides = load_overrides
        self.providers = providers
        self.max_message_chars = max_message_chars
        self.history_turns = history_turns
        self.now = now
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

        `record=True` (a live chat): `chat_id` must be a chat the server issued to this
        user; the interaction is written before returning. `record=False` (a batch row):
        `chat_id` was issued at upload to the batch's owner, and the caller writes the
        returned `ChatResult.interaction` itself, grouped with other rows.
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
        redaction = redact(question)
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

        search_started = time.perf_counter()
        results = search.search(_search_query(redaction.text, history), lang, referring_url)
        search_ms = _ms_since(search_started)

        request = CompletionRequest(
            system=build_system_prompt(lang, results, referring_url, overrides),
            messages=[*_history_turns(history), ChatTurn(role="user", content=redaction.text)],
            lang=lang,  # type: ignore[arg-type]
            search_results=list(results),
        )
        ai_started = time.perf_counter()
        completion = ai.complete(request)
        ai_ms = _ms_since(ai_started)
        parsed = parse_answer(completion.text)
        if answer_by is not None and self.now() > answer_by:
            raise UpstreamError(f"{ai.name} answered after the caller's deadline; the answer was dropped",
                                provider=ai.name, retryable=True, code="ANSWER_TOO_LATE")

        doc = {
            "_id": interaction_oid,
            "chatId": chat_id,
            "userId": user.id,
            "createdAt": self.now(),
            "question": {
                "redactedText": redaction.text,
                "piiRedacted": redaction.redacted,
                "piiKinds": list(redaction.kinds),
                "language": lang,
            },
            "answer": {
                "text": parsed.text,
                "citationUrl": parsed.citation_url,
                "model": completion.model,
                "aiProvider": ai.name,
                "inputTokens": completion.input_tokens,
                "outputTokens": completion.output_tokens,
            },
            "search": {"provider": search.name, "query": _search_query(redaction.text, history),
                       "results": _results_doc(results)},
            "referringUrl": referring_url,
            "overridesApplied": [o.key for o in overrides],
            "overrideUserId": override_user_id,
            "timings": {"searchMs": search_ms, "aiMs": ai_ms, "totalMs": _ms_since(started)},
        }
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


def _search_query(question: str, history: list[dict[str, Any]]) -> str:
    """The question, with the previous question as context for a follow-up ("and how long?")."""
    if not history:
        return question
    return f"{question} {history[-1]['question']['redactedText']}"


def _history_turns(history: list[dict[str, Any]]) -> list[ChatTurn]:
    turns: list[ChatTurn] = []
    for doc in history:
        turns.append(ChatTurn(role="user", content=doc["question"]["redactedText"]))
        answer = doc["answer"]["text"]
        if doc["answer"].get("citationUrl"):
            answer = f"{answer}\n<citation-url>{doc['answer']['citationUrl']}</citation-url>"
        turns.append(ChatTurn(role="assistant", content=answer))
    return turns


def _results_doc(results: list[SearchResult]) -> list[dict[str, str]]:
    return [{"title": r.title, "url": r.url, "snippet": r.snippet} for r in results]


def _result_from_doc(doc: dict[str, Any], *, created: bool, turns: tuple[dict[str, Any], ...] = ()) -> ChatResult:
    return ChatResult(
        chat_id=doc["chatId"],
        interaction_id=str(doc["_id"]),
        answer=doc["answer"]["text"],
        citation_url=doc["answer"].get("citationUrl"),
        redacted_question=doc["question"]["redactedText"],
        model=doc["answer"].get("model", ""),
        input_tokens=doc["answer"].get("inputTokens", 0),
        output_tokens=doc["answer"].get("outputTokens", 0),
        response_time_ms=doc.get("timings", {}).get("totalMs", 0),
        created=created,
        turns=turns,
    )


def _ms_since(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
