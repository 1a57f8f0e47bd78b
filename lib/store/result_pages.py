"""Reads of a batch's rows for one page of the table (lib/results_page.py): exact keys and projections only.

`(batchId, rowIndex)` is indexed, so a range of row indexes is one index walk; every other
read is by `batchId` (indexed) with a small projection, or by `_id`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING

from lib.store.client import Store, translate_errors


class ResultPageStore:
    def __init__(self, store: Store):
        self.items = store.batch_items

    def count(self, batch_id: ObjectId) -> int:
        with translate_errors():
            return self.items.count_documents({"batchId": batch_id})

    def by_row_index(self, batch_id: ObjectId, low: int, high: int) -> list[dict[str, Any]]:
        """The whole rows whose index is in [low, high), in row order."""
        with translate_errors():
            return list(self.items.find({"batchId": batch_id, "rowIndex": {"$gte": low, "$lt": high}})
                        .sort("rowIndex", ASCENDING))

    def in_order(self, batch_id: ObjectId, offset: int, limit: int, *, descending: bool = False
                 ) -> list[dict[str, Any]]:
        """The whole rows at these places in row order: the `(batchId, rowIndex)` index walked with skip."""
        with translate_errors():
            return list(self.items.find({"batchId": batch_id})
                        .sort("rowIndex", DESCENDING if descending else ASCENDING).skip(offset).limit(limit))

    def fields_of_all(self, batch_id: ObjectId, fields: Sequence[str]) -> list[dict[str, Any]]:
        """These fields (and `_id`) of every row of the batch, in one streamed read."""
        with translate_errors():
            return list(self.items.find({"batchId": batch_id}, dict.fromkeys(fields, 1)).batch_size(5000))

    def by_ids(self, ids: Sequence[ObjectId]) -> dict[ObjectId, dict[str, Any]]:
        """The whole rows with these ids."""
        if not ids:
            return {}
        with translate_errors():
            return {d["_id"]: d for d in self.items.find({"_id": {"$in": list(ids)}})}
