"""Batches and their items: every read is by `_id` or by exact keys on an index.

Rows move `pending -> processing -> succeeded | failed`, or back to `pending` for a
retry, or to `cancelled`; every move is a compare-and-set on the item's `_id` (plus its
claim id once claimed), so a stale or duplicated step can never overwrite a newer
outcome.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, ReturnDocument, UpdateOne

from lib.models import Batch, BatchItem, BatchStatus, ItemError, ItemStatus
from lib.store.chats import to_object_id
from lib.store.client import Store, translate_errors

_INSERT_CHUNK = 1000
_ACTIVE = [BatchStatus.QUEUED.value, BatchStatus.PROCESSING.value]
# What the engine needs of an item to plan and run it; the original row stays on disk.
_PLAN_FIELDS = {
    "batchId": 1, "rowIndex": 1, "chatKey": 1, "chatLabel": 1, "question": 1, "referringUrl": 1,
    "status": 1, "attempts": 1, "interactionId": 1, "leaseUntil": 1, "notBefore": 1, "claimId": 1,
}


class BatchStore:
    def __init__(self, store: Store):
        self.batches = store.batches
        self.items = store.batch_items

    # --- creation -------------------------------------------------------------------

    def insert_batch(self, doc: dict[str, Any]) -> None:
        with translate_errors():
            self.batches.insert_one(doc)

    def insert_items(self, docs: Sequence[dict[str, Any]]) -> None:
        with translate_errors():
            for start in range(0, len(docs), _INSERT_CHUNK):
                self.items.insert_many(docs[start : start + _INSERT_CHUNK], ordered=False)

    def mark_queued(self, batch_id: ObjectId, now: datetime) -> None:
        with translate_errors():
            self.batches.update_one(
                {"_id": batch_id, "status": BatchStatus.CREATING.value},
                {"$set": {"status": BatchStatus.QUEUED.value, "updatedAt": now}},
            )

    def delete_batch(self, batch_id: ObjectId) -> None:
        """Remove a batch and its items (a create that could not finish leaves nothing)."""
        with translate_errors():
            self.items.delete_many({"batchId": batch_id})
            self.batches.delete_one({"_id": batch_id})

    # --- reads ----------------------------------------------------------------------

    def get(self, batch_id: str) -> Batch | None:
        oid = to_object_id(batch_id)
        if oid is None:
            return None
        with translate_errors():
            doc = self.batches.find_one({"_id": oid}, {"interactions": 0})
        return Batch.from_doc(doc) if doc else None

    def list_for_user(self, user_id: str) -> list[Batch]:
        """The user's batches, newest first (batches still being created are left out)."""
        with translate_errors():
            docs = list(self.batches.find({"uploaderUserId": user_id}, {"interactions": 0}))
        batches = [Batch.from_doc(d) for d in docs if d.get("status") != BatchStatus.CREATING.value]
        return sorted(batches, key=lambda b: b.created_at, reverse=True)

    def count_active_for_user(self, user_id: str) -> int:
        with translate_errors():
            docs = self.batches.find({"uploaderUserId": user_id}, {"status": 1})
            return sum(1 for d in docs if d["status"] in _ACTIVE)

    def items_with_status(self, batch_id: ObjectId, status: ItemStatus) -> list[BatchItem]:
        with translate_errors():
            docs = self.items.find({"batchId": batch_id, "status": status.value}, _PLAN_FIELDS)
            return [BatchItem.from_doc(d) for d in docs]

    def results(self, batch_id: ObjectId) -> Iterator[dict[str, Any]]:
        """Every item of the batch in input order (streamed from a cursor)."""
        with translate_errors():
            cursor = self.items.find({"batchId": batch_id}).sort("rowIndex", ASCENDING).batch_size(500)
            yield from cursor

    def count_by_status(self, batch_id: ObjectId) -> dict[str, int]:
        with translate_errors():
            groups = self.items.aggregate(
                [{"$match": {"batchId": batch_id}}, {"$group": {"_id": "$status", "n": {"$sum": 1}}}]
            )
            return {g["_id"]: g["n"] for g in groups}

    def succeeded_interaction_ids(self, batch_id: ObjectId) -> list[ObjectId]:
        with translate_errors():
            docs = self.items.find(
                {"batchId": batch_id, "status": ItemStatus.SUCCEEDED.value}, {"interactionId": 1, "rowIndex": 1}
            )
            return [d["interactionId"] for d in sorted(docs, key=lambda d: d["rowIndex"])]

    def active_batches(self) -> list[Batch]:
        """Batches that are queued or processing (for the sweep)."""
        with translate_errors():
            docs = [d for status in _ACTIVE for d in self.batches.find({"status": status}, {"interactions": 0})]
        return [Batch.from_doc(d) for d in docs]

    def abandoned_creations(self, before: datetime) -> list[ObjectId]:
        with translate_errors():
            docs = self.batches.find({"status": BatchStatus.CREATING.value}, {"createdAt": 1})
            return [d["_id"] for d in docs if d["createdAt"] < before]

    # --- the step lease -------------------------------------------------------------

    def take_lease(self, batch_id: ObjectId, owner: str, now: datetime, until: datetime) -> Batch | None:
        """Take the batch's step lease if it is free or expired; bump its step number."""
        with translate_errors():
            doc = self.batches.find_one_and_update(
                {
                    "_id": batch_id,
                    "status": {"$in": _ACTIVE},
                    "$or": [{"leaseUntil": None}, {"leaseUntil": {"$lte": now}}],
                },
                {
                    "$set": {
                        "status": BatchStatus.PROCESSING.value,
                        "leaseOwner": owner,
                        "leaseUntil": until,
                        "heartbeatAt": now,
                        "updatedAt": now,
                    },
                    "$min": {"startedAt": now},
                    "$inc": {"stepSeq": 1},
                },
                projection={"interactions": 0},
                return_document=ReturnDocument.AFTER,
            )
        return Batch.from_doc(doc) if doc else None

    def release_lease(self, batch_id: ObjectId, owner: str, now: datetime) -> None:
        with translate_errors():
            self.batches.update_one(
                {"_id": batch_id, "leaseOwner": owner},
                {"$set": {"leaseOwner": None, "leaseUntil": None, "updatedAt": now, "heartbeatAt": now}},
            )

    def flush_progress(
        self, batch_id: ObjectId, *, processed: int, failed: int, interactions: list[ObjectId], now: datetime
    ) -> BatchStatus | None:
        """Add finished rows to the counters and interactions; return the batch's status."""
        with translate_errors():
            doc = self.batches.find_one_and_update(
                {"_id": batch_id},
                {
                    "$inc": {"processedItems": processed, "failedItems": failed},
                    # $push, not $addToSet: a set check rewrites the whole growing array on
                    # SecantusDB; the list is rewritten from the items at finalisation anyway.
                    "$push": {"interactions": {"$each": interactions}},
                    "$set": {"updatedAt": now, "heartbeatAt": now},
                },
                projection={"status": 1},
            )
        return BatchStatus(doc["status"]) if doc else None

    def finalise(
        self,
        batch_id: ObjectId,
        *,
        counts: dict[str, int],
        interactions: list[ObjectId],
        status: BatchStatus | None,
        now: datetime,
    ) -> None:
        """Write counters recomputed from the items; set the final status unless cancelled."""
        update: dict[str, Any] = {
            "processedItems": counts.get(ItemStatus.SUCCEEDED.value, 0),
            "failedItems": counts.get(ItemStatus.FAILED.value, 0),
            "cancelledItems": counts.get(ItemStatus.CANCELLED.value, 0),
            "interactions": interactions,
            "updatedAt": now,
        }
        query: dict[str, Any] = {"_id": batch_id}
        if status is not None:
            update.update({"status": status.value, "completedAt": now, "leaseOwner": None, "leaseUntil": None})
            query["status"] = {"$in": _ACTIVE}
        elif not counts.get(ItemStatus.PROCESSING.value):
            update["completedAt"] = now  # a cancelled batch is complete once its rows in flight are recorded
        with translate_errors():
            self.batches.update_one(query, {"$set": update})

    def cancel(self, batch_id: ObjectId, now: datetime) -> bool:
        """Mark an active batch cancelled, then its pending rows. False if it was not active."""
        with translate_errors():
            result = self.batches.update_one(
                {"_id": batch_id, "status": {"$in": _ACTIVE}},
                {"$set": {"status": BatchStatus.CANCELLED.value, "cancelledAt": now, "updatedAt": now}},
            )
            if result.modified_count == 0:
                return False
            self.cancel_pending_items(batch_id, now)
        return True

    def cancel_abandoned_rows(self, items: Sequence[BatchItem], now: datetime) -> int:
        """Rows of a cancelled batch left `processing` past their lease (their step died) are cancelled."""
        ops = [
            UpdateOne(
                {"_id": ObjectId(i.id), "status": ItemStatus.PROCESSING.value, "leaseUntil": {"$lte": now}},
                {"$set": {"status": ItemStatus.CANCELLED.value, "claimId": None, "leaseUntil": None, "finishedAt": now}},
            )
            for i in items
            if i.lease_until is None or i.lease_until <= now
        ]
        if not ops:
            return 0
        with translate_errors():
            return self.items.bulk_write(ops, ordered=False).modified_count

    def unsettled_cancelled_batches(self) -> list[Batch]:
        """Cancelled batches whose rows in flight are not all recorded yet (for the sweep)."""
        with translate_errors():
            docs = self.batches.find({"status": BatchStatus.CANCELLED.value, "completedAt": None}, {"interactions": 0})
        return [Batch.from_doc(d) for d in docs]

    def cancel_pending_items(self, batch_id: ObjectId, now: datetime) -> int:
        with translate_errors():
            result = self.items.update_many(
                {"batchId": batch_id, "status": ItemStatus.PENDING.value},
                {"$set": {"status": ItemStatus.CANCELLED.value, "finishedAt": now}},
            )
        return result.modified_count

    def status_of(self, batch_id: ObjectId) -> BatchStatus | None:
        with translate_errors():
            doc = self.batches.find_one({"_id": batch_id}, {"status": 1})
        return BatchStatus(doc["status"]) if doc else None

    # --- rows -------------------------------------------------------------------------

    def claim(self, item_id: str, claim_id: str, now: datetime, lease_until: datetime) -> bool:
        """`pending -> processing` for this claim, or False if the row is no longer pending."""
        with translate_errors():
            result = self.items.update_one(
                {"_id": ObjectId(item_id), "status": ItemStatus.PENDING.value},
                {
                    "$set": {
                        "status": ItemStatus.PROCESSING.value,
                        "claimId": claim_id,
                        "leaseUntil": lease_until,
                        "startedAt": now,
                    },
                    "$inc": {"attempts": 1},
                },
            )
        return result.modified_count == 1

    def reset_expired(self, items: Sequence[BatchItem], now: datetime) -> int:
        """Rows stuck in `processing` past their lease (their step died) go back to `pending`."""
        ops = [
            UpdateOne(
                {"_id": ObjectId(i.id), "status": ItemStatus.PROCESSING.value, "leaseUntil": {"$lte": now}},
                {"$set": {"status": ItemStatus.PENDING.value, "claimId": None, "leaseUntil": None}},
            )
            for i in items
            if i.lease_until is None or i.lease_until <= now
        ]
        if not ops:
            return 0
        with translate_errors():
            return self.items.bulk_write(ops, ordered=False).modified_count

    def finish(self, item_id: str, claim_id: str, fields: dict[str, Any]) -> bool:
        """Record the row's final outcome if this claim still holds it."""
        with translate_errors():
            result = self.items.update_one(
                {"_id": ObjectId(item_id), "claimId": claim_id, "status": ItemStatus.PROCESSING.value},
                {"$set": {**fields, "leaseUntil": None}},
            )
        return result.modified_count == 1

    def release_for_retry(self, item_id: str, claim_id: str, error: ItemError, not_before: datetime, *,
                          attempts: int) -> bool:
        """Send the row back to `pending` after a retryable failure."""
        with translate_errors():
            result = self.items.update_one(
                {"_id": ObjectId(item_id), "claimId": claim_id, "status": ItemStatus.PROCESSING.value},
                {
                    "$set": {
                        "status": ItemStatus.PENDING.value,
                        "claimId": None,
                        "leaseUntil": None,
                        "notBefore": not_before,
                        "attempts": attempts,
                        "error": error.model_dump(),
                    }
                },
            )
        return result.modified_count == 1

    def cancel_item_if_pending(self, item_id: str, now: datetime) -> None:
        with translate_errors():
            self.items.update_one(
                {"_id": ObjectId(item_id), "status": ItemStatus.PENDING.value},
                {"$set": {"status": ItemStatus.CANCELLED.value, "finishedAt": now}},
            )
