"""A batch's files in object storage: its source (the upload as it was) and its exports.

Every object is recorded (`lib.store.objects`) before it is written, with the day it
expires, so none can be forgotten in storage: `expire` (run by the sweep) deletes what
is past `RETENTION_DAYS` and notes on the batch that it is gone (`sourceDeletedAt`,
`exportsDeletedAt`). Links are presigned GETs that expire within minutes.

An export is written once per final batch and format and re-used after; a batch that
is still running gets a fresh export at each request (its rows are still changing).

A direct upload becomes a source under its create's claim (`lib.direct_upload`): the
claim is bound to the batch before the copy, given back if the copy fails or the batch
is removed (`forget_batch`), and a bound upload's record outlives its object, so that a
second create with the same upload is refused.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime, timedelta
from typing import Any

from bson import ObjectId

from lib.errors import BadRequest, Conflict, Gone, NotFound, ServiceUnavailable
from lib.export import content_disposition, iter_csv, write_xlsx
from lib.models import Batch
from lib.results import batch_details
from lib.storage import Storage, export_key, source_key
from lib.store.batches import BatchStore
from lib.store.objects import ObjectKind, ObjectRecords, StoredObject

log = logging.getLogger("ai_answers.batch_files")

XLSX_MIMETYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
SOURCE_TYPES = {"csv": "text/csv", "xlsx": XLSX_MIMETYPE}
EXPORT_TYPES = {"csv": "text/csv; charset=utf-8", "xlsx": XLSX_MIMETYPE, "json": "application/json"}
UPLOAD_KEEP_DAYS = 2  # a direct upload never turned into a batch is deleted after 1 to 2 days
# The sweep looks this many days back for objects past their day (it runs every few minutes,
# or once a day on Vercel's Hobby plan: a long outage of the cron is still caught up).
EXPIRY_LOOKBACK_DAYS = 62
EXPIRE_PER_SWEEP = 1000
_SPOOL_BYTES = 8 * 1024 * 1024

Rows = Iterable[dict[str, Any]]


def upload_already_used() -> Conflict:
    return Conflict("This upload is being used by another create, or it already made a batch: "
                    "to make another batch, upload the file again.", code="UPLOAD_ALREADY_USED",
                    details={"field": "uploadId"})


def expiry_day(now: datetime, days: int) -> date:
    """The first day on which an object kept `days` full days may be deleted."""
    return now.date() + timedelta(days=days + 1)


class BatchFiles:
    def __init__(self, storage: Storage, records: ObjectRecords, batches: BatchStore, *, retention_days: int,
                 now: Callable[[], datetime]):
        self.storage = storage
        self.records = records
        self.batches = batches
        self.retention_days = retention_days
        self.now = now

    # --- the source -----------------------------------------------------------------------

    def keep_source(self, user_id: str, batch_id: ObjectId, data: bytes, file_type: str,
                    file_name: str | None) -> dict[str, Any]:
        """Store an uploaded file as the batch's source; what the batch records of it."""
        key = source_key(user_id, str(batch_id), file_type)
        self._record(key, ObjectKind.SOURCE, user_id, batch_id, file_name, len(data), SOURCE_TYPES[file_type])
        try:
            self.storage.put(key, data, content_type=SOURCE_TYPES[file_type])
        except ServiceUnavailable:
            self._forget_record(key)
            raise
        return self._source_doc(key, len(data), file_type, file_name)

    def adopt_upload(self, upload: StoredObject, batch_id: ObjectId, file_type: str, size: int) -> dict[str, Any]:
        """Make a direct upload the batch's source (a copy inside storage); what the batch records of it.

        409 UPLOAD_ALREADY_USED if the create's claim on the upload was lost (it took too long).
        """
        key = source_key(upload.user_id, str(batch_id), file_type)
        if upload.claim_token is not None and not self.records.bind_upload(upload.key, upload.claim_token,
                                                                           str(batch_id)):
            raise upload_already_used()
        self._record(key, ObjectKind.SOURCE, upload.user_id, batch_id, upload.file_name, size, SOURCE_TYPES[file_type],
                     upload_id=upload.upload_id)
        try:
            self.storage.copy(upload.key, key)
        except ServiceUnavailable:
            self._forget_record(key)
            self._release(upload.upload_id, batch_id)
            raise
        return self._source_doc(key, size, file_type, upload.file_name)

    def source_link(self, batch: Batch) -> dict[str, Any]:
        """A short-lived link to the file as it was uploaded. 404/410 with a code when there is none."""
        if batch.source is None:
            raise NotFound("This batch's file was not kept (it was uploaded before files were stored).",
                           code="SOURCE_NOT_KEPT")
        if batch.source_deleted_at is not None:
            raise Gone(f"The uploaded file was deleted after {self.retention_days} days.", code="SOURCE_EXPIRED",
                       details={"deletedAt": batch.source_deleted_at.isoformat()})
        try:
            self.storage.head(batch.source["key"])
        except NotFound:
            raise NotFound("The uploaded file is no longer in storage.", code="SOURCE_NOT_FOUND") from None
        name = batch.source.get("fileName") or f"source.{batch.source['fileType']}"
        stem, _, ext = name.rpartition(".")
        url, expires_at = self.storage.presign_get(batch.source["key"], download_as=content_disposition(stem or name, ext),
                                                   content_type=SOURCE_TYPES[batch.source["fileType"]])
        return {"url": url, "expiresAt": expires_at}

    # --- exports ----------------------------------------------------------------------------

    def export_link(self, batch: Batch, fmt: str, columns: list[str], rows: Rows) -> dict[str, Any]:
        """A short-lived link to the batch's results in `fmt`, written to storage first if need be.

        A final batch's export is written once and re-used; a running batch's is written anew.
        """
        final = batch.status.is_final
        existing = batch.exports.get(fmt) if final else None
        if existing is not None and not self._still_there(existing["key"]):
            existing = None  # removed behind our back (a bucket rule, a wiped dev server): written again
        if existing is not None:
            key = existing["key"]
            size = existing.get("bytes")
        else:
            key = export_key(batch.uploader_user_id, batch.id, fmt, partial=not final)
            self._record(key, ObjectKind.EXPORT, batch.uploader_user_id, ObjectId(batch.id), key.rsplit("/", 1)[-1],
                         None, EXPORT_TYPES[fmt])
            size = self.storage.put_stream(key, export_chunks(fmt, batch, columns, rows), content_type=EXPORT_TYPES[fmt])
            if final:
                self.batches.record_export(ObjectId(batch.id), fmt, {"key": key, "bytes": size, "createdAt": self.now()})
        url, expires_at = self.storage.presign_get(key, download_as=content_disposition(batch.name, fmt),
                                                   content_type=EXPORT_TYPES[fmt])
        return {"url": url, "expiresAt": expires_at, "bytes": size, "format": fmt, "final": final}

    def _still_there(self, key: str) -> bool:
        try:
            self.storage.head(key)
        except NotFound:
            return False
        return True

    # --- removal --------------------------------------------------------------------------

    def forget_batch(self, batch_id: ObjectId, *, drop_uploads: bool = False) -> None:
        """Delete every object of a batch (a create or an ingestion that could not finish).

        The upload it was made from, if any, is released first: its create may be tried again.
        With `drop_uploads` (the owner deletes the batch) that upload goes too, its record
        (the `claimBatchId` proof) and its object if still there.
        """
        objects = self.records.of_batch(str(batch_id))
        for record in list(objects):
            if record.kind == ObjectKind.SOURCE and record.upload_id and not drop_uploads:
                self._release(record.upload_id, batch_id)
            elif record.kind == ObjectKind.SOURCE and record.upload_id:
                upload = self.records.upload(record.upload_id)
                if upload is not None and upload.claim_batch_id == str(batch_id):
                    objects.append(upload)
        self.storage.delete(o.key for o in objects)
        self.records.remove([o.key for o in objects])

    def discard(self, record: StoredObject) -> None:
        """Delete one object and its record; an upload that became a batch keeps its record (the proof)."""
        self.storage.delete([record.key])
        if record.kind == ObjectKind.UPLOAD:
            self.records.remove_unless_bound(record.key)
        else:
            self.records.remove([record.key])

    def _release(self, upload_id: str | None, batch_id: ObjectId) -> None:
        if not upload_id:
            return
        try:
            self.records.release_upload(upload_id, bound_to=str(batch_id))
        except ServiceUnavailable:
            log.warning("upload %s stays bound to batch %s (the database is away)", upload_id, batch_id)

    def expire(self, limit: int = EXPIRE_PER_SWEEP) -> dict[str, int]:
        """Delete the objects past their day (oldest days first, at most `limit`), and note it on their batches."""
        now = self.now()
        today = now.date()
        due: list[StoredObject] = []
        for back in range(EXPIRY_LOOKBACK_DAYS, -1, -1):
            due += self.records.expiring_on(today - timedelta(days=back), limit - len(due))
            if len(due) >= limit:
                break
        if not due:
            return {"expiredObjects": 0}
        self.storage.delete(o.key for o in due)
        by_batch: dict[str, list[StoredObject]] = {}
        for record in due:
            if record.batch_id:
                by_batch.setdefault(record.batch_id, []).append(record)
        for batch_id, records in by_batch.items():
            exports = [r.key.rsplit(".", 1)[-1] for r in records
                       if r.kind == ObjectKind.EXPORT and r.key.rsplit("/", 1)[-1].startswith("results.")]
            self.batches.mark_files_deleted(ObjectId(batch_id), source=any(r.kind == ObjectKind.SOURCE for r in records),
                                            exports=exports, now=now)
        self.records.remove([o.key for o in due])
        log.info("retention deleted %d objects of %d batches", len(due), len(by_batch))
        return {"expiredObjects": len(due)}

    # --- records ----------------------------------------------------------------------------

    def _record(self, key: str, kind: ObjectKind, user_id: str, batch_id: ObjectId, file_name: str | None,
                size: int | None, content_type: str, *, upload_id: str | None = None) -> None:
        now = self.now()
        self.records.add(StoredObject(key=key, kind=kind, user_id=user_id, batch_id=str(batch_id),
                                      expires_on=expiry_day(now, self.retention_days), created_at=now,
                                      file_name=file_name, size=size, content_type=content_type,
                                      upload_id=upload_id))

    def _forget_record(self, key: str) -> None:
        """Drop the record of an object that could not be written (else retention deletes it in time)."""
        try:
            self.records.remove([key])
        except ServiceUnavailable:
            log.warning("the record of an unwritten object stays until its retention day")

    def _source_doc(self, key: str, size: int, file_type: str, file_name: str | None) -> dict[str, Any]:
        return {"key": key, "bytes": size, "fileType": file_type, "fileName": (file_name or "")[:255],
                "storedAt": self.now()}


def export_chunks(fmt: str, batch: Batch, columns: list[str], rows: Rows) -> Iterator[bytes]:
    """The export's bytes in chunks, memory flat: what a download of the same format holds."""
    if fmt == "csv":
        yield from iter_csv(columns, rows, delimiter=batch.csv_delimiter or ",")  # the uploaded file's
    elif fmt == "xlsx":
        with tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES) as spool:
            write_xlsx(columns, rows, spool, details=batch_details(batch))
            spool.seek(0)
            while chunk := spool.read(1024 * 1024):
                yield chunk
    elif fmt == "json":
        yield from _iter_json(batch, columns, rows)
    else:
        raise BadRequest("format must be json, csv or xlsx.", code="INVALID_FORMAT", details={"field": "format"})


def _iter_json(batch: Batch, columns: list[str], rows: Rows) -> Iterator[bytes]:
    from lib.http import to_jsonable  # the edge's JSON conventions (dates as ISO 8601 UTC)

    def dumps(value: Any) -> str:
        return json.dumps(value, default=to_jsonable, ensure_ascii=False, separators=(",", ":"))

    head = dumps({"batchId": batch.id, "status": batch.status.value, "columns": columns})
    parts = [head[:-1], ',"items":[']
    size = 0
    for index, row in enumerate(rows):
        parts.append(("," if index else "") + dumps(row))
        size += len(parts[-1])
        if size >= 64 * 1024:
            yield "".join(parts).encode("utf-8", errors="replace")
            parts, size = [], 0
    parts.append("]}")
    yield "".join(parts).encode("utf-8", errors="replace")
