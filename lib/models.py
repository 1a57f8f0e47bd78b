"""Typed records of the domain: users, batches, batch items, and their statuses."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Role(StrEnum):
    ADMIN = "admin"
    PARTNER = "partner"
    USER = "user"


class BatchStatus(StrEnum):
    CREATING = "creating"  # being written by create; invisible to users, swept if abandoned
    INGESTING = "ingesting"  # a big upload's rows are being written by steps (lib/ingestion.py); visible
    QUEUED = "queued"
    PROCESSING = "processing"
    PROCESSED = "processed"
    COMPLETED_WITH_ERRORS = "completed_with_errors"
    CANCELLING = "cancelling"  # no row starts; rows in flight finish, pending rows are being cancelled
    CANCELLED = "cancelled"
    FAILED = "failed"

    @property
    def is_active(self) -> bool:
        """Rows may still start (a cancel is taken)."""
        return self in (BatchStatus.INGESTING, BatchStatus.QUEUED, BatchStatus.PROCESSING)

    @property
    def is_running(self) -> bool:
        """Not final yet: a step still has work to do (write rows, run rows, or settle a cancel)."""
        return self in (BatchStatus.INGESTING, BatchStatus.QUEUED, BatchStatus.PROCESSING, BatchStatus.CANCELLING)

    @property
    def is_final(self) -> bool:
        return self in (
            BatchStatus.PROCESSED,
            BatchStatus.COMPLETED_WITH_ERRORS,
            BatchStatus.CANCELLED,
            BatchStatus.FAILED,
        )


class ItemStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"  # answered
    BLOCKED = "blocked"  # refused by the pipeline by design: a result, never retried
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in (ItemStatus.SUCCEEDED, ItemStatus.BLOCKED, ItemStatus.FAILED, ItemStatus.CANCELLED)


class User(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    email: str
    role: Role
    active: bool

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN


class PromptOverride(BaseModel):
    model_config = ConfigDict(frozen=True)

    key: str
    text: str


class ItemError(BaseModel):
    code: str
    message: str
    retryable: bool = False


class Batch(BaseModel):
    """A batch document (`batches`), as the service reads it."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    id: str = Field(alias="_id")
    name: str
    type: str = "question"
    status: BatchStatus
    uploader_user_id: str = Field(alias="uploaderUserId")
    ai_provider: str = Field(alias="aiProvider")
    search_provider: str = Field(alias="searchProvider")
    page_language: str = Field(alias="pageLanguage")
    apply_overrides: bool = Field(alias="applyOverrides", default=False)
    total_items: int = Field(alias="totalItems")
    processed_items: int = Field(alias="processedItems", default=0)
    failed_items: int = Field(alias="failedItems", default=0)
    cancelled_items: int = Field(alias="cancelledItems", default=0)
    blocked_items: int = Field(alias="blockedItems", default=0)
    created_at: datetime = Field(alias="createdAt")
    updated_at: datetime = Field(alias="updatedAt")
    started_at: datetime | None = Field(alias="startedAt", default=None)
    completed_at: datetime | None = Field(alias="completedAt", default=None)
    cancelled_at: datetime | None = Field(alias="cancelledAt", default=None)
    columns: list[str] = Field(default_factory=list)
    question_column: str | None = Field(alias="questionColumn", default=None)
    chat_column: str | None = Field(alias="chatColumn", default=None)
    file_name: str | None = Field(alias="fileName", default=None)
    csv_delimiter: str | None = Field(alias="csvDelimiter", default=None)  # results come back with the upload's
    concurrency: int = 4
    pipeline: str = "local"  # lib.pipelines: "local", or "ai-answers" (a deployed AI Answers)
    step_seq: int = Field(alias="stepSeq", default=0)
    lease_until: datetime | None = Field(alias="leaseUntil", default=None)
    heartbeat_at: datetime | None = Field(alias="heartbeatAt", default=None)
    last_error: str | None = Field(alias="lastError", default=None)
    # Object storage (lib/batch_files.py): the uploaded file, the exports written for links
    # ({format: {"key", "bytes", "createdAt"}}), and when retention deleted them.
    source: dict[str, Any] | None = None
    exports: dict[str, dict[str, Any]] = Field(default_factory=dict)
    source_deleted_at: datetime | None = Field(alias="sourceDeletedAt", default=None)
    exports_deleted_at: datetime | None = Field(alias="exportsDeletedAt", default=None)
    # A chunked ingestion in progress (lib/ingestion.py): the file's layout and the next row index.
    ingest: dict[str, Any] | None = None
    ingested_items: int = Field(alias="ingestedItems", default=0)
    # Evaluation runs (lib/evaluation.py): each question `trials` times, the analyzers run on each
    # row, the batch whose answers are the references, and the cost so far against a budget.
    trials: int = 1
    analyzers: list[str] = Field(default_factory=list)
    baseline_batch_id: str | None = Field(alias="baselineBatchId", default=None)
    budget_usd: float | None = Field(alias="budgetUsd", default=None)
    input_tokens: int = Field(alias="inputTokens", default=0)
    output_tokens: int = Field(alias="outputTokens", default=0)
    estimated_cost_usd: float = Field(alias="estimatedCostUsd", default=0.0)
    stop_reason: str | None = Field(alias="stopReason", default=None)  # e.g. BUDGET_EXCEEDED
    # Retries in place (lib/retry.py): one entry per run, {run, startedAt, completedAt, statuses, rows}.
    runs: list[dict[str, Any]] = Field(default_factory=list)
    summary_cache: dict[str, Any] | None = Field(alias="summaryCache", default=None)
    # Upload warnings (blank rows, expected outcomes that are neither block nor answer...): the first
    # ones kept (lib/batches.py MAX_WARNINGS_KEPT), and how many there were in all.
    warnings: list[dict[str, Any]] = Field(default_factory=list)
    warning_count: int = Field(alias="warningCount", default=0)
    deleting_at: datetime | None = Field(alias="deletingAt", default=None)  # a deletion under way (lib/deletion.py)

    @property
    def budget_reached(self) -> bool:
        return self.budget_usd is not None and self.estimated_cost_usd >= self.budget_usd

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Batch:
        return cls.model_validate({**doc, "_id": str(doc["_id"])})


class BatchItem(BaseModel):
    """A batch item document (`batch_items`): one input row and its outcome."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    id: str = Field(alias="_id")
    batch_id: str = Field(alias="batchId")
    row_index: int = Field(alias="rowIndex")
    chat_key: str = Field(alias="chatKey")
    trial: int = 1  # 1..trials: each trial of a question is its own row, in its own chat
    chat_label: str | None = Field(alias="chatLabel", default=None)
    # The conversation's chat, issued by the server at upload (unguessable), and this row's
    # place in it (0: the first turn).
    chat_id: str | None = Field(alias="chatId", default=None)
    turn: int | None = None
    question: str
    referring_url: str | None = Field(alias="referringUrl", default=None)
    status: ItemStatus
    attempts: int = 0
    attempts_before: int = Field(alias="attemptsBefore", default=0)  # attempts of earlier runs (a retry)
    interaction_id: str = Field(alias="interactionId")
    lease_until: datetime | None = Field(alias="leaseUntil", default=None)
    not_before: datetime | None = Field(alias="notBefore", default=None)
    claim_id: str | None = Field(alias="claimId", default=None)
    # A request sent upstream by a pipeline that is not idempotent may run until then (lib/pipelines/attempts.py).
    request_open_until: datetime | None = Field(alias="requestOpenUntil", default=None)
    # What the analyzers compare the row with (lib/evaluation.py), read at claim time, not with the plan.
    references: dict[str, Any] | None = None

    @property
    def open_until(self) -> datetime | None:
        """Until when a request this row sent may still be running: its recorded deadline, else its claim's lease."""
        return self.request_open_until or self.lease_until

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> BatchItem:
        return cls.model_validate(
            {**doc, "_id": str(doc["_id"]), "batchId": str(doc["batchId"]), "interactionId": str(doc["interactionId"])}
        )
