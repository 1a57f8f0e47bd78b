"""Result rows as users read them (JSON, CSV, XLSX): the original cells, then the row's outcome (api.md)."""

from __future__ import annotations

from typing import Any

from lib.models import Batch, ItemStatus

RESULT_COLUMNS = (
    "chatId", "status", "redactedQuestion", "answer", "citationUrl", "error", "interactionId", "responseTimeMs",
)


def result_columns(batch: Batch) -> list[str]:
    """The original columns, then the result columns (renamed where the file has the name).

    A file's own `chatId` column is the label, the same value as the result's, so it is
    not repeated.
    """
    return list(batch.columns) + [name for name, _ in _result_fields(batch)]


def _result_fields(batch: Batch) -> list[tuple[str, str]]:
    """(column name in the output, result field) pairs."""
    fields = []
    for field_name in RESULT_COLUMNS:
        if field_name not in batch.columns:
            fields.append((field_name, field_name))
        elif not (field_name == "chatId" and batch.chat_column == "chatId"):
            fields.append((f"{field_name} (result)", field_name))
    return fields


def result_row(doc: dict[str, Any], batch: Batch) -> dict[str, Any]:
    """One output row: the original cells, then the row's outcome."""
    error = doc.get("error")
    status = doc.get("status")
    succeeded = status == ItemStatus.SUCCEEDED.value
    values = {
        "chatId": doc.get("chatLabel") or "",
        "status": status,
        "redactedQuestion": doc.get("question", ""),
        "answer": doc.get("answer") if succeeded else None,
        "citationUrl": doc.get("citationUrl") if succeeded else None,
        "error": f"{error['code']}: {error['message']}" if error and not succeeded else None,
        "interactionId": str(doc["interactionId"]) if succeeded else None,
        "responseTimeMs": doc.get("responseTimeMs"),
    }
    original = doc.get("original", {})
    row = {column: original.get(column, "") for column in batch.columns}
    row.update({name: values[field_name] for name, field_name in _result_fields(batch)})
    return row
