"""The engine's invariants, checked from MongoDB once every batch has reached a final state.

Reads are by `_id` or exact indexed keys (`batchId`, `chatId`), as SecantusDB needs:
- every row is in a final state, and there is one row per input row;
- the counters are those of the rows: `processedItems` = succeeded, `failedItems` =
  failed, `cancelledItems` = cancelled, and they add up to `totalItems`;
- every succeeded row has exactly one interaction, in its own chat, and the batch's
  `interactions` lists exactly those, once each; no other interaction is in the batch's chats;
- no row started after the batch's cancel was acknowledged;
- the final status agrees with the rows; the turns of a conversation were answered in row order,
  each with the conversation's previous answered turn as its history (a follow-up's search
  query carries the previous question);
- the results endpoint serves every row, in order, with the stored status.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo.database import Database

FINAL_ROW = ("succeeded", "blocked", "failed", "cancelled")
FINAL_BATCH = ("processed", "completed_with_errors", "cancelled", "failed")
_ITEM_FIELDS = {"rowIndex": 1, "status": 1, "startedAt": 1, "interactionId": 1, "chatKey": 1, "chatId": 1}


@dataclass
class BatchCheck:
    batch_id: str
    name: str
    status: str
    total: int
    rows: Counter[str] = field(default_factory=Counter)  # by status
    lost: int = 0  # rows missing, not final, or succeeded without their interaction
    duplicates: int = 0  # extra interactions, ids listed twice
    started_after_cancel: int = 0
    stray_interactions: int = 0  # answers written for rows that ended failed or cancelled (reported, not counted)
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations


def check_batch(db: Database, batch: dict[str, Any], cancel_acked_at: datetime | None,
                cancel_requested: bool, results: list[dict[str, Any]] | None) -> BatchCheck:
    """Check one batch document against its rows and interactions."""
    oid = batch["_id"]
    check = BatchCheck(str(oid), batch.get("name", ""), batch["status"], batch.get("totalItems", 0))
    items = sorted(db.batch_items.find({"batchId": oid}, _ITEM_FIELDS), key=lambda i: i["rowIndex"])
    check.rows = Counter(i["status"] for i in items)
    _rows_final(check, items)
    if check.status in FINAL_BATCH:
        _counters(check, batch)
        _final_status(check, cancel_requested)
    _interactions(db, check, batch, items)
    if cancel_acked_at is not None:
        late = [i for i in items if i.get("startedAt") is not None and i["startedAt"] > cancel_acked_at]
        check.started_after_cancel = len(late)
        if late:
            check.violations.append(f"{len(late)} rows started after the cancel was acknowledged "
                                    f"(first: row {late[0]['rowIndex']})")
    _results(check, items, results)
    return check


def _rows_final(check: BatchCheck, items: list[dict[str, Any]]) -> None:
    if check.status not in FINAL_BATCH:
        check.violations.append(f"batch is still {check.status}")
    missing = check.total - len(items)
    if missing > 0:
        check.lost += missing
        check.violations.append(f"{missing} rows missing")
    elif missing < 0:
        check.violations.append(f"{-missing} rows more than totalItems")
    unfinished = sum(n for status, n in check.rows.items() if status not in FINAL_ROW)
    if unfinished:
        check.lost += unfinished
        states = ", ".join(f"{n} {s}" for s, n in check.rows.items() if s not in FINAL_ROW)
        check.violations.append(f"rows not in a final state: {states}")


def _counters(check: BatchCheck, batch: dict[str, Any]) -> None:
    pairs = (("processedItems", "succeeded"), ("blockedItems", "blocked"), ("failedItems", "failed"),
             ("cancelledItems", "cancelled"))
    for counter, status in pairs:
        if batch.get(counter, 0) != check.rows[status]:
            check.violations.append(f"{counter}={batch.get(counter, 0)} but {check.rows[status]} rows {status}")
    added = sum(batch.get(counter, 0) for counter, _ in pairs)
    if added != check.total:
        check.violations.append(f"processed+blocked+failed+cancelled={added} != totalItems={check.total}")


def _final_status(check: BatchCheck, cancel_requested: bool) -> None:
    if check.status == "cancelled":
        if not cancel_requested:
            check.violations.append("batch is cancelled but nobody cancelled it")
        return
    expected = "completed_with_errors" if check.rows["failed"] else "processed"
    if check.rows["cancelled"]:
        check.violations.append(f"{check.rows['cancelled']} rows cancelled in a batch that is {check.status}")
    elif check.status != expected:
        check.violations.append(f"status {check.status}, but its rows make it {expected}")


def _interactions(db: Database, check: BatchCheck, batch: dict[str, Any], items: list[dict[str, Any]]) -> None:
    by_id = {i["interactionId"]: i for i in items}
    found = {d["_id"]: d for d in db.interactions.find(
        {"_id": {"$in": list(by_id)}},
        {"chatId": 1, "createdAt": 1, "question.redactedText": 1, "historyIds": 1},
    )}
    succeeded = [i for i in items if i["status"] == "succeeded"]
    without = [i for i in succeeded if i["interactionId"] not in found]
    if without:
        check.lost += len(without)
        check.violations.append(f"{len(without)} succeeded rows have no interaction (first: row "
                                f"{without[0]['rowIndex']})")
    wrong_chat = [i for i in succeeded if i["interactionId"] in found
                  and found[i["interactionId"]]["chatId"] != i["chatId"]]
    if wrong_chat:
        check.violations.append(f"{len(wrong_chat)} interactions are in another chat than their row's")
    check.stray_interactions = sum(1 for i in items if i["status"] != "succeeded" and i["interactionId"] in found)
    # Any other interaction in the batch's chats is a row answered twice.
    chats = sorted({i["chatId"] for i in items})
    extra = [d["_id"] for d in db.interactions.find({"chatId": {"$in": chats}}, {"_id": 1}) if d["_id"] not in by_id]
    if extra:
        check.duplicates += len(extra)
        check.violations.append(f"{len(extra)} interactions in the batch's chats belong to no row")
    listed = Counter(batch.get("interactions") or [])
    twice = sum(n - 1 for n in listed.values() if n > 1)
    if twice:
        check.duplicates += twice
        check.violations.append(f"{twice} ids listed more than once in `interactions`")
    expected = {i["interactionId"] for i in succeeded}
    if check.status in FINAL_BATCH and set(listed) != expected:
        check.violations.append(f"`interactions` lacks {len(expected - set(listed))} succeeded rows and lists "
                                f"{len(set(listed) - expected)} others")
    _conversation_order(check, succeeded, found)
    _conversation_history(check, found)


def _conversation_order(check: BatchCheck, succeeded: list[dict[str, Any]], found: dict[ObjectId, dict]) -> None:
    turns: dict[str, list[datetime]] = {}
    for item in succeeded:  # in row order
        doc = found.get(item["interactionId"])
        if doc is not None:
            turns.setdefault(item["chatKey"], []).append(doc["createdAt"])
    out_of_order = [key for key, times in turns.items() if any(b < a for a, b in zip(times, times[1:]))]
    if out_of_order:
        check.violations.append(f"{len(out_of_order)} conversations answered out of row order ({out_of_order[0]})")


def _conversation_history(check: BatchCheck, found: dict[ObjectId, dict]) -> None:
    """Each answer was asked with the chat's earlier answers as history: the interaction
    records the ids it was given (`historyIds`), which must be the chat's previous answered
    turns, in order (a first turn has none)."""
    by_chat: dict[str, list[dict]] = {}
    for doc in found.values():
        by_chat.setdefault(doc["chatId"], []).append(doc)
    wrong = 0
    for docs in by_chat.values():
        earlier: list[ObjectId] = []
        for doc in sorted(docs, key=lambda d: d["createdAt"]):
            given = list(doc.get("historyIds") or [])
            wrong += bool(given != earlier[len(earlier) - len(given):] or (earlier and not given))
            earlier.append(doc["_id"])
    if wrong:
        check.violations.append(f"{wrong} turns were not given their conversation's previous turn as history")


def _results(check: BatchCheck, items: list[dict[str, Any]], results: list[dict[str, Any]] | None) -> None:
    if results is None:
        check.violations.append("the results endpoint did not serve the batch")
    elif [r.get("status") for r in results] != [i["status"] for i in items]:
        check.violations.append(f"the results endpoint serves {len(results)} rows that differ from the store's "
                                f"{len(items)}")
