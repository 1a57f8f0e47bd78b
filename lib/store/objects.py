"""Records of what is in object storage: each object's key, kind, owner and the day it expires.

A record is written before its object, and removed only once the object is deleted, so
that nothing put in storage can be forgotten there: the sweep deletes what has expired,
day by day. Every read is by `_id` (the key) or by an exact indexed key (`uploadId`,
`batchId`, `expiresOn` as "YYYY-MM-DD").

A direct upload is claimed by the one create that uses it (`claim_upload`, a
compare-and-set on the record's claim token), so that two creates with the same
`uploadId` never both make a batch. The claim is bound to the batch just before its
source is copied (`bind_upload`): a bound upload stays claimed (its record kept, the
object gone, until its expiry day) so a later create with it is told it was used. A
create that fails releases its claim (`release_upload`), so the user can try again.
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
    # An upload: the token of the create that holds it, when, and the batch it became.
    # A source: `upload_id` names the upload it was copied from.
    claim_token: str | None = None
    claimed_at: datetime | None = None
    claim_batch_id: str | None = None

    def to_doc(self) -> dict[str, Any]:
        return {
            "_id": self.key, "kind": self.kind.value, "userId": self.user_id,
            "expiresOn": self.expires_on.isoformat(), "createdAt": self.created_at,
            "batchId": ObjectId(self.batch_id) if self.batch_id else None, "uploadId": self.upload_id,
            "fileName": self.file_name, "size": self.size, "contentType": self.content_type,
            "claimToken": self.claim_token, "claimedAt": self.claimed_at,
            "claimBatchId": ObjectId(self.claim_batch_id) if self.claim_batch_id else None,
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> StoredObject:
        return cls(
            key=doc["_id"], kind=ObjectKind(doc["kind"]), user_id=doc["userId"],
            expires_on=date.fromisoformat(doc["expiresOn"]), created_at=doc["createdAt"],
            batch_id=str(doc["batchId"]) if doc.get("batchId") else None, upload_id=doc.get("uploadId"),
            file_name=doc.get("fileName"), size=doc.get("size"), content_type=doc.get("contentType"),
            claim_token=doc.get("claimToken"), claimed_at=doc.get("claimedAt"),
            claim_batch_id=str(doc["claimBatchId"]) if doc.get("claimBatchId") else None,
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
            doc = self.objects.find_one({"uploadId": upload_id, "kind": ObjectKind.UPLOAD.value})
        return StoredObject.from_doc(doc) if doc else None

    def claim_upload(self, key: str, *, previous: str | None, token: str, now: datetime) -> bool:
        """Take an upload for one create: only if its claim is still `previous` (None: nobody's). Atomic."""
        with translate_errors():
            result = self.objects.update_one(
                {"_id": key, "kind": ObjectKind.UPLOAD.value, "claimToken": previous, "claimBatchId": None},
                {"$set": {"claimToken": token, "claimedAt": now}},
            )
        return result.modified_count == 1

    def bind_upload(self, key: str, token: str, batch_id: str) -> bool:
        """Note the batch an upload becomes; False if the claim is no longer this create's."""
        with translate_errors():
            result = self.objects.update_one(
                {"_id": key, "kind": ObjectKind.UPLOAD.value, "claimToken": token, "claimBatchId": None},
                {"$set": {"claimBatchId": ObjectId(batch_id)}},
            )
        return result.modified_count == 1

    def release_upload(self, upload_id: str, *, token: str | None = None, bound_to: str | None = None) -> None:
        """Let an upload be used again (its create failed): the claim of this create (`token`), or the
        one bound to this batch (`bound_to`, the batch is being removed)."""
        query: dict[str, Any] = {"uploadId": upload_id, "kind": ObjectKind.UPLOAD.value}
        if token is not None:
            query["claimToken"] = token
        if bound_to is not None:
            query["claimBatchId"] = ObjectId(bound_to)
        if token is None and bound_to is None:
            raise ValueError("release_upload needs the claim's token or its batch")
        with translate_errors():
            self.objects.update_one(query, {"$set": {"claimToken": None, "claimedAt": None, "claimBatchId": None}})

    def remove_unless_bound(self, key: str) -> bool:
        """Forget an upload's record unless it became a batch (then it stays, as the proof); True if removed."""
        with translate_errors():
            result = self.objects.delete_one({"_id": key, "claimBatchId": None})
        return result.deleted_count == 1

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
