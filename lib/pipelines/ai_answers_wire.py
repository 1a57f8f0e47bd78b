"""The deployed AI Answers' chat endpoint as data (pure): the request body, what a refusal
means, and what a stream's events come to (ai-answers.md §6).

| what the deployment did                         | outcome                                 | retryable |
|-------------------------------------------------|-----------------------------------------|-----------|
| `result` event                                  | answered: the local pipeline's fields   |           |
| `error` ShortQueryValidation                    | blocked `shortQuery`                    |           |
| `error` RedactionError                          | blocked `piStage1` (or the stage named) |           |
| any other `error`                               | AI_ANSWERS_ERROR, its name and message  | if marked |
| the stream ended with neither                   | AI_ANSWERS_NO_RESULT                    | yes       |
| 429 `chat_run_in_progress`                      | AI_ANSWERS_CHAT_BUSY, `Retry-After`     | yes       |
| 429 `RATE_LIMITED` (or any other 429)           | PROVIDER_RATE_LIMITED, `Retry-After`    | yes       |
| 403 `invalid_chatId` / `missing_signature` / `invalid_signature` | AI_ANSWERS_CONVERSATION_REFUSED | no |
| 403 other (`botDetected`...)                    | AI_ANSWERS_REFUSED                      | no        |
| 401                                             | AI_ANSWERS_UNAUTHORIZED                 | no        |
| 503, 5xx                                        | AI_ANSWERS_SERVER_ERROR                 | yes       |
| other 4xx                                       | AI_ANSWERS_REJECTED                     | no        |

The conversation history sent with a turn is what the deployment signed: the earlier
questions and answers as `{"sender": "user" | "ai", "text"}`, oldest first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bson import ObjectId

from lib.chat.stages.base import BlockedBy
from lib.errors import UpstreamError
from lib.pipelines.conversation import ConversationState

PROVIDER = "ai-answers"
ENDPOINT_PATH = "/api/chat/chat-graph-run"
PIPELINE_NAME = "ai-answers"
CONVERSATION_REFUSALS = frozenset({"invalid_chatId", "missing_signature", "invalid_signature"})
MESSAGE_CHARS = 300  # of a server's error message kept on the row


@dataclass(frozen=True)
class TurnRequest:
    """One row as the deployment is asked it."""

    question: str
    lang: str
    referring_url: str | None
    selected_ai: str | None
    search_provider: str | None
    message_id: str  # the row's interaction id: the same on every attempt of the row
    department: str | None = None


def build_body(turn: TurnRequest, state: ConversationState) -> dict[str, Any]:
    """The JSON body of one turn (a first turn sends no chat id: the deployment issues one)."""
    body: dict[str, Any] = {
        "userMessage": turn.question,
        "userMessageId": turn.message_id,
        "conversationHistory": [dict(h) for h in state.history],
        "lang": turn.lang,
        "referringUrl": turn.referring_url or "",
        "visitorId": state.visitor_id,
        "translationF": False,
    }
    if state.server_chat_id:
        body["chatId"] = state.server_chat_id
    if state.history:
        body["historySignature"] = state.history_signature
    if turn.department:
        body["department"] = turn.department
    if turn.selected_ai:
        body["selectedAI"] = turn.selected_ai
    if turn.search_provider:
        body["searchProvider"] = turn.search_provider
    return {"input": body}


def refusal_error(status: int, body: Any, retry_after: float | None) -> UpstreamError:
    """The error a non-200 reply means (see the module's table)."""
    reason = _reason(body)
    said = f" ({reason})" if reason else ""
    if status == 429:
        if reason == "chat_run_in_progress":
            return UpstreamError("ai-answers is still running an earlier turn of this chat (429 chat_run_in_progress)",
                                 provider=PROVIDER, retryable=True, code="AI_ANSWERS_CHAT_BUSY",
                                 retry_after=retry_after)
        return UpstreamError(f"ai-answers is rate limiting us (429{said})", provider=PROVIDER, retryable=True,
                             code="PROVIDER_RATE_LIMITED", retry_after=retry_after)
    if status == 403 and reason in CONVERSATION_REFUSALS:
        return UpstreamError(f"ai-answers refused this conversation (403 {reason}); its later turns are not sent",
                             provider=PROVIDER, retryable=False, code="AI_ANSWERS_CONVERSATION_REFUSED")
    if status == 403:
        return UpstreamError(f"ai-answers refused the request (403{said})", provider=PROVIDER, retryable=False,
                             code="AI_ANSWERS_REFUSED")
    if status == 401:
        return UpstreamError("ai-answers requires sign-in (401): set AI_ANSWERS_TOKEN", provider=PROVIDER,
                             retryable=False, code="AI_ANSWERS_UNAUTHORIZED")
    if status >= 500 or status == 408:
        return UpstreamError(f"ai-answers failed with {status}{said}", provider=PROVIDER, retryable=True,
                             code="AI_ANSWERS_SERVER_ERROR", retry_after=retry_after)
    return UpstreamError(f"ai-answers rejected the request with {status}{said}", provider=PROVIDER,
                         retryable=False, code="AI_ANSWERS_REJECTED")


def _reason(body: Any) -> str:
    """The refusal's short name from an error body (`{"error": "x"}`, `{"code": "x"}`, `{"error": {"code": "x"}}`)."""
    if not isinstance(body, dict):
        return ""
    for key in ("error", "code", "reason"):
        value = body.get(key)
        if isinstance(value, dict):
            value = value.get("code") or value.get("name")
        if isinstance(value, str) and value:
            return value[:60]
    return ""


@dataclass
class StreamOutcome:
    """What the events of one stream came to (filled in by `StreamReading.take`)."""

    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    statuses: list[tuple[str, float]] = field(default_factory=list)  # (stage, seconds since the request)
    keepalives: int = 0
    malformed: int = 0
    malformed_result: bool = False

    @property
    def final(self) -> bool:
        return self.result is not None or self.error is not None


def take_event(outcome: StreamOutcome, name: str, data: Any, elapsed: float) -> None:
    """Fold one event into the outcome (the first `result` or `error` wins; later ones are ignored)."""
    if name == "status" and isinstance(data, dict):
        if data.get("status") == "keepalive":
            outcome.keepalives += 1
        elif isinstance(data.get("status"), str):
            outcome.statuses.append((data["status"], elapsed))
    elif name == "result" and not outcome.final:
        if isinstance(data, dict) and isinstance(data.get("answer"), dict):
            outcome.result = data
        else:
            outcome.malformed += 1
            outcome.malformed_result = True
    elif name == "error" and not outcome.final:
        outcome.error = data if isinstance(data, dict) else {"name": "UnknownError", "message": ""}
    elif name == "MALFORMED":
        outcome.malformed += 1


def no_result_error(outcome: StreamOutcome) -> UpstreamError:
    """A stream that ended without a usable `result` or `error`: retryable (the deployment may answer again)."""
    what = "a garbled result" if outcome.malformed_result else "no result"
    extra = f", {outcome.malformed} malformed events" if outcome.malformed else ""
    return UpstreamError(f"ai-answers' stream ended with {what}{extra}", provider=PROVIDER, retryable=True,
                         code="AI_ANSWERS_NO_RESULT")


@dataclass(frozen=True)
class Refused:
    """An `error` event that is a refusal by design: the row is `blocked`."""

    by: str
    masked_text: str
    fallback_url: str | None


def read_error_event(error: dict[str, Any], question: str) -> Refused | UpstreamError:
    """A block for ShortQueryValidation / RedactionError, else the server's failure."""
    name = str(error.get("name") or "UnknownError")[:80]
    redacted = error.get("redactedText")
    fallback = error.get("fallbackUrl") if isinstance(error.get("fallbackUrl"), str) else None
    if name == "ShortQueryValidation":
        return Refused(BlockedBy.SHORT_QUERY.value, redacted if isinstance(redacted, str) else question, fallback)
    if name == "RedactionError":
        stage = error.get("blockedBy") or error.get("stage")
        by = stage if stage in {b.value for b in BlockedBy} else BlockedBy.PI_STAGE1.value
        # Without the deployment's masked copy nothing of the question is known to be safe to keep.
        return Refused(by, redacted if isinstance(redacted, str) and redacted.strip() else "XXX", fallback)
    message = " ".join(str(error.get("message") or "").split())[:MESSAGE_CHARS]
    return UpstreamError(f"ai-answers failed: {name}: {message}".rstrip(": "), provider=PROVIDER,
                         retryable=error.get("retryable") is True, code="AI_ANSWERS_ERROR")


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


def _search_results(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        return []
    return [{"title": _text(r.get("title")) or "", "url": _text(r.get("url") or r.get("link")) or "",
             "snippet": _text(r.get("summary") or r.get("snippet")) or ""} for r in value if isinstance(r, dict)]


def interaction_from_result(
    result: dict[str, Any], *, interaction_id: ObjectId, chat_id: str, user_id: str, now: datetime,
    question: str, page_language: str, referring_url: str | None, history_ids: list[ObjectId],
    statuses: list[tuple[str, float]], total_ms: int, deployment: str,
) -> dict[str, Any]:
    """The interaction document of an answered row, shaped as `lib.chat.record.interaction_doc` shapes the local one.

    `chat_id` is our chat (issued at upload); the deployment's own chat id is kept under `upstream`.
    """
    answer = result.get("answer") or {}
    context = result.get("context") if isinstance(result.get("context"), dict) else {}
    sentences = [s for s in answer.get("sentences") or [] if isinstance(s, str)]
    kept_question = _text(result.get("question")) or question
    search_provider = _text(context.get("searchProvider")) or ""
    input_tokens, output_tokens = _int(answer.get("inputTokens")), _int(answer.get("outputTokens"))
    model = _text(answer.get("model")) or ""
    return {
        "_id": interaction_id,
        "chatId": chat_id,
        "userId": user_id,
        "createdAt": now,
        "pipeline": PIPELINE_NAME,
        "appVersion": _text(result.get("appVersion")) or "",
        "question": {
            "redactedText": kept_question,
            "language": _text(answer.get("questionLanguage")) or _text(context.get("originalLang")),
            "englishQuestion": _text(answer.get("englishQuestion")) or _text(context.get("translatedQuestion")),
            "pageLanguage": page_language,
        },
        "answer": {
            "text": _text(answer.get("content")) or "",
            "englishAnswer": _text(answer.get("englishAnswer")),
            "sentences": sentences,
            "answerType": _text(answer.get("answerType")) or "normal",
            "citationUrl": _text(result.get("citationUrl")) or _text(answer.get("citationUrl")),
            "aiCitationUrl": _text(answer.get("citationUrl")),
            "citationHead": _text(answer.get("citationHead")),
            "citationStatus": None,
            "confidence": answer.get("confidenceRating"),
            "model": model,
            "aiProvider": PROVIDER,
            "inputTokens": input_tokens,
            "outputTokens": output_tokens,
            "toolsUsed": [t for t in answer.get("tools") or answer.get("toolsUsed") or [] if isinstance(t, str)],
        },
        "context": {
            "department": _text(context.get("department")),
            "departmentUrl": _text(context.get("departmentUrl")),
            "departmentSource": "ai-answers",
            "searchQuery": _text(context.get("searchQuery")),
            "searchProvider": search_provider,
            "searchRetried": False,
            "translatedQuestion": _text(context.get("translatedQuestion")),
            "originalLanguage": _text(context.get("originalLang")),
            "model": _text(context.get("model")) or "",
            "inputTokens": _int(context.get("inputTokens")),
            "outputTokens": _int(context.get("outputTokens")),
        },
        "search": {"provider": search_provider, "query": _text(context.get("searchQuery")),
                   "results": _search_results(context.get("searchResults"))},
        "referringUrl": referring_url,
        "historyIds": history_ids,
        "overridesApplied": [],
        "overrideUserId": None,
        "tokens": {"input": input_tokens + _int(context.get("inputTokens")),
                   "output": output_tokens + _int(context.get("outputTokens")),
                   "byStage": {"answer": {"model": model, "inputTokens": input_tokens, "outputTokens": output_tokens}}},
        "timings": {**stage_timings(statuses, total_ms), "totalMs": total_ms},
        "upstream": {"deployment": deployment, "chatId": _text(result.get("chatId"))},
    }


def stage_timings(statuses: list[tuple[str, float]], total_ms: int) -> dict[str, int]:
    """Milliseconds per stage the deployment announced, each until the next announcement (or the end)."""
    out: dict[str, int] = {}
    for index, (stage, at) in enumerate(statuses):
        end = statuses[index + 1][1] if index + 1 < len(statuses) else total_ms / 1000
        out[stage] = out.get(stage, 0) + max(0, round((end - at) * 1000))
    return out
