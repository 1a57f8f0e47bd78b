"""Object storage (S3, or an S3-compatible server such as moto's locally): the files of batches.

The one module that imports boto3 and botocore. Every failure of theirs becomes one of
ours here: storage unreachable, timing out or answering 5xx is `ServiceUnavailable`
(`STORAGE_UNAVAILABLE`, a 503 with Retry-After at the edge); a missing object is
`NotFound` (`OBJECT_NOT_FOUND`), which callers turn into their own code.

Keys start with the owner's user id, nothing is public, and every link is a presigned
URL that expires within minutes:

    <userId>/uploads/<uploadId>/<safe file name>     a direct upload, until create takes it
    <userId>/batches/<batchId>/source.<csv|xlsx>     the file as it was uploaded
    <userId>/batches/<batchId>/exports/results.<fmt> the results, written once the batch is final
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from hashlib import sha256
from typing import IO, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from urllib3.exceptions import HTTPError as Urllib3Error

from lib.errors import NotFound, PayloadTooLarge, ServiceUnavailable

log = logging.getLogger("ai_answers.storage")

LINK_SECONDS = 15 * 60  # presigned links (upload form, source, exports) live this long
PART_BYTES = 8 * 1024 * 1024  # multipart part size when streaming an object in (S3's minimum is 5 MiB)
READ_CHUNK_BYTES = 1024 * 1024
DELETE_BATCH = 1000  # S3's DeleteObjects takes at most 1,000 keys
_MISSING_CODES = ("404", "NoSuchKey", "NotFound")
_BUSY_CODES = ("SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "RequestTimeTooSkewed")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class PresignedPost:
    url: str
    fields: dict[str, str]
    expires_at: datetime


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    content_type: str


@dataclass(frozen=True)
class Downloaded:
    size: int
    sha256: str


# --- keys: every one under its owner's prefix -------------------------------------------------


def safe_file_name(name: str, max_chars: int = 100) -> str:
    """An ASCII file name for a key: `[A-Za-z0-9._-]`, never empty, never a path."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    cleaned = _UNSAFE_NAME.sub("_", ascii_name.replace("/", "_").replace("\\", "_")).strip("._")
    return cleaned[-max_chars:].lstrip("._") or "file"


def user_prefix(user_id: str) -> str:
    return f"{user_id}/"


def upload_key(user_id: str, upload_id: str, file_name: str) -> str:
    return f"{user_id}/uploads/{upload_id}/{safe_file_name(file_name)}"


def source_key(user_id: str, batch_id: str, file_type: str) -> str:
    return f"{user_id}/batches/{batch_id}/source.{file_type}"


def export_key(user_id: str, batch_id: str, fmt: str, *, partial: bool = False) -> str:
    return f"{user_id}/batches/{batch_id}/exports/{'partial' if partial else 'results'}.{fmt}"


# --- errors ---------------------------------------------------------------------------------


@contextmanager
def translate_errors(action: str) -> Iterator[None]:
    """Map boto3's errors to ours (`raise ... from exc`); `action` goes to the log only."""
    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if code in _MISSING_CODES or (status == 404 and code != "NoSuchBucket"):
            raise NotFound("The stored file is not there.", code="OBJECT_NOT_FOUND") from exc
        if status >= 500 or code in _BUSY_CODES:
            log.warning("storage %s failed status=%s code=%s", action, status, code)
            raise ServiceUnavailable("Object storage is unavailable; try again shortly.",
                                     code="STORAGE_UNAVAILABLE") from exc
        # Access denied, no such bucket, a bad request: our configuration, not the caller's input.
        log.error("storage %s refused status=%s code=%s", action, status, code)
        raise ServiceUnavailable("Object storage refused the operation; try again later.",
                                 code="STORAGE_ERROR") from exc
    except (BotoCoreError, Urllib3Error, ConnectionError) as exc:  # unreachable, timed out, cut mid-body, no credentials
        log.warning("storage %s failed: %s", action, exc.__class__.__name__)
        raise ServiceUnavailable("Object storage is unreachable; try again shortly.",
                                 code="STORAGE_UNAVAILABLE") from exc


# --- the adapter ----------------------------------------------------------------------------


class Storage:
    """One bucket. The boto3 client is built on first use (importing and building it costs ~0.5 s)."""

    def __init__(self, bucket: str, *, region: str, endpoint_url: str | None = None,
                 credentials: dict[str, str] | None = None, connect_timeout: float = 3.0,
                 read_timeout: float = 30.0):
        self.bucket = bucket
        self.region = region
        self.endpoint_url = endpoint_url
        self._credentials = credentials or {}  # empty: boto3's default chain (environment, role)
        self._config = Config(
            signature_version="s3v4",
            s3={"addressing_style": "path" if endpoint_url else "auto"},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"max_attempts": 3, "mode": "standard"},
        )
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                session = boto3.session.Session()
                self._client = session.client("s3", region_name=self.region, endpoint_url=self.endpoint_url,
                                              config=self._config, **self._credentials)
            return self._client

    # --- links (signed here, no request to storage) ---------------------------------------

    def presign_post(self, key: str, *, content_type: str, max_bytes: int,
                     seconds: int = LINK_SECONDS) -> PresignedPost:
        """A form post for exactly this key, this content type and at most `max_bytes` bytes.

        Real S3 enforces the policy; moto does not, so whoever takes the upload checks it again.
        """
        with translate_errors("presign-post"):
            post = self.client.generate_presigned_post(
                self.bucket, key, Fields={"Content-Type": content_type},
                Conditions=[{"Content-Type": content_type}, ["content-length-range", 1, max_bytes]],
                ExpiresIn=seconds,
            )
        return PresignedPost(url=post["url"], fields=dict(post["fields"]), expires_at=_expiry(seconds))

    def presign_get(self, key: str, *, download_as: str | None = None, content_type: str | None = None,
                    seconds: int = LINK_SECONDS) -> tuple[str, datetime]:
        """A short-lived GET link; `download_as` is a whole Content-Disposition value."""
        params: dict[str, str] = {"Bucket": self.bucket, "Key": key}
        if download_as:
            params["ResponseContentDisposition"] = download_as
        if content_type:
            params["ResponseContentType"] = content_type
        with translate_errors("presign-get"):
            url = self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=seconds)
        return url, _expiry(seconds)

    def check(self) -> None:
        """Raise `ServiceUnavailable` unless the bucket answers (links are signed without asking it)."""
        with translate_errors("head-bucket"):
            self.client.head_bucket(Bucket=self.bucket)

    # --- objects --------------------------------------------------------------------------

    def head(self, key: str) -> ObjectInfo:
        """Size and type of an object. Raises `NotFound` when there is none."""
        with translate_errors("head"):
            meta = self.client.head_object(Bucket=self.bucket, Key=key)
        return ObjectInfo(size=int(meta.get("ContentLength", 0)), content_type=str(meta.get("ContentType", "")))

    def download(self, key: str, fileobj: IO[bytes], *, max_bytes: int) -> Downloaded:
        """Stream an object into `fileobj` in chunks; `PayloadTooLarge` once it passes `max_bytes`."""
        digest, size = sha256(), 0
        with translate_errors("get"):
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            try:
                for chunk in body.iter_chunks(READ_CHUNK_BYTES):
                    size += len(chunk)
                    if size > max_bytes:
                        raise PayloadTooLarge(f"The stored file is larger than {max_bytes} bytes.",
                                              code="OBJECT_TOO_LARGE", details={"maxBytes": max_bytes})
                    digest.update(chunk)
                    fileobj.write(chunk)
            finally:
                body.close()
        fileobj.seek(0)
        return Downloaded(size=size, sha256=digest.hexdigest())

    def put(self, key: str, data: bytes, *, content_type: str) -> None:
        with translate_errors("put"):
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    def put_stream(self, key: str, chunks: Iterable[bytes], *, content_type: str) -> int:
        """Write an object from chunks with flat memory (one part at a time); its size in bytes.

        Small objects are one PUT; larger ones a multipart upload, aborted if anything fails
        (so no half-written object is ever visible under `key`).
        """
        buffer, parts, upload_id, total = bytearray(), [], None, 0
        try:
            with translate_errors("put-stream"):
                for chunk in chunks:
                    buffer += chunk
                    total += len(chunk)
                    if len(buffer) >= PART_BYTES:
                        if upload_id is None:
                            upload_id = self.client.create_multipart_upload(
                                Bucket=self.bucket, Key=key, ContentType=content_type)["UploadId"]
                        parts.append(self._put_part(key, upload_id, len(parts) + 1, bytes(buffer[:PART_BYTES])))
                        del buffer[:PART_BYTES]
                if upload_id is None:
                    self.client.put_object(Bucket=self.bucket, Key=key, Body=bytes(buffer), ContentType=content_type)
                    return total
                if buffer or not parts:
                    parts.append(self._put_part(key, upload_id, len(parts) + 1, bytes(buffer)))
                self.client.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id,
                                                      MultipartUpload={"Parts": parts})
                return total
        except BaseException:
            if upload_id is not None:
                self._abort(key, upload_id)
            raise

    def _put_part(self, key: str, upload_id: str, number: int, data: bytes) -> dict[str, Any]:
        answer = self.client.upload_part(Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data)
        return {"ETag": answer["ETag"], "PartNumber": number}

    def _abort(self, key: str, upload_id: str) -> None:
        try:
            with translate_errors("abort-multipart"):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except ServiceUnavailable:
            log.warning("a multipart upload could not be aborted (the bucket's lifecycle rule removes it)")

    def copy(self, source: str, destination: str) -> None:
        """Copy an object inside the bucket (server side, no bytes through this function)."""
        with translate_errors("copy"):
            self.client.copy_object(Bucket=self.bucket, Key=destination,
                                    CopySource={"Bucket": self.bucket, "Key": source}, MetadataDirective="COPY")

    def delete(self, keys: Iterable[str]) -> None:
        """Delete objects (a missing one is no error)."""
        batch: list[str] = []
        for key in keys:
            batch.append(key)
            if len(batch) == DELETE_BATCH:
                self._delete_batch(batch)
                batch = []
        if batch:
            self._delete_batch(batch)

    def _delete_batch(self, keys: list[str]) -> None:
        with translate_errors("delete"):
            answer = self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True})
        failed = [e for e in answer.get("Errors", []) if e.get("Code") not in _MISSING_CODES]
        if failed:
            log.warning("storage delete left %d objects (first code=%s)", len(failed), failed[0].get("Code"))
            raise ServiceUnavailable("Object storage did not delete every file; try again shortly.",
                                     code="STORAGE_UNAVAILABLE")

    # --- the local stack and tests ---------------------------------------------------------

    def create_bucket(self, *, cors_origins: Iterable[str] = ()) -> None:
        """Create the bucket (dev servers only), allowing these origins to post the upload form."""
        with translate_errors("create-bucket"):
            try:
                kwargs: dict[str, Any] = {"Bucket": self.bucket}
                if self.region != "us-east-1":
                    kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
                self.client.create_bucket(**kwargs)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise
            origins = list(cors_origins)
            if origins:
                self.client.put_bucket_cors(Bucket=self.bucket, CORSConfiguration={"CORSRules": [{
                    "AllowedOrigins": origins, "AllowedMethods": ["POST", "GET"], "AllowedHeaders": ["*"],
                    "MaxAgeSeconds": 600,
                }]})

    def keys(self, prefix: str) -> list[str]:
        """Every key under a prefix (tests and the dev tools; the service reads by key)."""
        found: list[str] = []
        with translate_errors("list"):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                found.extend(item["Key"] for item in page.get("Contents", []))
        return found


def _expiry(seconds: int) -> datetime:
    # botocore signs with the wall clock, so the expiry is told by the same clock.
    return datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=seconds)
