"""Batch lifecycle for users: create, status, list, results, cancel, and evaluation runs' summary,
compare and retry (api.md).

`totalItems` counts items, not file rows: a file of N questions run with `trials` T has
N × T items (each trial its own row, in its own chat), and every counter counts items.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bson import ObjectId

from lib.batch_files import BatchFiles
from lib.chat.screening import screen
from lib.direct_upload import DirectUploads
from lib.errors import AppError, BadRequest, Conflict, NotFound, ServiceUnavailable, TooManyRequests
from lib.evaluation import (
    MAX_TRIALS,
    EvaluationRequest,
    add_baseline,
    analyzers_offered,
    baseline_row_count_mismatch,
    parse_evaluation_fields,
    reference_columns,
    row_references,
    upload_analysis,
)
from lib.ingestion import ingest_state
from lib.models import Batch, BatchStatus, ItemStatus, User
from lib.planning import chat_key_for, counters, progress
from lib.queue import StepQueue
from lib.results import result_columns, result_row
from lib.retry import parse_retry_body, retry_rows
from lib.settings import AI_PROVIDERS, MAX_CONCURRENCY, SEARCH_PROVIDERS, Settings
from lib.spreadsheet import ParsedTable, parse_upload, scan_upload
from lib.store.batches import BatchStore
from lib.store.ids import new_chat_id
from lib.store.limits import LimitStore
from lib.store.objects import StoredObject
from lib.summary import COMPARE_COLUMNS, compare_rows, summarise
from lib.upload import UploadedForm

log = logging.getLogger("ai_answers.batches")

MAX_NAME_CHARS = 200
MAX_WARNINGS_KEPT = 100  # a batch keeps its first upload warnings, and their count
RATE_WINDOW_SECONDS = 60
ACTIVE_RETRY_SECONDS = 30
# Only ASCII digits: str.isdigit() also takes "²" (which int() refuses) and "٣" (which it reads as 3).
_WHOLE_NUMBER = re.compile(r"[0-9]{1,6}")


@dataclass(frozen=True)
class BatchRequest:
    name: str
    ai_provider: str
    search_provider: str
    lang: str
    apply_overrides: bool
    concurrency: int
    pipeline: str = "local"
    evaluation: EvaluationRequest = field(default_factory=EvaluationRequest)


def validate_form(form: UploadedForm, settings: Settings) -> BatchRequest:
    """The form's fields, checked; each error names its field."""
    fields = form.fields
    name = fields.get("batchName", "").strip()
    if not name:
        raise _field_error("batchName", "Give the batch a name.", "INVALID_BATCH_NAME")
    if len(name) > MAX_NAME_CHARS:
        raise _field_error("batchName", f"The batch name is longer than {MAX_NAME_CHARS} characters.", "INVALID_BATCH_NAME")
    ai = fields.get("aiProvider", settings.default_ai_provider).strip()
    search = fields.get("searchProvider", settings.default_search_provider).strip()
    for field_name, value, known, configured in (
        ("aiProvider", ai, AI_PROVIDERS, settings.configured_ai_providers()),
        ("searchProvider", search, SEARCH_PROVIDERS, settings.configured_search_providers()),
    ):
        if value not in known:
            raise _field_error(field_name, f"Unknown provider {value!r}; use one of {', '.join(known)}.", "UNKNOWN_PROVIDER")
        if value not in configured:
            raise _field_error(field_name, f"The provider {value!r} is not configured on this deployment.",
                               "PROVIDER_NOT_CONFIGURED")
    lang = fields.get("lang", "").strip()
    if lang not in ("en", "fr"):
        raise _field_error("lang", "lang must be 'en' or 'fr'.", "INVALID_LANG")
    overrides = fields.get("applyOverrides", "false").strip().lower()
    if overrides not in ("true", "false", "1", "0", "on", ""):
        raise _field_error("applyOverrides", "applyOverrides must be true or false.", "INVALID_FIELD")
    concurrency_text = fields.get("concurrency", "").strip()
    concurrency = settings.batch_concurrency
    if concurrency_text:
        if not _WHOLE_NUMBER.fullmatch(concurrency_text) or not 1 <= int(concurrency_text) <= MAX_CONCURRENCY:
            raise _field_error("concurrency", f"concurrency must be a whole number from 1 to {MAX_CONCURRENCY}.",
                               "INVALID_FIELD")
        concurrency = int(concurrency_text)
    pipeline = fields.get("pipeline", "").strip() or "local"
    if pipeline not in ("local", "ai-answers"):
        raise _field_error("pipeline", "pipeline must be 'local' or 'ai-answers'.", "INVALID_FIELD")
    if pipeline not in settings.configured_pipelines():
        raise _field_error("pipeline", "This deployment is not connected to an AI Answers deployment "
                           "(AI_ANSWERS_URL is not set).", "PIPELINE_UNAVAILABLE")
    return BatchRequest(name=name, ai_provider=ai, search_provider=search, lang=lang,
                        apply_overrides=overrides in ("true", "1", "on"), concurrency=concurrency, pipeline=pipeline,
                        evaluation=parse_evaluation_fields(fields))


def _field_error(field_name: str, message: str, code: str) -> BadRequest:
    return BadRequest(message, code=code, details={"field": field_name})


class BatchService:
    def __init__(self, store: BatchStore, limits: LimitStore, queue: StepQueue, settings: Settings,
                 now: Callable[[], datetime], *, files: BatchFiles | None = None,
                 uploads: DirectUploads | None = None):
        self.store = store
        self.limits = limits
        self.queue = queue
        self.settings = settings
        self.now = now
        self.files = files  # None: no object storage (no source kept, no links)
        self.uploads = uploads  # None: no direct uploads

    def check_limits(self, user: User) -> None:
        """429 with Retry-After when the user creates too fast or has too many batches running."""
        now = self.now()
        window_start = now.replace(second=0, microsecond=0)
        if self.limits.hit(user.id, "create", window_start, RATE_WINDOW_SECONDS) > self.settings.create_rate_per_minute:
            wait = RATE_WINDOW_SECONDS - (now - window_start).total_seconds()
            raise TooManyRequests(
                f"At most {self.settings.create_rate_per_minute} uploads a minute; try again shortly.",
                code="CREATE_RATE_LIMITED", retry_after=max(1, math.ceil(wait)),
            )
        self.check_active(user.id)

    def check_active(self, user_id: str) -> None:
        """429 with Retry-After when the user has as many batches queued or running as allowed."""
        if self.store.count_active_for_user(user_id) >= self.settings.max_active_batches:
            raise TooManyRequests(
                f"You already have {self.settings.max_active_batches} batches queued or running; "
                "wait for one to finish or cancel one.",
                code="TOO_MANY_ACTIVE_BATCHES", retry_after=ACTIVE_RETRY_SECONDS,
            )

    def create(self, user: User, form: UploadedForm) -> dict[str, Any]:
        """Validate the upload, write the batch and its items, publish step 1. All or nothing."""
        request = validate_form(form, self.settings)
        upload_id = form.fields.get("uploadId", "").strip()
        if upload_id and form.file_data is not None:
            raise _field_error("uploadId", "Send the file or an uploadId, not both.", "FILE_AND_UPLOAD_ID")
        evaluation = request.evaluation
        if upload_id:
            # The baseline's rows are read chunk by chunk by the ingestion steps (lib/ingestion.py).
            return self._create_from_upload(user, request, upload_id,
                                            self._baseline(user, evaluation.baseline_batch_id))
        if form.file_data is None:
            raise _field_error("file", "Attach the questions file in the 'file' field.", "MISSING_FILE")
        baseline = self._baseline(user, evaluation.baseline_batch_id)
        self.check_limits(user)
        table = parse_upload(form.file_data, form.file_name, max_rows=self.settings.max_batch_rows)
        if len(table.rows) * evaluation.trials > self.settings.max_batch_rows:
            raise _field_error("trials", f"{len(table.rows)} questions × {evaluation.trials} trials is more than "
                               f"the {self.settings.max_batch_rows} rows a batch may hold.", "TOO_MANY_ROWS")
        now = self.now()
        batch_id = ObjectId()
        warnings = list(table.warnings)
        items = _item_docs(batch_id, table, request.lang, trials=evaluation.trials, analyzers=evaluation.analyzers,
                           warnings=warnings)
        if baseline is not None:
            add_baseline(items, self.store.rows_projected(ObjectId(baseline.id), "baseline"),
                         evaluation.analyzers, request.lang)
        # Kept first: storage away is a 503 with nothing written.
        source = self.files.keep_source(user.id, batch_id, form.file_data, table.file_type, form.file_name) \
            if self.files is not None else None
        try:
            self.store.insert_batch({**_batch_doc(batch_id, user, request, table, form, now),
                                     "blockedItems": sum(d["status"] == ItemStatus.BLOCKED.value for d in items),
                                     "source": source, **stored_warnings(warnings)})
            self.store.insert_items(items)
            self.store.mark_queued(batch_id, now)
            self.queue.publish_step(str(batch_id), 0, dedup_id=f"{batch_id}:0")
        except BaseException:
            log.warning("batch=%s create failed; removing what was written", batch_id)
            self._remove(batch_id)
            raise
        return {"batchId": str(batch_id), "status": BatchStatus.QUEUED.value, "totalItems": len(items),
                "warnings": warnings}

    def _baseline(self, user: User, baseline_id: str | None) -> Batch | None:
        """The caller's own final batch named as the baseline (read, never written)."""
        if baseline_id is None:
            return None
        baseline = self.store.get(baseline_id)
        if baseline is None or baseline.status == BatchStatus.CREATING or baseline.uploader_user_id != user.id:
            raise NotFound("No such baseline batch among yours.", code="BASELINE_NOT_FOUND",
                           details={"field": "baselineBatchId"})
        if not baseline.status.is_final:
            raise Conflict("The baseline batch is still running; compare with it once it has finished.",
                           code="BASELINE_NOT_FINAL", details={"field": "baselineBatchId"})
        return baseline

    def _create_from_upload(self, user: User, request: BatchRequest, upload_id: str,
                            baseline: Batch | None) -> dict[str, Any]:
        """A batch from a direct upload: checked whole here, its rows written by steps (lib/ingestion.py).

        With a baseline, only the two files' question counts are compared here; the steps
        compare each chunk's questions with the baseline's rows at the same places.
        """
        if self.uploads is None or self.files is None:
            raise _field_error("uploadId", "This deployment has no object storage: upload the file in 'file'.",
                               "DIRECT_UPLOADS_UNAVAILABLE")
        self.check_limits(user)
        taken = self.uploads.take(user, upload_id)
        try:
            layout = scan_upload(taken.data, taken.record.file_name, max_rows=self.settings.max_batch_rows_direct)
            if layout.row_count * request.evaluation.trials > self.settings.max_batch_rows_direct:
                raise _field_error("trials", f"{layout.row_count} questions × {request.evaluation.trials} trials is "
                                   f"more than the {self.settings.max_batch_rows_direct} rows a batch may hold.",
                                   "TOO_MANY_ROWS")
            mismatch = baseline_row_count_mismatch(layout.row_count, baseline.total_items, baseline.trials) \
                if baseline is not None else None
            if mismatch is not None:
                raise mismatch
        except AppError as exc:
            if exc.status < 500:
                self._discard_upload(taken.record)  # a rejected upload leaves nothing
            raise
        now = self.now()
        batch_id = ObjectId()
        upload, source_hash = taken.record, taken.sha256
        source = self.files.adopt_upload(upload, batch_id, layout.file_type, len(taken.data))
        del taken  # the bytes: the steps read the source again
        try:
            self.store.insert_batch({
                **_batch_doc(batch_id, user, request, layout.shell(), UploadedForm(file_name=source["fileName"]), now),
                "status": BatchStatus.INGESTING.value, "totalItems": layout.row_count * request.evaluation.trials,
                "fileHash": source_hash,
                "source": source, "ingest": ingest_state(layout), "ingestedItems": 0, "blockedItems": 0,
                **stored_warnings(layout.warnings),
            })
            self.queue.publish_step(str(batch_id), 0, dedup_id=f"{batch_id}:0")
        except BaseException:
            log.warning("batch=%s create failed; removing what was written", batch_id)
            self._remove(batch_id)
            raise
        self._discard_upload(upload)
        return {"batchId": str(batch_id), "status": BatchStatus.INGESTING.value,
                "totalItems": layout.row_count * request.evaluation.trials, "warnings": layout.warnings}

    def _discard_upload(self, record: StoredObject) -> None:
        try:
            self.files.discard(record)  # type: ignore[union-attr]
        except ServiceUnavailable:
            log.info("upload %s stays until its expiry day", record.upload_id)

    def _remove(self, batch_id: ObjectId) -> None:
        """Remove what a create wrote: the batch, its items, its files."""
        self.store.delete_batch(batch_id)
        if self.files is not None:
            try:
                self.files.forget_batch(batch_id)
            except ServiceUnavailable:
                log.warning("batch=%s its files stay in storage until their retention day", batch_id)

    def upload_url(self, user: User, body: dict[str, Any]) -> dict[str, Any]:
        """A presigned form post straight to storage, for a file past the request cap (then create with uploadId)."""
        if self.uploads is None:
            raise BadRequest("This deployment has no object storage: upload files through create.",
                             code="DIRECT_UPLOADS_UNAVAILABLE")
        now = self.now()
        window_start = now.replace(second=0, microsecond=0)
        if self.limits.hit(user.id, "upload-url", window_start, RATE_WINDOW_SECONDS) > \
                2 * self.settings.create_rate_per_minute:
            raise TooManyRequests("Too many upload links asked for in a minute; try again shortly.",
                                  code="UPLOAD_RATE_LIMITED",
                                  retry_after=max(1, math.ceil(RATE_WINDOW_SECONDS - (now - window_start).total_seconds())))
        return self.uploads.presign(user, body)

    def source(self, user: User, batch_id: str | None) -> dict[str, Any]:
        """A short-lived link to the batch's file as it was uploaded (the owner's, or any for an admin)."""
        batch = self.owned(user, batch_id)
        if self.files is None:
            raise NotFound("This deployment keeps no uploaded files.", code="SOURCE_NOT_KEPT")
        return self.files.source_link(batch)

    def results_link(self, user: User, batch_id: str | None, fmt: str) -> dict[str, Any]:
        """A short-lived link to the results in object storage (written once the batch is final)."""
        if self.files is None:
            raise BadRequest("This deployment has no object storage: download the results directly.",
                             code="DELIVERY_URL_UNAVAILABLE", details={"field": "delivery"})
        batch, columns, rows = self.results(user, batch_id)
        return self.files.export_link(batch, fmt, columns, rows)

    def owned(self, user: User, batch_id: str | None) -> Batch:
        """The batch if the user may see it; 404 otherwise (never revealing which)."""
        if not batch_id:
            raise BadRequest("Give the batchId.", code="MISSING_BATCH_ID", details={"field": "batchId"})
        if not isinstance(batch_id, str) or not ObjectId.is_valid(batch_id):
            raise BadRequest("batchId is not a valid id.", code="INVALID_BATCH_ID", details={"field": "batchId"})
        batch = self.store.get(batch_id)
        if batch is None or batch.status == BatchStatus.CREATING or (
            batch.uploader_user_id != user.id and not user.is_admin
        ):
            raise NotFound("No such batch.", code="BATCH_NOT_FOUND")
        return batch

    def status(self, user: User, batch_id: str | None) -> dict[str, Any]:
        """The batch's summary, with its upload warnings (the first ones, and how many; not in `list`)."""
        batch = self.owned(user, batch_id)
        return {**self.summary(batch), "warnings": batch.warnings,
                "warningCount": max(batch.warning_count, len(batch.warnings))}

    def options(self) -> dict[str, Any]:
        """What an upload on this deployment may choose: the configured providers, defaults, limits."""
        s = self.settings
        return {
            "aiProviders": list(s.configured_ai_providers()),
            "searchProviders": list(s.configured_search_providers()),
            "pipelines": list(s.configured_pipelines()),  # "ai-answers" only with AI_ANSWERS_URL
            "defaults": {"aiProvider": s.default_ai_provider, "searchProvider": s.default_search_provider,
                         "concurrency": s.batch_concurrency},
            "limits": {"maxConcurrency": MAX_CONCURRENCY, "maxBatchRows": s.max_batch_rows,
                       "maxUploadBytes": s.max_body_bytes, "maxNameChars": MAX_NAME_CHARS,
                       "maxUploadBytesDirect": s.max_upload_bytes_direct if self.uploads else 0,
                       "maxBatchRowsDirect": s.max_batch_rows_direct if self.uploads else 0,
                       "exportLinkRows": s.export_link_rows},
            # Object storage: files past maxUploadBytes go through upload-url, and results past
            # exportLinkRows come by link (results&delivery=url).
            "directUploads": self.uploads is not None,
            "exportLinks": self.files is not None,
            # Evaluation runs: what each analyzer is, how many trials, and what model calls cost
            # (USD per million tokens; a model not listed is counted as 0 and flagged in the summary).
            "analyzers": analyzers_offered(),
            "maxTrials": MAX_TRIALS,
            "prices": s.price_table().to_doc(),
        }

    def list(self, user: User) -> list[dict[str, Any]]:
        return [self.summary(b) for b in self.store.list_for_user(user.id)]

    def summary(self, batch: Batch) -> dict[str, Any]:
        shown = counters(batch.total_items, processed=batch.processed_items, blocked=batch.blocked_items,
                         failed=batch.failed_items, cancelled=batch.cancelled_items)
        percent, eta = progress(batch.total_items, sum(shown.values()), batch.started_at, self.now(), batch.status)
        return {
            "batchId": batch.id,
            "name": batch.name,
            "status": batch.status.value,
            "totalItems": batch.total_items,
            "processedItems": shown["processed"],
            "blockedItems": shown["blocked"],
            "failedItems": shown["failed"],
            "cancelledItems": shown["cancelled"],
            "createdAt": batch.created_at,
            "updatedAt": batch.updated_at,
            "startedAt": batch.started_at,
            "completedAt": batch.completed_at,
            "aiProvider": batch.ai_provider,
            "searchProvider": batch.search_provider,
            "pageLanguage": batch.page_language,
            "applyOverrides": batch.apply_overrides,
            "fileName": batch.file_name,
            "concurrency": batch.concurrency,
            "pipeline": batch.pipeline,
            "percentComplete": percent,
            "etaSeconds": eta,
            "ingestedItems": batch.ingested_items if batch.ingest is not None else batch.total_items,
            "hasSource": batch.source is not None and batch.source_deleted_at is None,
            "trials": batch.trials,
            "analyzers": list(batch.analyzers),
            "baselineBatchId": batch.baseline_batch_id,
            "budgetUsd": batch.budget_usd,
            "inputTokens": batch.input_tokens,
            "outputTokens": batch.output_tokens,
            "estimatedCostUsd": round(batch.estimated_cost_usd, 6),
            "stopReason": batch.stop_reason,
            "runs": _runs_shown(batch),
            "deleting": batch.deleting_at is not None,  # its rows are going (lib/deletion.py); it will be gone
        }

    def cancel(self, user: User, batch_id: str | None) -> dict[str, Any]:
        """Cancel an active batch at once, whatever its size: it becomes `cancelling`.

        No row starts after this returns; rows in flight finish and are recorded; the
        batch's steps cancel its pending rows and make it `cancelled` once none is in
        flight. A cancel that took effect is never answered with an error: should the
        queue be away, the sweep publishes the step instead.
        """
        batch = self.owned(user, batch_id)
        oid = ObjectId(batch.id)
        if not batch.status.is_active or not self.store.cancel(oid, self.now()):
            current = self.store.status_of(oid) or batch.status
            if current == BatchStatus.CANCELLING:
                return {"batchId": batch.id, "status": current.value}
            raise Conflict(f"The batch is already {current}.", code="BATCH_FINISHED")
        try:
            self.queue.publish_step(batch.id, 0, dedup_id=f"{batch.id}:cancel")
        except ServiceUnavailable:
            log.warning("batch=%s cancelling; its step could not be queued (the sweep will)", batch.id)
        return {"batchId": batch.id, "status": BatchStatus.CANCELLING.value}

    # --- evaluation runs ------------------------------------------------------------

    def evaluation_summary(self, user: User, batch_id: str | None) -> dict[str, Any]:
        """The batch's summary (lib/summary.py), read from its items in one pass; kept once it is final."""
        batch = self.owned(user, batch_id)
        if batch.status.is_final and batch.summary_cache is not None:
            return batch.summary_cache
        summary = summarise(batch, self.store.rows_projected(ObjectId(batch.id), "summary"))
        if batch.status.is_final:
            self.store.cache_summary(ObjectId(batch.id), summary, batch.completed_at)
        return summary

    def compare(self, user: User, batch_id: str | None, baseline_id: str | None
                ) -> tuple[Batch, list[str], list[dict[str, Any]]]:
        """The batch's rows beside the baseline's (both the caller's, or any for an admin), by rowNumber."""
        batch = self.owned(user, batch_id)
        if not baseline_id:
            baseline_id = batch.baseline_batch_id
        if not baseline_id:
            raise BadRequest("Give the baselineBatchId to compare with.", code="MISSING_BASELINE_ID",
                             details={"field": "baselineBatchId"})
        if not isinstance(baseline_id, str) or not ObjectId.is_valid(baseline_id):
            raise BadRequest("baselineBatchId is not a valid id.", code="INVALID_BASELINE_ID",
                             details={"field": "baselineBatchId"})
        try:
            baseline = self.owned(user, baseline_id)
        except NotFound:
            raise NotFound("No such baseline batch.", code="BASELINE_NOT_FOUND",
                           details={"field": "baselineBatchId"}) from None
        rows = compare_rows(batch, self.store.rows_projected(ObjectId(batch.id), "compare"),
                            self.store.rows_projected(ObjectId(baseline.id), "compare"), baseline.id)
        return batch, list(COMPARE_COLUMNS), rows

    def retry(self, user: User, body: dict[str, Any]) -> dict[str, Any]:
        """Run a final batch's failed (or cancelled) rows again, in place (lib/retry.py). Owner or admin.

        The batch becomes active again: its owner's limit of active batches applies, as for a create.
        """
        batch_id = body.get("batchId")
        if batch_id is not None and not isinstance(batch_id, str):
            raise BadRequest("batchId must be a string.", code="INVALID_BATCH_ID", details={"field": "batchId"})
        statuses, budget = parse_retry_body(body)
        batch = self.owned(user, batch_id)
        return retry_rows(self.store, self.queue, batch, statuses, budget, self.now,
                          check_active=lambda: self.check_active(batch.uploader_user_id))

    def results(self, user: User, batch_id: str | None) -> tuple[Batch, list[str], Iterator[dict[str, Any]]]:
        """The batch, the result columns, and its rows in input order (streamed)."""
        batch = self.owned(user, batch_id)
        columns = result_columns(batch)
        return batch, columns, (result_row(doc, batch) for doc in self.store.results(ObjectId(batch.id)))


def _batch_doc(batch_id: ObjectId, user: User, request: BatchRequest, table: ParsedTable, form: UploadedForm,
               now: datetime) -> dict[str, Any]:
    return {
        "_id": batch_id,
        "name": request.name,
        "type": "question",
        "status": BatchStatus.CREATING.value,
        "uploaderUserId": user.id,
        "aiProvider": request.ai_provider,
        "searchProvider": request.search_provider,
        "pageLanguage": request.lang,
        "applyOverrides": request.apply_overrides,
        "concurrency": request.concurrency,
        "pipeline": request.pipeline,
        "trials": request.evaluation.trials,
        "analyzers": list(request.evaluation.analyzers),
        "baselineBatchId": request.evaluation.baseline_batch_id,
        "budgetUsd": request.evaluation.budget_usd,
        "inputTokens": 0,
        "outputTokens": 0,
        "estimatedCostUsd": 0.0,
        "totalItems": len(table.rows) * request.evaluation.trials,
        "processedItems": 0,
        "failedItems": 0,
        "cancelledItems": 0,
        "interactions": [],
        "createdAt": now,
        "updatedAt": now,
        "completedAt": None,  # startedAt is set by the first step ($min on a missing field)
        "stepSeq": 0,
        "leaseOwner": None,
        "leaseUntil": None,
        "heartbeatAt": None,
        "fileName": (form.file_name or "")[:255],
        "fileType": table.file_type,
        "csvDelimiter": table.delimiter,
        "fileHash": hashlib.sha256(form.file_data or b"").hexdigest(),
        "columns": table.columns,
        "questionColumn": table.question_column,
        "chatColumn": table.chat_column,
        "urlColumn": table.url_column,
        "warnings": table.warnings[:MAX_WARNINGS_KEPT],
        "warningCount": len(table.warnings),
        "lastError": None,
    }


def _item_docs(batch_id: ObjectId, table: ParsedTable, lang: str = "en", *, trials: int = 1,
               analyzers: tuple[str, ...] | list[str] = (), warnings: list[dict[str, Any]] | None = None
               ) -> list[dict[str, Any]]:
    """One document per row and trial. Rows refused by the rule-based checks are `blocked` already (masked text only).

    A row's trials are items of their own, next to each other (`rowIndex` = row × trials +
    trial − 1, so the items keep input order, then trial), each in a conversation of its
    own: trial 2 never shares history with trial 1. The file's evaluation columns become
    the row's `references`; a blocked row gets the rules-only analyzers here.
    """
    docs = []
    # Each conversation gets a chat id of its own, issued here by the server and nobody
    # can predict; `turn` is the row's place in its conversation.
    chats: dict[str, tuple[str, int]] = {}
    earlier: dict[str, list[str]] = {}
    ref_columns = reference_columns(table.columns)
    for index, row in enumerate(table.rows):
        chat_key = chat_key_for(row.chat_label, index)
        screened = screen(row.question, lang, earlier.setdefault(chat_key, []))
        earlier[chat_key].append(screened.text)
        original = dict(row.original)
        original[table.question_column] = screened.text  # a refused question is kept masked only
        blocked = screened.blocked_by is not None
        references, warning = row_references(row.original, ref_columns) if ref_columns else ({}, None)
        if warning is not None and warnings is not None:
            warnings.append({"code": "INVALID_EXPECTED_OUTCOME", "message": f"Row {row.row_number}: {warning}",
                             "rowNumber": row.row_number})
        for trial in range(1, trials + 1):
            key = trial_chat_key(chat_key, trial)
            chat_id, turn = chats.get(key, (new_chat_id(), -1))
            chats[key] = (chat_id, turn + 1)
            doc = {
                "_id": ObjectId(),
                "batchId": batch_id,
                "rowIndex": index * trials + trial - 1,
                "trial": trial,
                "rowNumber": row.row_number,
                "chatKey": key,
                "chatId": chat_id,
                "turn": turn + 1,
                "chatLabel": row.chat_label,
                "question": screened.text,
                "referringUrl": row.referring_url,
                "original": original,
                "references": references,
                "status": ItemStatus.BLOCKED.value if blocked else ItemStatus.PENDING.value,
                "blockedBy": screened.blocked_by,
                "fallbackUrl": screened.fallback_url,
                "attempts": 0,
                "interactionId": ObjectId(),  # fixed now, so a re-run writes the same interaction
                "leaseUntil": None,
                "notBefore": None,
                "claimId": None,
            }
            if blocked:
                doc["analysis"] = upload_analysis(doc, lang, analyzers)
            docs.append(doc)
    return docs


def trial_chat_key(chat_key: str, trial: int) -> str:
    """The conversation of one trial: the row's own for trial 1, a separate one for each later trial."""
    return chat_key if trial == 1 else f"{chat_key}#trial{trial}"


def stored_warnings(warnings: list[dict[str, Any]]) -> dict[str, Any]:
    """What the batch keeps of its upload warnings: the first ones and how many there were."""
    return {"warnings": warnings[:MAX_WARNINGS_KEPT], "warningCount": len(warnings)}


def _runs_shown(batch: Batch) -> list[dict[str, Any]]:
    """The batch's runs (a first run, then one per retry); the last one ends when the batch does."""
    if not batch.runs:
        return [{"run": 1, "startedAt": batch.started_at, "completedAt": batch.completed_at, "statuses": None,
                 "rows": batch.total_items}]
    runs = [dict(r) for r in batch.runs]
    if runs[-1].get("completedAt") is None and batch.status.is_final:
        runs[-1]["completedAt"] = batch.completed_at
    return runs
