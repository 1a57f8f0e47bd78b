"""What is kept of one answered message (ai-answers.md §3), and the answer fields a result row shows.

`interaction_doc` turns the pipeline's `Answered` into the stored interaction;
`answer_fields` reads a stored interaction back into the answer columns of a result
row (api.md), so that a row answered now and a row whose answer a re-run found stored
come back the same.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bson import ObjectId

from lib.chat.stages.outcome import Answered

PIPELINE_NAME = "local"
APP_VERSION = "batch-2"
MAX_SENTENCES = 4


def interaction_doc(
    outcome: Answered,
    *,
    interaction_id: ObjectId,
    chat_id: str,
    user_id: str,
    now: datetime,
    referring_url: str | None,
    search_provider: str,
    ai_provider: str,
    history_ids: list[ObjectId],
    overrides_applied: list[str],
    override_user_id: str | None,
    total_ms: int,
) -> dict[str, Any]:
    """The interaction document of an answered message: every field of §3, tokens and ms per stage."""
    q, a, c = outcome.question, outcome.answer, outcome.context
    return {
        "_id": interaction_id,
        "chatId": chat_id,
        "userId": user_id,
        "createdAt": now,
        "pipeline": PIPELINE_NAME,
        "appVersion": APP_VERSION,
        "question": {
            "redactedText": q.masked_text,
            "language": q.language,
            "englishQuestion": q.english_question,
            "pageLanguage": q.page_language,
        },
        "answer": {
            "text": a.content,
            "englishAnswer": a.english_answer,
            "sentences": list(a.sentences),
            "answerType": a.answer_type,
            "citationUrl": a.citation_url,
            "aiCitationUrl": a.ai_citation_url,
            "citationHead": a.citation_head,
            "citationStatus": a.citation_status,
            "confidence": a.confidence,
            "model": a.model,
            "aiProvider": ai_provider,
            "inputTokens": a.input_tokens,
            "outputTokens": a.output_tokens,
            "toolsUsed": list(a.tools_used),
        },
        "context": {
            "department": c.department,
            "departmentUrl": c.department_url,
            "departmentSource": c.department_source,
            "searchQuery": c.search_query,
            "searchProvider": search_provider,
            "searchRetried": c.search_retried,
            "translatedQuestion": c.translated_question,
            "originalLanguage": c.original_language,
            "model": c.model,
            "inputTokens": c.input_tokens,
            "outputTokens": c.output_tokens,
        },
        "search": {
            "provider": search_provider,
            "query": c.search_query,
            "results": [{"title": r.title, "url": r.url, "snippet": r.snippet} for r in c.search_results],
        },
        "referringUrl": referring_url,
        "historyIds": history_ids,  # the earlier turns the answer was given as its conversation
        "overridesApplied": overrides_applied,
        "overrideUserId": override_user_id,
        "tokens": {"input": outcome.input_tokens, "output": outcome.output_tokens,
                   "byStage": outcome.tokens_by_stage()},
        "timings": {**outcome.timings_ms(), "totalMs": total_ms},
    }


def answer_fields(doc: dict[str, Any]) -> dict[str, Any]:
    """The answer columns of a result row, read from a stored interaction."""
    question, answer = doc.get("question", {}), doc.get("answer", {})
    context = doc.get("context", {})
    sentences = list(answer.get("sentences") or [])[:MAX_SENTENCES]
    tokens = doc.get("tokens") or {}
    fields: dict[str, Any] = {
        "questionLanguage": question.get("language"),
        "englishQuestion": question.get("englishQuestion"),
        "answerType": answer.get("answerType"),
        "answer": answer.get("text"),
        "englishAnswer": answer.get("englishAnswer"),
        "citationHead": answer.get("citationHead"),
        "aiCitationUrl": answer.get("aiCitationUrl"),
        "citationUrl": answer.get("citationUrl"),
        "department": context.get("department"),
        "departmentUrl": context.get("departmentUrl"),
        "searchQuery": context.get("searchQuery") or doc.get("search", {}).get("query"),
        "model": answer.get("model"),
        "inputTokens": tokens.get("input", answer.get("inputTokens", 0)),
        "outputTokens": tokens.get("output", answer.get("outputTokens", 0)),
    }
    for n in range(1, MAX_SENTENCES + 1):
        fields[f"sentence{n}"] = sentences[n - 1] if n <= len(sentences) else None
    return fields
