"""Result rows as users read them (JSON, CSV, XLSX): the original cells, then the row's outcome (api.md).

In order: `rowNumber`; the file's own columns exactly as uploaded (the question cell
masked); `chatId` (the conversation's chat, when the file has no `chatId` column of its
own); `trial`; the outcome (status, why it was blocked, the question as kept and in English,
the answer and its fields, tokens, time, error); then the batch's analyzer columns
(`refusal.detected`, `similarity.label`, ...: lib/analyzers `columns_for`); then the
empty expert columns, for a person to fill in (ai-answers.md §4). A list cell (ideas
found, changed facts) is joined with " | " in CSV/XLSX; JSON keeps the list. A result column whose name the file already
uses gets ` (result)` appended.
"""

from __future__ import annotations

import re
from typing import Any

from lib.analyzers import columns_for
from lib.evaluation import flat
from lib.models import Batch, ItemStatus

OUTCOME_COLUMNS = (
    "chatId", "trial", "status", "blockedBy", "redactedQuestion", "questionLanguage", "englishQuestion", "answerType",
    "answer", "englishAnswer", "sentence1", "sentence2", "sentence3", "sentence4", "citationHead", "aiCitationUrl",
    "citationUrl", "department", "departmentUrl", "searchQuery", "model", "inputTokens", "outputTokens",
    "responseTimeMs", "error", "interactionId",
)
EXPERT_COLUMNS = (
    "expert.totalScore",
    *(f"expert.sentence{n}{part}" for n in range(1, 5) for part in ("Score", "Explanation")),
    "expert.citationScore", "expert.citationExplanation", "expert.answerImprovement", "expert.citationUrl",
    "expert.notes",
)
ROW_NUMBER = "rowNumber"
_NOISE = re.compile(r"[\s_\-]+")


def result_columns(batch: Batch) -> list[str]:
    """Every column of the batch's results, in order."""
    return [_row_number(batch), *batch.columns, *(name for name, _ in _result_fields(batch)),
            *(name for name, _ in _analysis_fields(batch)), *EXPERT_COLUMNS]


def _row_number(batch: Batch) -> str:
    return f"{ROW_NUMBER} (result)" if ROW_NUMBER in batch.columns else ROW_NUMBER


def _result_fields(batch: Batch) -> list[tuple[str, str]]:
    """(column name in the output, result field) pairs."""
    fields = []
    for field_name in OUTCOME_COLUMNS:
        if field_name == "chatId" and batch.chat_column is not None:
            continue  # the file's own chatId column is the conversation
        if field_name == "redactedQuestion" and _plain(batch.question_column) == "REDACTEDQUESTION":
            continue  # the file's question column holds the same masked text
        fields.append((f"{field_name} (result)" if field_name in batch.columns else field_name, field_name))
    return fields


def _analysis_fields(batch: Batch) -> list[tuple[str, str]]:
    """(column name in the output, analyzer column) pairs of the batch's analyzers."""
    return [(f"{c} (result)" if c in batch.columns else c, c) for c in columns_for(tuple(batch.analyzers))]


def _plain(name: str | None) -> str:
    return _NOISE.sub("", name or "").upper()


def result_row(doc: dict[str, Any], batch: Batch) -> dict[str, Any]:
    """One output row: the original cells, then the row's outcome."""
    error = doc.get("error")
    status = doc.get("status")
    answered = status == ItemStatus.SUCCEEDED.value
    answer = dict(doc.get("result") or {}) if answered else {}
    if answered:  # rows answered before the answer fields were kept have the short form only
        answer.setdefault("answer", doc.get("answer"))
        answer.setdefault("citationUrl", doc.get("citationUrl"))
        answer.setdefault("model", doc.get("model"))
    tokens = doc.get("tokens") or {}
    values: dict[str, Any] = {
        **{name: answer.get(name) for name in OUTCOME_COLUMNS},
        "chatId": doc.get("chatId") or doc.get("chatLabel") or "",
        "trial": doc.get("trial") or 1,
        "status": status,
        "blockedBy": doc.get("blockedBy"),
        "redactedQuestion": doc.get("question", ""),
        "inputTokens": tokens.get("input") if tokens else None,
        "outputTokens": tokens.get("output") if tokens else None,
        "responseTimeMs": doc.get("responseTimeMs"),
        "error": f"{error['code']}: {error['message']}" if error and (
            status == ItemStatus.FAILED.value
            or (status == ItemStatus.CANCELLED.value and error.get("code") == "BUDGET_EXCEEDED")) else None,
        "interactionId": str(doc["interactionId"]) if answered else None,
    }
    original = doc.get("original", {})
    row: dict[str, Any] = {_row_number(batch): doc.get("rowNumber")}
    row.update({column: original.get(column, "") for column in batch.columns})
    row.update({name: values[field_name] for name, field_name in _result_fields(batch)})
    analysis = flat(doc.get("analysis"))
    row.update({name: analysis.get(column) for name, column in _analysis_fields(batch)})
    row.update(dict.fromkeys(EXPERT_COLUMNS))
    return row


def batch_details(batch: Batch) -> list[tuple[str, object]]:
    """The batch's details, as the second sheet of an Excel export shows them."""
    return [
        ("Batch id", batch.id), ("Name", batch.name), ("Status", batch.status.value),
        ("AI provider", batch.ai_provider), ("Search provider", batch.search_provider),
        ("Page language", batch.page_language), ("File", batch.file_name), ("Created", batch.created_at),
        ("Started", batch.started_at), ("Completed", batch.completed_at), ("Rows", batch.total_items),
        ("Answered", batch.processed_items), ("Blocked", batch.blocked_items), ("Failed", batch.failed_items),
        ("Cancelled", batch.cancelled_items), ("Trials", batch.trials),
        ("Analyzers", ", ".join(batch.analyzers)), ("Baseline batch", batch.baseline_batch_id),
        ("Input tokens", batch.input_tokens), ("Output tokens", batch.output_tokens),
        ("Estimated cost (USD)", round(batch.estimated_cost_usd, 6)), ("Budget (USD)", batch.budget_usd),
        ("Stopped because", batch.stop_reason),
    ]
