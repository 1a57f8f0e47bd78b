"""Records of what is in object storage: each object's key, kind, owner and the day it expires.

A record is written before its object, and removed only once the object is deleted, so
that nothing put in storage can be forgotten there: the sweep deletes what has expired,
day by day. Every read is by `_id` (the key) or by an exact indexed key (`uploadId`,
`batchId`, `expiresOn` as "YYYY-MM-DD").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from bson import ObjectId

from lib.store.client import Store, translate_errors


class ObjectKind(StrEnum):
    UPLOAD = "upload"  # posted straight to storage; becomes a batch's source, or expires
    SOURCE = "source"  # a batch's file as it was uploaded
    EXPORT = "export"  # a batch's results, written for a link


@dataclass(frozen=True)
class StoredObject:
    key: str
    kind: ObjectKind
    user_id: str
    expires_on: date
    created_at: datetime
    batch_id: str | None = None
    upload_id: str | None = None
    file_name: str | None = None
    size: int | None = None  # declared (an upload) or written (a source, an export)
    content_type: str | None = None

    def to_doc(self) -> dict[str, Any]:
        return {
            "_id": self.key, "kind": self.kind.value, "userId": self.user_id,
            "expiresOn": self.expires_on.isoformat(), "createdAt": self.created_at,
            "batchId": ObjectId(self.batch_id) if self.batch_id else None, "uploadId": self.upload_id,
            "fileName": self.file_name, "size": self.size, "contentType": self.content_type,
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> StoredObject:
        return cls(
            key=doc["_id"], kind=ObjectKind(doc["kind"]), user_id=doc["userId"],
            expires_on=date.fromisoformat(doc["expiresOn"]), created_at=doc["createdAt"],
            batch_id=str(doc["batchId"]) if doc.get("batchId") else None, upload_id=doc.get("uploadId"),
            file_name=doc.get("fileName"), size=doc.get("size"), content_type=doc.get("contentType"),
        )


class ObjectRecords:
    def __init__(self, store: Store):
        self.objects = store.storage_objects

    def add(self, record: StoredObject) -> None:
        """Record an object about to be written (again, for an export written anew)."""
        with translate_errors():
            self.objects.replace_one({"_id": record.key}, record.to_doc(), upsert=True)

    def upload(self, upload_id: str) -> StoredObject | None:
        with translate_errors():
            doc = self.objects.find_one({"uploadId": upload_id})
        return StoredObject.from_doc(doc) if doc and doc["kind"] == ObjectKind.UPLOAD.value else None

    def of_batch(self, batch_id: str) -> list[StoredObject]:
        with translate_errors():
            return [StoredObject.from_doc(d) for d in self.objects.find({"batchId": ObjectId(batch_id)})]

    def expiring_on(self, day: date, limit: int) -> list[StoredObject]:
        with translate_errors():
            docs = self.objects.find({"expiresOn": day.isoformat()}).limit(limit)
            return [StoredObject.from_doc(d) for d in docs]

    def remove(self, keys: Sequence[str]) -> None:
        """Forget objects that are deleted from storage."""
        if not keys:
            return
        with translate_errors():
            self.objects.delete_many({"_id": {"$in": list(keys)}})
