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
    chat_label: str | None = Field(alias="chatLabel", default=None)
    # The conversation's chat, issued by the server at upload (unguessable), and this row's
    # place in it (0: the first turn).
    chat_id: str | None = Field(alias="chatId", default=None)
    turn: int | None = None
    question: str
    referring_url: str | None = Field(alias="referringUrl", default=None)
    status: ItemStatus
    attempts: int = 0
    interaction_id: str = Field(alias="interactionId")
    lease_until: datetime | None = Field(alias="leaseUntil", default=None)
    not_before: datetime | None = Field(alias="notBefore", default=None)
    claim_id: str | None = Field(alias="claimId", default=None)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> BatchItem:
        return cls.model_validate(
            {**doc, "_id": str(doc["_id"]), "batchId": str(doc["batchId"]), "interactionId": str(doc["interactionId"])}
        )
