"""Direct uploads: a presigned form post straight to object storage, for files past the request cap.

`POST /api/batch/upload-url` hands out the form (`presign`): a key under the caller's
prefix, the content type and the largest size fixed by the server and signed. The client
posts the file to storage, then calls create with `uploadId`, which `take`s the upload:
only the caller's own, no larger than declared or than MAX_UPLOAD_BYTES_DIRECT (checked
here with a HEAD and again while downloading: an S3-compatible server need not enforce
the policy, moto does not), of the declared type. A refused upload is deleted.

One upload makes at most one batch: `take` claims its record atomically (a
compare-and-set, `lib.store.objects`), so of two creates with the same `uploadId` one
goes on and the other gets 409 UPLOAD_ALREADY_USED; a create that fails releases the
claim. A claim not yet bound to a batch after CLAIM_SECONDS (its create died: a timeout,
a crash) may be taken again; the create that lost it is then refused when it binds.
"""

from __future__ import annotations

import io
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from lib.batch_files import UPLOAD_KEEP_DAYS, XLSX_MIMETYPE, BatchFiles, expiry_day, upload_already_used
from lib.errors import BadRequest, NotFound, PayloadTooLarge, ServiceUnavailable, UnsupportedMediaType
from lib.models import User
from lib.storage import upload_key, user_prefix
from lib.store.objects import ObjectKind, StoredObject

log = logging.getLogger("ai_answers.direct_upload")

MAX_FILE_NAME_CHARS = 255
# Four times the create function's maxDuration (vercel.json): a create still holding its
# claim after this is dead, and the claim goes to the next create.
CLAIM_SECONDS = 120
_UPLOAD_ID = re.compile(r"[0-9a-f]{32}")
# What browsers and tools call these files; the first is the one stored when none is given.
CONTENT_TYPES = {
    ".csv": ("text/csv", "application/csv", "text/x-csv", "text/plain", "application/vnd.ms-excel",
             "application/octet-stream"),
    ".xlsx": (XLSX_MIMETYPE, "application/octet-stream"),
}


@dataclass(frozen=True)
class TakenUpload:
    """A direct upload, checked and read: its record and its bytes."""

    record: StoredObject
    data: bytes
    sha256: str


class DirectUploads:
    def __init__(self, files: BatchFiles, *, max_bytes: int, now: Callable[[], datetime]):
        self.files = files
        self.storage = files.storage
        self.records = files.records
        self.max_bytes = max_bytes
        self.now = now

    def presign(self, user: User, body: dict[str, Any]) -> dict[str, Any]:
        """A form post for one file of the caller's: `{uploadId, url, fields, expiresAt, maxBytes}`."""
        file_name, size, content_type = self._checked(body)
        upload_id = secrets.token_hex(16)
        key = upload_key(user.id, upload_id, file_name)
        now = self.now()
        self.storage.check()  # the form is signed here: tell now, not at the post, that storage is away
        # Recorded before anything can be posted: an upload never used is deleted in a day or two.
        self.records.add(StoredObject(key=key, kind=ObjectKind.UPLOAD, user_id=user.id,
                                      expires_on=expiry_day(now, UPLOAD_KEEP_DAYS - 1), created_at=now,
                                      upload_id=upload_id, file_name=file_name, size=size, content_type=content_type))
        post = self.storage.presign_post(key, content_type=content_type, max_bytes=size)
        return {"uploadId": upload_id, "url": post.url, "fields": post.fields, "expiresAt": post.expires_at,
                "maxBytes": size}

    def _checked(self, body: dict[str, Any]) -> tuple[str, int, str]:
        file_name = body.get("fileName")
        if not isinstance(file_name, str) or not file_name.strip() or len(file_name) > MAX_FILE_NAME_CHARS:
            raise _field_error("fileName", f"fileName must be the file's name (1 to {MAX_FILE_NAME_CHARS} characters).")
        file_name = file_name.strip()
        extension = "." + file_name.rpartition(".")[2].lower() if "." in file_name else ""
        if extension not in CONTENT_TYPES:
            raise UnsupportedMediaType("Upload a .csv or .xlsx file.", code="UNSUPPORTED_FILE_TYPE",
                                       details={"field": "fileName", "accepted": list(CONTENT_TYPES)})
        size = body.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise _field_error("size", "size must be the file's size in bytes (a whole number, at least 1).")
        if size > self.max_bytes:
            raise PayloadTooLarge(f"The file is {size} bytes; the limit is {self.max_bytes}.",
                                  code="UPLOAD_TOO_LARGE", details={"maxBytes": self.max_bytes})
        content_type = body.get("contentType")
        if content_type is not None and not isinstance(content_type, str):
            raise _field_error("contentType", "contentType must be a string.")
        accepted = CONTENT_TYPES[extension]
        content_type = (content_type or "").split(";")[0].strip().lower() or accepted[0]
        if content_type not in accepted:
            raise UnsupportedMediaType(f"A {extension} file's contentType must be one of {', '.join(accepted)}.",
                                       code="UNSUPPORTED_CONTENT_TYPE", details={"field": "contentType"})
        return file_name, size, content_type

    def take(self, user: User, upload_id: str) -> TakenUpload:
        """The caller's upload, claimed, checked and read. 404 UPLOAD_NOT_FOUND for anybody else's or an
        unknown id; 409 UPLOAD_ALREADY_USED while another create holds it or once it made a batch."""
        if not _UPLOAD_ID.fullmatch(upload_id):
            raise _field_error("uploadId", "uploadId is not a valid upload id.", code="INVALID_UPLOAD_ID")
        record = self.records.upload(upload_id)
        if record is None or record.user_id != user.id or not record.key.startswith(user_prefix(user.id) + "uploads/"):
            raise NotFound("No such upload.", code="UPLOAD_NOT_FOUND")
        record = self._claim(record)
        try:
            return self._read(record)
        except BaseException:
            self.release(record)  # a no-op when the upload was refused and deleted
            raise

    def _claim(self, record: StoredObject) -> StoredObject:
        now = self.now()
        previous = record.claim_token
        if previous is not None and (record.claim_batch_id is not None or record.claimed_at is None
                                     or (now - _aware(record.claimed_at, now)).total_seconds() < CLAIM_SECONDS):
            raise upload_already_used()
        token = secrets.token_hex(16)
        if not self.records.claim_upload(record.key, previous=previous, token=token, now=now):
            raise upload_already_used()  # another create claimed it between our read and our write
        return replace(record, claim_token=token, claimed_at=now)

    def release(self, record: StoredObject) -> None:
        """Give the upload back (its create failed); kept claimed, the claim expires, if the database is away."""
        if record.upload_id is None:
            return
        try:
            self.records.release_upload(record.upload_id, token=record.claim_token)
        except ServiceUnavailable:
            log.warning("upload %s stays claimed for %d s (the database is away)", record.upload_id, CLAIM_SECONDS)

    def _read(self, record: StoredObject) -> TakenUpload:
        try:
            info = self.storage.head(record.key)
        except NotFound:
            raise BadRequest("Nothing has been uploaded for this uploadId yet: post the file to the upload url first.",
                             code="UPLOAD_MISSING", details={"field": "uploadId"}) from None
        limit = min(record.size or self.max_bytes, self.max_bytes)
        if info.size > limit:
            self.files.discard(record)
            raise _too_large(info.size, limit)
        if info.content_type.split(";")[0].strip().lower() != record.content_type:
            self.files.discard(record)
            raise UnsupportedMediaType("The file was uploaded with another content type than the one declared.",
                                       code="UPLOAD_TYPE_MISMATCH", details={"expected": record.content_type})
        buffer = io.BytesIO()
        try:
            downloaded = self.storage.download(record.key, buffer, max_bytes=limit)
        except PayloadTooLarge:  # replaced by a bigger file since the HEAD
            self.files.discard(record)
            raise _too_large(limit + 1, limit) from None
        except NotFound:
            raise BadRequest("The upload disappeared while it was read; upload the file again.",
                             code="UPLOAD_MISSING", details={"field": "uploadId"}) from None
        return TakenUpload(record=record, data=buffer.getvalue(), sha256=downloaded.sha256)


def _aware(moment: datetime, like: datetime) -> datetime:
    """A stored time comparable with `like` (a store read without tz_aware gives naive UTC)."""
    return moment.replace(tzinfo=like.tzinfo) if moment.tzinfo is None and like.tzinfo is not None else moment


def _too_large(size: int, limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The uploaded file is larger than declared or allowed ({limit} bytes); it was deleted.",
                           code="UPLOAD_TOO_LARGE", details={"maxBytes": limit, "size": size})


def _field_error(name: str, message: str, code: str = "INVALID_FIELD") -> BadRequest:
    return BadRequest(message, code=code, details={"field": name})
