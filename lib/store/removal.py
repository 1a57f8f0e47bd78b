"""Removing a finished batch's documents: its rows, the interactions and chats they made, the batch.

Every read and every delete is by an exact key on an index (`batchId`, `_id`, `chatId`;
a range of the sparse `deletingAt`) and in chunks the caller chooses: SecantusDB scans
on anything else, and one `delete_many` over a batch of 100,000 rows would hold a
function past its time budget.
Deleting what is already gone is a no-op, so a removal that died half-way is run again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from bson import ObjectId
from pymongo import ASCENDING

from lib.store.client import Store, translate_errors

# What a removal needs of a row: what it points at, nothing of its text.
_REFS = {"_id": 1, "chatId": 1, "interactionId": 1}


@dataclass(frozen=True)
class RowRefs:
    """One chunk of a batch's rows: their ids, and the interactions and chats they made."""

    item_ids: list[ObjectId]
    interaction_ids: list[ObjectId]
    chat_ids: list[str]


class BatchRemovalStore:
    def __init__(self, store: Store):
        self.batches = store.batches
        self.items = store.batch_items
        self.interactions = store.interactions
        self.chats = store.chats

    def next_rows(self, batch_id: ObjectId, limit: int) -> RowRefs:
        """Up to `limit` rows of the batch still in the store (any of them: they all go)."""
        with translate_errors():
            docs = list(self.items.find({"batchId": batch_id}, _REFS).limit(limit))
        chats = {d["chatId"] for d in docs if isinstance(d.get("chatId"), str)}
        return RowRefs(item_ids=[d["_id"] for d in docs],
                       interaction_ids=[d["interactionId"] for d in docs if d.get("interactionId") is not None],
                       chat_ids=sorted(chats))

    def delete_interactions(self, interaction_ids: Sequence[ObjectId], chat_ids: Sequence[str], owner_id: str) -> int:
        """Delete the rows' interactions, and every other turn of the batch's chats (the owner's only)."""
        deleted = 0
        with translate_errors():
            if interaction_ids:
                deleted += self.interactions.delete_many({"_id": {"$in": list(interaction_ids)}}).deleted_count
            if chat_ids:  # a chat/message that continued one of the batch's conversations
                deleted += self.interactions.delete_many(
                    {"chatId": {"$in": list(chat_ids)}, "userId": owner_id}).deleted_count
        return deleted

    def delete_chats(self, chat_ids: Sequence[str], owner_id: str) -> int:
        """Delete the chats the batch made (filtered on the owner: a batch never removes anybody else's)."""
        if not chat_ids:
            return 0
        with translate_errors():
            return self.chats.delete_many({"_id": {"$in": list(chat_ids)}, "userId": owner_id}).deleted_count

    def delete_items(self, item_ids: Sequence[ObjectId]) -> int:
        if not item_ids:
            return 0
        with translate_errors():
            return self.items.delete_many({"_id": {"$in": list(item_ids)}}).deleted_count

    def mark_deleting(self, batch_id: ObjectId, statuses: Sequence[str], now: datetime) -> bool:
        """Stamp `deletingAt` on a batch in one of `statuses` (a compare-and-set); False if it is not."""
        with translate_errors():
            result = self.batches.update_one({"_id": batch_id, "status": {"$in": list(statuses)}},
                                             {"$set": {"deletingAt": now}})
        return result.matched_count == 1

    def stalled_deletions(self, before: datetime, limit: int = 50) -> list[tuple[ObjectId, datetime]]:
        """Batches whose deletion was last stamped before `before`, oldest first (the sparse `deletingAt` index)."""
        with translate_errors():
            docs = self.batches.find({"deletingAt": {"$lt": before}}, {"deletingAt": 1}).sort(
                "deletingAt", ASCENDING).limit(limit)
            return [(d["_id"], d["deletingAt"]) for d in docs]

    def take_over_deletion(self, batch_id: ObjectId, stamp: datetime, statuses: Sequence[str], now: datetime) -> bool:
        """Stamp `deletingAt` anew if it is still `stamp` (nobody took the deletion up meanwhile) and the batch final."""
        with translate_errors():
            result = self.batches.update_one({"_id": batch_id, "deletingAt": stamp, "status": {"$in": list(statuses)}},
                                             {"$set": {"deletingAt": now}})
        return result.modified_count == 1

    def delete_batch(self, batch_id: ObjectId) -> bool:
        """Delete the batch document itself (last: until then a removal can be run again)."""
        with translate_errors():
            return self.batches.delete_one({"_id": batch_id}).deleted_count == 1
