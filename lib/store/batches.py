"""Batches and their items: every read is by `_id` or by exact keys on an index.

Rows move `pending -> processing -> succeeded | failed`, or back to `pending` for a
retry, or to `cancelled`; every move is a compare-and-set on the item's `_id` (plus its
claim id once claimed), so a stale or duplicated step can never overwrite a newer
outcome.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, ReturnDocument, UpdateOne
from pymongo.errors import BulkWriteError

from lib.models import Batch, BatchItem, BatchStatus, ItemError, ItemStatus
from lib.store.client import Store, translate_errors
from lib.store.ids import to_object_id

_INSERT_CHUNK = 1000
_ACTIVE = [BatchStatus.QUEUED.value, BatchStatus.PROCESSING.value]
# Statuses a step may take the lease in: rows to run, a cancel to settle, or rows to write.
_RUNNING = [*_ACTIVE, BatchStatus.CANCELLING.value, BatchStatus.INGESTING.value]
# Statuses a step keeps when it takes the lease.
_KEPT_BY_STEP = [BatchStatus.CANCELLING.value, BatchStatus.INGESTING.value]
_DUPLICATE_KEY = 11000
_FINAL = [BatchStatus.PROCESSED.value, BatchStatus.COMPLETED_WITH_ERRORS.value, BatchStatus.CANCELLED.value,
          BatchStatus.FAILED.value]
# What the engine needs of an item to plan and run it; the original row stays on disk.
_PLAN_FIELDS = {
    "batchId": 1, "rowIndex": 1, "chatKey": 1, "chatLabel": 1, "chatId": 1, "turn": 1, "question": 1,
    "referringUrl": 1, "status": 1, "attempts": 1, "interactionId": 1, "leaseUntil": 1, "notBefore": 1,
    "claimId": 1, "requestOpenUntil": 1, "trial": 1,
    "attemptsBefore": 1,
}
# What a baseline gives the batch compared with it (lib/evaluation.py), and what the summary reads.
_BASELINE_FIELDS = {"rowNumber": 1, "trial": 1, "question": 1, "status": 1, "answer": 1, "citationUrl": 1,
                    "result.answer": 1, "result.citationUrl": 1}
_SUMMARY_FIELDS = {"rowNumber": 1, "rowIndex": 1, "trial": 1, "status": 1, "blockedBy": 1, "result.answerType": 1,
                   "responseTimeMs": 1, "analysis": 1, "references.expectedOutcome": 1, "cost": 1, "error.code": 1,
                   "tokens.byStage": 1}
_COMPARE_FIELDS = {"rowNumber": 1, "rowIndex": 1, "trial": 1, "question": 1, "status": 1, "answer": 1,
                   "citationUrl": 1, "result.answer": 1, "result.citationUrl": 1, "analysis.similarity.label": 1,
                   "analysis.similarity.score": 1, "analysis.similarity.winner": 1}
_PROJECTIONS = {"baseline": _BASELINE_FIELDS, "summary": _SUMMARY_FIELDS, "compare": _COMPARE_FIELDS}


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
        """The user's batches not final yet: one exact lookup per status on (uploaderUserId, status)."""
        with translate_errors():
            return sum(self.batches.count_documents({"uploaderUserId": user_id, "status": status})
                       for status in _RUNNING)

    def items_with_status(self, batch_id: ObjectId, status: ItemStatus) -> list[BatchItem]:
        with translate_errors():
            docs = self.items.find({"batchId": batch_id, "status": status.value}, _PLAN_FIELDS)
            return [BatchItem.from_doc(d) for d in docs]

    def results(self, batch_id: ObjectId) -> Iterator[dict[str, Any]]:
        """Every item of the batch in input order (streamed from a cursor)."""
        with translate_errors():
            cursor = self.items.find({"batchId": batch_id}).sort("rowIndex", ASCENDING).batch_size(500)
            yield from cursor

    def rows_projected(self, batch_id: ObjectId, fields: str) -> Iterator[dict[str, Any]]:
        """Every item of the batch with a small projection, in one pass (`fields`: baseline, summary, compare)."""
        projection = _PROJECTIONS[fields]
        with translate_errors():
            yield from self.items.find({"batchId": batch_id}, projection).batch_size(5000)

    def rows_at(self, batch_id: ObjectId, row_indexes: Sequence[int], fields: str) -> list[dict[str, Any]]:
        """The batch's items at these row indexes (exact keys on (batchId, rowIndex)), with a small projection."""
        if not row_indexes:
            return []
        with translate_errors():
            return list(self.items.find({"batchId": batch_id, "rowIndex": {"$in": list(row_indexes)}},
                                        _PROJECTIONS[fields]))

    def references_of(self, item_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The references of rows just claimed, in one read (they are not carried by the plan)."""
        if not item_ids:
            return {}
        with translate_errors():
            docs = self.items.find({"_id": {"$in": [ObjectId(i) for i in item_ids]}}, {"references": 1})
            return {str(d["_id"]): dict(d.get("references") or {}) for d in docs}

    def cache_summary(self, batch_id: ObjectId, summary: dict[str, Any], completed_at: datetime | None) -> None:
        """Keep a final batch's summary (written only while the batch is still the run it describes)."""
        with translate_errors():
            self.batches.update_one({"_id": batch_id, "status": {"$in": _FINAL}, "completedAt": completed_at},
                                    {"$set": {"summaryCache": summary}})

    def original_of(self, item_id: str) -> dict[str, Any]:
        """The row's original cells (read only when a refused question must be erased from them)."""
        with translate_errors():
            doc = self.items.find_one({"_id": ObjectId(item_id)}, {"original": 1})
        return dict((doc or {}).get("original") or {})

    def has_items_with_status(self, batch_id: ObjectId, status: ItemStatus) -> bool:
        """Whether any row of the batch has this status (one indexed lookup, whatever the size)."""
        with translate_errors():
            return self.items.find_one({"batchId": batch_id, "status": status.value}, {"_id": 1}) is not None

    def count_by_status(self, batch_id: ObjectId) -> dict[str, int]:
        """Rows by status, counted from the items (the source of truth): once, at finalisation."""
        return self.tally(batch_id)[0]

    def tally(self, batch_id: ObjectId) -> tuple[dict[str, int], dict[str, float]]:
        """Rows by status and what the recorded rows spent, from the items, in one pass.

        The live totals grow in the flush's counter write, which comes after the rows'
        own; a step that dies between the two leaves them short, so finalisation writes
        these sums instead (as it does the counters).
        """
        with translate_errors():
            groups = list(self.items.aggregate([
                {"$match": {"batchId": batch_id}},
                {"$group": {"_id": "$status", "n": {"$sum": 1}, "input": {"$sum": "$cost.inputTokens"},
                            "output": {"$sum": "$cost.outputTokens"}, "usd": {"$sum": "$cost.usd"}}},
            ]))
        counts = {g["_id"]: g["n"] for g in groups}
        spent = {"inputTokens": sum(int(g.get("input") or 0) for g in groups),
                 "outputTokens": sum(int(g.get("output") or 0) for g in groups),
                 "estimatedCostUsd": round(sum(float(g.get("usd") or 0) for g in groups), 8)}
        return counts, spent

    def succeeded_interaction_ids(self, batch_id: ObjectId) -> list[ObjectId]:
        with translate_errors():
            docs = self.items.find(
                {"batchId": batch_id, "status": ItemStatus.SUCCEEDED.value}, {"interactionId": 1, "rowIndex": 1}
            )
            return [d["interactionId"] for d in sorted(docs, key=lambda d: d["rowIndex"])]

    def running_batches(self) -> list[Batch]:
        """Batches that are queued, processing or cancelling (for the sweep)."""
        with translate_errors():
            docs = [d for status in _RUNNING for d in self.batches.find({"status": status}, {"interactions": 0})]
        return [Batch.from_doc(d) for d in docs]

    def abandoned_creations(self, before: datetime) -> list[ObjectId]:
        with translate_errors():
            docs = self.batches.find({"status": BatchStatus.CREATING.value}, {"createdAt": 1})
            return [d["_id"] for d in docs if d["createdAt"] < before]

    # --- the step lease -------------------------------------------------------------

    def take_lease(self, batch_id: ObjectId, owner: str, now: datetime, until: datetime) -> Batch | None:
        """Take the batch's step lease if it is free or expired; bump its step number.

        A queued batch becomes `processing`; a cancelling one stays `cancelling` (its step
        settles the cancel), an ingesting one `ingesting` (its step writes rows).
        """
        lease = {"leaseOwner": owner, "leaseUntil": until, "heartbeatAt": now, "updatedAt": now}
        free = {"$or": [{"leaseUntil": None}, {"leaseUntil": {"$lte": now}}]}
        with translate_errors():
            doc = self.batches.find_one_and_update(
                {"_id": batch_id, "status": {"$in": _ACTIVE}, **free},
                {"$set": {**lease, "status": BatchStatus.PROCESSING.value}, "$min": {"startedAt": now},
                 "$inc": {"stepSeq": 1}},
                projection={"interactions": 0},
                return_document=ReturnDocument.AFTER,
            )
            if doc is None:
                doc = self.batches.find_one_and_update(
                    {"_id": batch_id, "status": {"$in": _KEPT_BY_STEP}, **free},
                    {"$set": lease, "$inc": {"stepSeq": 1}},
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
        self, batch_id: ObjectId, *, processed: int = 0, failed: int = 0, blocked: int = 0, cancelled: int = 0,
        now: datetime, input_tokens: int = 0, output_tokens: int = 0, cost_usd: float = 0.0,
    ) -> BatchStatus | None:
        """Add rows that just ended to the counters; return the batch's status.

        Each row is counted once, by the step whose compare-and-set ended it. A batch that
        is already final was recounted from its items, so nothing is added to it. The
        `interactions` list is written once, at finalisation (rewriting a growing array on
        every flush costs more than the whole row). Tokens and cost grow in the same write.
        """
        spent = {"inputTokens": input_tokens, "outputTokens": output_tokens, "estimatedCostUsd": cost_usd} \
            if input_tokens or output_tokens or cost_usd else {}
        with translate_errors():
            doc = self.batches.find_one_and_update(
                {"_id": batch_id, "status": {"$nin": _FINAL}},
                {
                    "$inc": {"processedItems": processed, "failedItems": failed, "blockedItems": blocked,
                             "cancelledItems": cancelled, **spent},
                    "$set": {"updatedAt": now, "heartbeatAt": now},
                },
                projection={"status": 1},
            )
            if doc is None:
                doc = self.batches.find_one({"_id": batch_id}, {"status": 1})
        return BatchStatus(doc["status"]) if doc else None

    def finalise(
        self,
        batch_id: ObjectId,
        *,
        counts: dict[str, int],
        interactions: list[ObjectId],
        status: BatchStatus,
        now: datetime,
        spent: dict[str, float] | None = None,
    ) -> None:
        """Write counters (and spend) recomputed from the items and the final status (once: only a running batch)."""
        update: dict[str, Any] = {
            **(spent or {}),
            "processedItems": counts.get(ItemStatus.SUCCEEDED.value, 0),
            "failedItems": counts.get(ItemStatus.FAILED.value, 0),
            "blockedItems": counts.get("blocked", 0),
            "cancelledItems": counts.get(ItemStatus.CANCELLED.value, 0),
            "interactions": interactions,
            "updatedAt": now,
            "status": status.value,
            "completedAt": now,
            "leaseOwner": None,
            "leaseUntil": None,
        }
        with translate_errors():
            self.batches.update_one({"_id": batch_id, "status": {"$in": _RUNNING}}, {"$set": update})

    def cancel(self, batch_id: ObjectId, now: datetime) -> bool:
        """Switch an active batch to `cancelling` (one write, whatever its size). False if it was not active.

        From then on no row is claimed; the batch's steps cancel its pending rows and
        make it `cancelled` once no row is in flight.
        """
        with translate_errors():
            result = self.batches.update_one(
                {"_id": batch_id, "status": {"$in": [*_ACTIVE, BatchStatus.INGESTING.value]}},
                {"$set": {"status": BatchStatus.CANCELLING.value, "cancelledAt": now, "updatedAt": now}},
            )
        return result.modified_count == 1

    def cancel_pending_chunk(self, batch_id: ObjectId, now: datetime, limit: int,
                             error: ItemError | None = None) -> int:
        """Cancel up to `limit` pending rows (each by compare-and-set on its `_id`); how many were.

        `error`: why, when it is not the user's cancel (the budget was reached).
        """
        extra = {"error": error.model_dump()} if error is not None else {}
        with translate_errors():
            ids = [d["_id"] for d in self.items.find(
                {"batchId": batch_id, "status": ItemStatus.PENDING.value}, {"_id": 1}).limit(limit)]
            if not ids:
                return 0
            ops = [UpdateOne({"_id": oid, "status": ItemStatus.PENDING.value},
                             {"$set": {"status": ItemStatus.CANCELLED.value, "finishedAt": now, **extra}})
                   for oid in ids]
            return self.items.bulk_write(ops, ordered=False).modified_count

    def claim_gate(self, batch_id: ObjectId) -> tuple[BatchStatus | None, float, float | None]:
        """The batch's status, estimated cost and budget: one read, before each claim."""
        with translate_errors():
            doc = self.batches.find_one({"_id": batch_id}, {"status": 1, "budgetUsd": 1, "estimatedCostUsd": 1})
        if doc is None:
            return None, 0.0, None
        return BatchStatus(doc["status"]), float(doc.get("estimatedCostUsd") or 0), doc.get("budgetUsd")

    def stop_for_budget(self, batch_id: ObjectId, now: datetime) -> bool:
        """The budget is reached: an active batch becomes `cancelling`, its reason BUDGET_EXCEEDED (once)."""
        with translate_errors():
            result = self.batches.update_one(
                {"_id": batch_id, "status": {"$in": _ACTIVE}},
                {"$set": {"status": BatchStatus.CANCELLING.value, "cancelledAt": now, "updatedAt": now,
                          "stopReason": "BUDGET_EXCEEDED"}},
            )
        return result.modified_count == 1

    def status_of(self, batch_id: ObjectId) -> BatchStatus | None:
        with translate_errors():
            doc = self.batches.find_one({"_id": batch_id}, {"status": 1})
        return BatchStatus(doc["status"]) if doc else None

    # --- rows -------------------------------------------------------------------------

    def claim(self, item_id: str, claim_id: str, now: datetime, lease_until: datetime) -> bool:
        """`pending -> processing` for this claim, or False if the row is no longer pending."""
        return item_id in self.claim_many([item_id], claim_id, now, lease_until)

    def claim_many(self, item_ids: Sequence[str], claim_id: str, now: datetime, lease_until: datetime) -> set[str]:
        """Claim rows in one bulk write, each by compare-and-set on its `_id`; the ids claimed."""
        ops = [
            UpdateOne(
                {"_id": ObjectId(item_id), "status": ItemStatus.PENDING.value},
                {"$set": {"status": ItemStatus.PROCESSING.value, "claimId": claim_id, "leaseUntil": lease_until,
                          "startedAt": now},
                 "$inc": {"attempts": 1}},
            )
            for item_id in item_ids
        ]
        return self._applied(ops, claim_id, {item_id: ItemStatus.PROCESSING.value for item_id in item_ids})

    def finish_many(self, outcomes: Sequence[tuple[str, dict[str, Any]]], claim_id: str) -> set[str]:
        """Record rows' final outcomes in one bulk write, each only if this claim still holds it."""
        ops = [
            UpdateOne({"_id": ObjectId(item_id), "claimId": claim_id, "status": ItemStatus.PROCESSING.value},
                      {"$set": {**fields, "leaseUntil": None}})
            for item_id, fields in outcomes
        ]
        return self._applied(ops, claim_id, {item_id: fields["status"] for item_id, fields in outcomes})

    def _applied(self, ops: list[UpdateOne], claim_id: str, expected: dict[str, str]) -> set[str]:
        """Which rows a bulk of compare-and-sets changed (`expected`: row id -> the status it leaves).

        When every operation matched (the usual case) that is all of them; otherwise each
        row is read back by `_id`: it changed if it now holds this claim and that status.
        """
        if not ops:
            return set()
        with translate_errors():
            result = self.items.bulk_write(ops, ordered=False)
            if result.modified_count == len(ops):
                return set(expected)
            changed = set()
            for item_id, status in expected.items():
                doc = self.items.find_one({"_id": ObjectId(item_id)}, {"claimId": 1, "status": 1})
                if doc is not None and doc.get("claimId") == claim_id and doc.get("status") == status:
                    changed.add(item_id)
            return changed

    def reset_orphans(self, items: Sequence[BatchItem], claim_id: str, *, wait_until_closed: datetime | None = None
                      ) -> int:
        """Rows left `processing` by an earlier step go back to `pending` (each by compare-and-set on its claim).

        Only the lease holder runs a batch's rows, and a step records its rows only while it
        holds the lease: once the lease has passed to `claim_id`, a row claimed by any other
        step can never be recorded by it, so it may run again at once rather than wait out
        its lease. With a pipeline that is not idempotent (`wait_until_closed` = now), a row
        whose request may still be running upstream stays as it is until that request's
        deadline (`BatchItem.open_until`): sending it again would ask the question twice.
        """
        ops = [
            UpdateOne({"_id": ObjectId(i.id), "status": ItemStatus.PROCESSING.value, "claimId": i.claim_id},
                      {"$set": {"status": ItemStatus.PENDING.value, "claimId": None, "leaseUntil": None,
                                "requestOpenUntil": None}})
            for i in items
            if i.claim_id != claim_id and not (
                wait_until_closed is not None and i.open_until is not None and i.open_until > wait_until_closed)
        ]
        if not ops:
            return 0
        with translate_errors():
            return self.items.bulk_write(ops, ordered=False).modified_count

    def release_for_retry(self, item_id: str, claim_id: str, error: ItemError, not_before: datetime, *,
                          attempts: int) -> bool:
        """Send the row back to `pending` after a retryable failure (or unclaimed: `attempts` as before)."""
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

    # --- retries in place (lib/retry.py) -----------------------------------------------

    def reopen_for_retry(self, batch_id: ObjectId, *, was: BatchStatus, completed_at: datetime | None,
                         counts: Mapping[str, int], runs: list[dict[str, Any]], budget_usd: float | None,
                         now: datetime) -> bool:
        """A final batch goes back to `queued`, its counters less the rows about to run again (one write).

        Compare-and-set on the status and `completedAt` it was read with: of two retries at
        once only one reopens the batch. Should the rows not follow (a crash right after),
        the next step finds none pending and finalises the batch from its items again.
        """
        update: dict[str, Any] = {
            "$set": {"status": BatchStatus.QUEUED.value, "completedAt": None, "cancelledAt": None, "stopReason": None,
                     "updatedAt": now, "leaseOwner": None, "leaseUntil": None, "runs": runs,
                     **({"budgetUsd": budget_usd} if budget_usd is not None else {})},
            "$inc": {"failedItems": -int(counts.get(ItemStatus.FAILED.value, 0)),
                     "cancelledItems": -int(counts.get(ItemStatus.CANCELLED.value, 0))},
            "$unset": {"summaryCache": ""},
        }
        with translate_errors():
            # Not a batch being deleted (`deletingAt`, lib/deletion.py): its rows are going.
            result = self.batches.update_one({"_id": batch_id, "status": was.value, "completedAt": completed_at,
                                              "deletingAt": None}, update)
        return result.modified_count == 1

    def requeue_rows(self, batch_id: ObjectId, statuses: Sequence[str], run: int, now: datetime) -> int:
        """Rows with these statuses go back to `pending`, their last outcome kept in `history`; how many did.

        One read of those rows and one bulk write, each row by compare-and-set on its status.
        Attempts are kept (they count every try); `attemptsBefore` lets this run have its own.
        """
        with translate_errors():
            docs = list(self.items.find({"batchId": batch_id, "status": {"$in": list(statuses)}},
                                        {"status": 1, "error": 1, "finishedAt": 1, "attempts": 1}))
            ops = [
                UpdateOne(
                    {"_id": d["_id"], "status": d["status"]},
                    {"$set": {"status": ItemStatus.PENDING.value, "error": None, "finishedAt": None, "notBefore": None,
                              "claimId": None, "leaseUntil": None, "attemptsBefore": int(d.get("attempts") or 0)},
                     "$push": {"history": {"run": run - 1, "status": d["status"], "error": d.get("error"),
                                           "finishedAt": d.get("finishedAt"), "requeuedAt": now}}},
                )
                for d in docs
            ]
            if not ops:
                return 0
            moved = 0
            for start in range(0, len(ops), _INSERT_CHUNK):
                moved += self.items.bulk_write(ops[start : start + _INSERT_CHUNK], ordered=False).modified_count
            return moved

    # --- ingestion by steps (lib/ingestion.py) -----------------------------------------

    def insert_items_once(self, docs: Sequence[dict[str, Any]]) -> None:
        """Insert rows, skipping those already there (a chunk written again after a crash).

        The unique (batchId, rowIndex) index tells: a row inserted by an earlier attempt is
        kept as it is, and only the missing ones are added.
        """
        with translate_errors():
            for start in range(0, len(docs), _INSERT_CHUNK):
                try:
                    self.items.insert_many(docs[start : start + _INSERT_CHUNK], ordered=False)
                except BulkWriteError as exc:
                    errors = exc.details.get("writeErrors", [])
                    if exc.details.get("writeConcernErrors") or any(e.get("code") != _DUPLICATE_KEY for e in errors):
                        raise

    def advance_ingest(self, batch_id: ObjectId, owner: str, *, done: int, upto: int, inserted: int, blocked: int,
                       now: datetime, warnings: Sequence[dict[str, Any]] = (), keep_warnings: int = 100) -> bool:
        """Move the ingestion's mark from `done` to `upto` (once: compare-and-set on the mark and the lease).

        The chunk's row warnings join the batch's in the same write (the first `keep_warnings`
        kept, all counted), so a chunk written again after a crash adds none twice.
        """
        update: dict[str, Any] = {"$set": {"ingest.nextIndex": upto, "heartbeatAt": now, "updatedAt": now},
                                  "$inc": {"ingestedItems": inserted, "blockedItems": blocked}}
        if warnings:
            update["$push"] = {"warnings": {"$each": list(warnings), "$slice": keep_warnings}}
            update["$inc"]["warningCount"] = len(warnings)
        with translate_errors():
            result = self.batches.update_one(
                {"_id": batch_id, "leaseOwner": owner, "ingest.nextIndex": done}, update)
        return result.modified_count == 1

    def finish_ingest(self, batch_id: ObjectId, owner: str, now: datetime) -> BatchStatus | None:
        """Every row is written: an ingesting batch becomes `queued` (a cancelled one stays `cancelling`)."""
        with translate_errors():
            doc = self.batches.find_one_and_update(
                {"_id": batch_id, "leaseOwner": owner, "status": BatchStatus.INGESTING.value},
                {"$set": {"status": BatchStatus.QUEUED.value, "updatedAt": now}, "$unset": {"ingest": ""}},
                projection={"status": 1}, return_document=ReturnDocument.AFTER,
            )
            if doc is None:
                doc = self.batches.find_one_and_update(
                    {"_id": batch_id, "leaseOwner": owner, "status": BatchStatus.CANCELLING.value},
                    {"$set": {"updatedAt": now}, "$unset": {"ingest": ""}},
                    projection={"status": 1}, return_document=ReturnDocument.AFTER,
                )
        return BatchStatus(doc["status"]) if doc else None

    # --- files in object storage (lib/batch_files.py) ----------------------------------

    def record_export(self, batch_id: ObjectId, fmt: str, export: dict[str, Any]) -> None:
        with translate_errors():
            self.batches.update_one({"_id": batch_id}, {"$set": {f"exports.{fmt}": export}})

    def mark_files_deleted(self, batch_id: ObjectId, *, source: bool, exports: Sequence[str], now: datetime) -> None:
        """Record that retention deleted the batch's source and/or these exports."""
        update: dict[str, Any] = {}
        if source:
            update["$set"] = {"sourceDeletedAt": now}
        if exports:
            update.setdefault("$set", {})["exportsDeletedAt"] = now
            update["$unset"] = {f"exports.{fmt}": "" for fmt in exports}
        if not update:
            return
        with translate_errors():
            self.batches.update_one({"_id": batch_id}, update)
