"""The `ai-answers` pipeline: a batch row sent to a deployed AI Answers (ai-answers.md §6).

Each row is one request to `POST /api/chat/chat-graph-run`, and its stream is read to its
end within the row's deadline. What comes back is a `ChatResult` like the local
pipeline's: the same answer fields (`lib.chat.record.answer_fields`) read from an
interaction document of the same shape, so result rows look the same.

The endpoint is not idempotent: a retry after a lost reply asks again. So

- every request is recorded on its row before it is sent, and its outcome after
  (`lib.pipelines.attempts`); a row whose claim was lost sends nothing;
- an answered row's interaction is written as soon as its stream ends, before the row's
  grouped finish, and a row tried again whose interaction exists is answered from it,
  without a request;
- a request given up on at its deadline leaves that deadline on the row: it is not sent
  again before then (`retry_after` here, `BatchStore.reset_orphans` for a step that died);
- a conversation the deployment refused (403 on its signature or chat id) fails its
  remaining turns without sending them.

A conversation's session, chat id and history signature are carried from turn to turn:
in memory within a step (the engine hands each turn the state its previous turn
returned, as `ChatResult.turns`), and on the items between steps.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from typing import Any

from bson import ObjectId

from lib.chat.record import answer_fields
from lib.chat.service import ChatResult
from lib.errors import UpstreamError
from lib.models import Batch, BatchItem
from lib.pipelines.ai_answers_http import AIAnswersTransport, TurnReply
from lib.pipelines.ai_answers_wire import (
    PROVIDER,
    Refused,
    TurnRequest,
    build_body,
    interaction_from_result,
    no_result_error,
    read_error_event,
)
from lib.pipelines.attempts import AttemptLog
from lib.pipelines.conversation import ConversationState
from lib.providers.gate import ProviderGate
from lib.store.chats import ChatStore

log = logging.getLogger("ai_answers.pipelines")

# Provider names of this service that a deployment also knows (anything else: its default).
DEPLOYMENT_AI = ("openai", "azure", "anthropic")
DEPLOYMENT_SEARCH = ("google", "canadaca")
REFUSED_MEMORY = 10_000  # refused conversations remembered in this process (a refusal never ends)


class AIAnswersPipeline:
    name = PROVIDER
    idempotent = False

    def __init__(self, transport: AIAnswersTransport, attempts: AttemptLog, chats: ChatStore, *,
                 now: Callable[[], datetime], gate: ProviderGate | None = None, wait_seconds: float = 20.0,
                 deployment: str = ""):
        self.transport = transport
        self.attempts = attempts
        self.chats = chats
        self.now = now
        self.gate = gate
        self.wait_seconds = wait_seconds
        self.deployment = deployment
        self._refused: dict[str, str] = {}
        self._lock = threading.Lock()

    def process_row(self, *, item: BatchItem, batch: Batch, claim_id: str, attempt: int, answer_by: datetime,
                    earlier_turns: Sequence[dict[str, Any]] | None) -> ChatResult:
        """Send one claimed row and read its answer; a blocked `ChatResult` for a refusal by design.

        `earlier_turns`: the state the conversation's previous turn returned in this step
        (its `ChatResult.turns`), `()` for a first turn never sent, None when unknown (read
        from the items). Raises `UpstreamError` (retryable or not), see `lib.pipelines.ai_answers_wire`.
        """
        started = time.perf_counter()
        interaction_oid = ObjectId(item.interaction_id)
        chat_id = item.chat_id or ""
        if item.attempts > 0 or attempt > 1:
            existing = self.chats.get_interaction(interaction_oid)
            if existing is not None:  # answered by an earlier attempt whose finish was lost: never ask again
                state = self.attempts.state_before(batch.id, item.chat_key, (item.turn or 0) + 1)
                return _answered(existing, created=False, turns=_turns(earlier_turns, state))
        if answer_by <= self.now():
            raise UpstreamError("no time was left in this step to ask ai-answers; nothing was sent",
                                provider=PROVIDER, retryable=True, code="AI_ANSWERS_TIMEOUT")
        state = self._state(item, batch, earlier_turns)
        refused = state.refused or self._refused.get(chat_id)
        if refused:
            raise UpstreamError(f"ai-answers refused this conversation earlier ({refused}); this turn was not sent",
                                provider=PROVIDER, retryable=False, code="AI_ANSWERS_CONVERSATION_BROKEN")
        turn = TurnRequest(
            question=item.question, lang=batch.page_language, referring_url=item.referring_url,
            selected_ai=batch.ai_provider if batch.ai_provider in DEPLOYMENT_AI else None,
            search_provider=batch.search_provider if batch.search_provider in DEPLOYMENT_SEARCH else None,
            message_id=item.interaction_id,
        )
        with self._slot():
            request_id = self.attempts.open(item.id, claim_id, attempt, self.now(), answer_by)
            if request_id is None:
                raise UpstreamError("the row is no longer this step's; nothing was sent", provider=PROVIDER,
                                    retryable=False, code="AI_ANSWERS_CLAIM_LOST")
            reply = self._send(item, state, turn, request_id, answer_by)
        return self._outcome(item, batch, state, reply, request_id, earlier_turns, started)

    # --- the request ------------------------------------------------------------------

    def _slot(self) -> AbstractContextManager[None]:
        return self.gate.slot(self.wait_seconds) if self.gate is not None else nullcontext()

    def _send(self, item: BatchItem, state: ConversationState, turn: TurnRequest, request_id: str,
              answer_by: datetime) -> TurnReply:
        seconds_left = (answer_by - self.now()).total_seconds()
        try:
            return self.transport.send_turn(build_body(turn, state), state.cookies, time.monotonic() + seconds_left)
        except UpstreamError as exc:
            now = self.now()
            still_open = bool(exc.details.get("requestOpen"))
            if still_open:
                # Given up on by us, maybe still running there: not again before its deadline.
                exc.retry_after = max(exc.retry_after or 0.0, (answer_by - now).total_seconds(), 1.0)
            after = None
            if exc.code == "AI_ANSWERS_CONVERSATION_REFUSED":
                after = state.refuse(exc.code)
                self._remember_refusal(item.chat_id or "", exc.code)
            self.attempts.close(item.id, request_id, f"{'retry' if exc.retryable else 'failed'}:{exc.code}", now,
                                request_over=not still_open, state=after)
            log.info("row=%s ai-answers attempt=%s error=%s", item.row_index, request_id, exc.code)
            raise

    def _outcome(self, item: BatchItem, batch: Batch, state: ConversationState, reply: TurnReply,
                 request_id: str, earlier_turns: Sequence[dict[str, Any]] | None, started: float) -> ChatResult:
        outcome = reply.outcome
        now = self.now()
        if outcome.result is not None:
            result = outcome.result
            doc = interaction_from_result(
                result, interaction_id=ObjectId(item.interaction_id), chat_id=item.chat_id or "",
                user_id=batch.uploader_user_id, now=now, question=item.question, page_language=batch.page_language,
                referring_url=item.referring_url, history_ids=[], statuses=outcome.statuses,
                total_ms=_ms_since(started), deployment=self.deployment,
            )
            after = state.after_answer(item.question, doc["answer"]["text"], _str(result.get("chatId")),
                                       _str(result.get("historySignature")), reply.cookies)
            # Written now, not with the step's next flush: a re-run finds it and does not ask again.
            if after.answered_turns == 1:
                self.chats.ensure_chats({doc["chatId"]: batch.uploader_user_id}, now)
            self.chats.insert_interactions([doc])
            self.attempts.close(item.id, request_id, "answered", now, request_over=True, state=after)
            return _answered(doc, created=True, turns=_turns(earlier_turns, after))
        if outcome.error is not None:
            read = read_error_event(outcome.error, item.question)
            if isinstance(read, Refused):
                after = state.with_session(reply.cookies, None, _str(outcome.error.get("historySignature")))
                self.attempts.close(item.id, request_id, "blocked", now, request_over=True, state=after)
                return ChatResult(
                    chat_id=item.chat_id or "", interaction_id=item.interaction_id, answer=None, citation_url=None,
                    redacted_question=read.masked_text, model="", input_tokens=0, output_tokens=0,
                    response_time_ms=_ms_since(started), created=False, turns=_turns(earlier_turns, after),
                    blocked_by=read.by, fallback_url=read.fallback_url,
                )
            error = read
        else:
            error = no_result_error(outcome)
        self.attempts.close(item.id, request_id, f"{'retry' if error.retryable else 'failed'}:{error.code}", now,
                            request_over=True, state=state.with_session(reply.cookies, None, None))
        log.info("row=%s ai-answers attempt=%s error=%s malformed=%s", item.row_index, request_id, error.code,
                 outcome.malformed)
        raise error

    # --- conversation state ---------------------------------------------------------------

    def _state(self, item: BatchItem, batch: Batch, earlier_turns: Sequence[dict[str, Any]] | None
               ) -> ConversationState:
        if earlier_turns:
            state = ConversationState.from_doc(earlier_turns[-1])
            if state is not None:
                return state
        if earlier_turns is not None and (item.turn or 0) == 0 and item.attempts == 0:
            return ConversationState.new()
        # A step taking the conversation up (or a turn tried again): what its items hold.
        stored = self.attempts.state_before(batch.id, item.chat_key, (item.turn or 0) + 1)
        return stored if stored is not None else ConversationState.new()

    def _remember_refusal(self, chat_id: str, code: str) -> None:
        with self._lock:
            if len(self._refused) >= REFUSED_MEMORY:
                self._refused.clear()  # the items remember too; this only saves a read
            self._refused[chat_id] = code


def _turns(earlier: Sequence[dict[str, Any]] | None, state: ConversationState | None) -> tuple[dict[str, Any], ...]:
    """What the next turn is handed (`ChatResult.turns`): the conversation's state after this turn.

    The interaction is stored here, not by the engine (`ChatResult.interaction` is None), so
    the engine reads nothing else from it.
    """
    if state is not None:
        return (state.to_doc(),)
    return tuple(earlier or ())[-1:]


def _answered(doc: dict[str, Any], *, created: bool, turns: tuple[dict[str, Any], ...]) -> ChatResult:
    tokens = doc.get("tokens") or {}
    return ChatResult(
        chat_id=doc["chatId"], interaction_id=str(doc["_id"]), answer=doc["answer"]["text"],
        citation_url=doc["answer"].get("citationUrl"), redacted_question=doc["question"]["redactedText"],
        model=doc["answer"].get("model", ""), input_tokens=tokens.get("input", 0),
        output_tokens=tokens.get("output", 0), response_time_ms=doc.get("timings", {}).get("totalMs", 0),
        created=created, turns=turns, interaction=None, fields=answer_fields(doc),
        tokens_by_stage=tokens.get("byStage", {}),
    )


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _ms_since(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)

