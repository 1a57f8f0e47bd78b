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
- the results endpoint serves every row, in order, with the stored status;
- evaluation runs: the batch has exactly file rows × trials items, each question once in
  every trial, each trial in a chat of its own; every succeeded or blocked row holds the
  analysis of exactly the analyzers that apply to it (each with all of its columns, none
  lost to a crash or added twice by a redelivery), stored with the row and served as
  stored, and no failed or cancelled row holds one; the batch's token and cost totals are
  the sums of its rows' recorded tokens and cost (a row counted once, whoever recorded it);
- object storage (`check_storage`): every object has its record, every source and
  recorded export is there whole, and every final export in the bucket holds every row
  (an export is complete or absent).
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
_ITEM_FIELDS = {"rowIndex": 1, "status": 1, "startedAt": 1, "interactionId": 1, "chatKey": 1, "chatId": 1,
                "trial": 1, "rowNumber": 1, "analysis": 1, "cost": 1}
COST_TOLERANCE_USD = 1e-6  # the batch adds each row's cost rounded to the micro-dollar


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
    analysed: int = 0  # rows holding an analysis (evaluation runs)
    input_tokens: int = 0  # the rows' recorded tokens and cost, added up
    output_tokens: int = 0
    cost_usd: float = 0.0
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations


def check_batch(db: Database, batch: dict[str, Any], cancel_acked_at: datetime | None,
                cancel_requested: bool, results: list[dict[str, Any]] | None,
                file_rows: int | None = None) -> BatchCheck:
    """Check one batch document against its rows and interactions (`file_rows`: the uploaded file's questions)."""
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
    _trials(check, batch, items, file_rows)
    _analyses(check, batch, items, results)
    _spending(check, batch, items)
    return check


def _trials(check: BatchCheck, batch: dict[str, Any], items: list[dict[str, Any]], file_rows: int | None) -> None:
    """Exactly file rows × trials items: each question once in every trial, each trial in a chat of its own."""
    trials = int(batch.get("trials") or 1)
    if file_rows is not None and check.total != file_rows * trials:
        check.violations.append(f"trials: totalItems={check.total}, but the file has {file_rows} questions x {trials}")
    by_question: dict[Any, list[dict[str, Any]]] = {}
    for item in items:
        by_question.setdefault(item.get("rowNumber", item["rowIndex"] // trials), []).append(item)
    wanted = list(range(1, trials + 1))
    wrong = [n for n, group in by_question.items() if sorted(int(i.get("trial") or 1) for i in group) != wanted]
    if wrong:
        check.violations.append(f"trials: {len(wrong)} questions are not run exactly once in each of {trials} trials "
                                f"(first: row {min(wrong)})")
    if file_rows is not None and len(by_question) != file_rows:
        check.violations.append(f"trials: items of {len(by_question)} questions, the file has {file_rows}")
    shared = [n for n, group in by_question.items() if len({i["chatId"] for i in group}) != len(group)]
    if shared:
        check.violations.append(f"trials: {len(shared)} questions share a chat between trials")


def _analyses(check: BatchCheck, batch: dict[str, Any], items: list[dict[str, Any]],
              results: list[dict[str, Any]] | None) -> None:
    """Each ended row holds exactly the analyses that apply to it, whole, and the results serve them as stored."""
    from lib.analyzers import MODULES  # the analyzers' stored prefixes and columns
    from lib.evaluation import flat

    names = [name for name in batch.get("analyzers") or [] if name in MODULES]
    expected = {
        "succeeded": {MODULES[n].PREFIX: MODULES[n].COLUMNS for n in names},
        "blocked": {MODULES[n].PREFIX: MODULES[n].COLUMNS for n in names if not MODULES[n].NEEDS_MODEL},
    }
    wrong, stray = [], []
    for item in items:
        stored = item.get("analysis") or {}
        if item["status"] not in expected:
            if stored:
                stray.append(item)
            continue
        want = expected[item["status"]]
        check.analysed += bool(stored)
        if not _whole(stored, want):
            wrong.append(item)
    if wrong:
        first = wrong[0]
        check.lost += len(wrong)
        check.violations.append(f"{len(wrong)} ended rows do not hold exactly the analyses of "
                                f"{', '.join(names) or 'no analyzer'} (first: row {first['rowIndex']}, "
                                f"{first['status']}, holds {sorted(first.get('analysis') or {})})")
    if stray:
        check.violations.append(f"{len(stray)} failed or cancelled rows hold an analysis (first: row "
                                f"{stray[0]['rowIndex']})")
    if names and results is not None and len(results) == len(items):
        columns = [c for n in names for c in MODULES[n].COLUMNS]
        differ = [i for i, r in zip(items, results) if any(r.get(c) != flat(i.get("analysis")).get(c) for c in columns)]
        if differ:
            check.violations.append(f"the results endpoint serves {len(differ)} rows' analyses otherwise than stored "
                                    f"(first: row {differ[0]['rowIndex']})")


def _whole(stored: dict[str, Any], want: dict[str, tuple[str, ...]]) -> bool:
    """Exactly the wanted analyzers, each with every one of its cells, or its error cell alone (the
    engine's mark when the analysis itself raised, lib/evaluation.py `analyse_row`)."""
    if set(stored) != set(want):
        return False
    for prefix, columns in want.items():
        cells = stored[prefix]
        names = {c.split(".", 1)[1] for c in columns}
        if not isinstance(cells, dict) or (set(cells) != names and not (set(cells) == {"error"} and cells["error"])):
            return False
    return True


def _spending(check: BatchCheck, batch: dict[str, Any], items: list[dict[str, Any]]) -> None:
    """The batch's token and cost totals are the sums of its rows' recorded tokens and cost."""
    costs = [i.get("cost") or {} for i in items]
    check.input_tokens = sum(int(c.get("inputTokens") or 0) for c in costs)
    check.output_tokens = sum(int(c.get("outputTokens") or 0) for c in costs)
    # Finalisation writes the exact sum (the live total grows in micro-dollars per flush).
    check.cost_usd = round(sum(float(c.get("usd") or 0) for c in costs), 8)
    for field_name, total in (("inputTokens", check.input_tokens), ("outputTokens", check.output_tokens)):
        if int(batch.get(field_name) or 0) != total:
            check.violations.append(f"{field_name}={batch.get(field_name) or 0}, but its rows recorded {total}")
    recorded = float(batch.get("estimatedCostUsd") or 0)
    if abs(recorded - check.cost_usd) > COST_TOLERANCE_USD:
        check.violations.append(f"estimatedCostUsd={recorded:.6f}, but its rows recorded {check.cost_usd:.6f}")


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


# --- object storage ---------------------------------------------------------------------------


@dataclass
class StorageCheck:
    """What is in the bucket against what the store says of it, once every batch is final."""

    objects: int = 0
    exports_checked: int = 0  # stored exports read back and counted
    orphans: int = 0  # objects of no batch in the store (a failed create's, recorded: retention deletes them)
    open_multipart: int = 0  # multipart uploads left open (an abort that met an outage; a bucket rule ends them)
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations


def check_storage(db: Database, storage: Any, batches: list[dict[str, Any]]) -> StorageCheck:
    """Nothing forgotten in storage, no half-made source or export.

    - every object in the bucket has its record (`storage_objects`): none is forgotten there;
    - every batch's source is there, of the size it recorded;
    - every export a batch records is there, of its size, with every row; and every
      final export in the bucket (recorded or not: its record may have met an outage)
      holds every row of its batch. An export is complete or absent.
    """
    from bench.campaign.storage import count_rows  # the campaign's reader of exported files

    check = StorageCheck()
    keys = storage.keys("")
    check.objects = len(keys)
    recorded = {d["_id"] for d in db.storage_objects.find({"_id": {"$in": keys}}, {"_id": 1})} if keys else set()
    unrecorded = [k for k in keys if k not in recorded]
    if unrecorded:
        check.violations.append(f"{len(unrecorded)} objects in storage have no record (first: {unrecorded[0]})")
    by_id = {str(b["_id"]): b for b in batches}
    for key in keys:
        parts = key.split("/")
        if len(parts) < 4 or parts[1] != "batches":
            continue
        batch = by_id.get(parts[2])
        if batch is None:
            check.orphans += 1
            continue
        name = parts[-1]
        if parts[3] == "exports" and name.startswith("results."):
            fmt = name.rsplit(".", 1)[-1]
            rows = count_rows(fmt, storage.client.get_object(Bucket=storage.bucket, Key=key)["Body"].read())
            check.exports_checked += 1
            if rows != batch.get("totalItems", 0):
                check.violations.append(f"{batch.get('name')}: its stored {fmt} export holds {rows} rows of "
                                        f"{batch.get('totalItems', 0)}")
    present = set(keys)
    for batch in batches:
        label = batch.get("name") or str(batch["_id"])
        source = batch.get("source")
        if source and not batch.get("sourceDeletedAt"):
            if source["key"] not in present:
                check.violations.append(f"{label}: its source {source['key']} is not in storage")
            elif storage.head(source["key"]).size != source.get("bytes"):
                check.violations.append(f"{label}: its stored source is not of the size it recorded")
        for fmt, export in (batch.get("exports") or {}).items():
            if export["key"] not in present:
                check.violations.append(f"{label}: its recorded {fmt} export is not in storage")
            elif storage.head(export["key"]).size != export.get("bytes"):
                check.violations.append(f"{label}: its stored {fmt} export is not of the size it recorded")
    check.open_multipart = len(storage.client.list_multipart_uploads(Bucket=storage.bucket).get("Uploads", []))
    return check
