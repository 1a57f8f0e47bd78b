"""Every request a row sends to a deployed AI Answers, recorded on the row (the endpoint is not idempotent).

Before a request goes out, `open` writes the attempt on the item (number, start, the
request's deadline as `requestOpenUntil`), by compare-and-set on the claim: a row whose
claim was lost sends nothing. When the request ends, `close` writes its outcome and the
conversation's state after it (`upstream`, see `lib.pipelines.conversation`). A step
that dies in between leaves the open attempt and its deadline behind, and the row is
not tried again before that deadline (`BatchStore.reset_orphans`).

Attempts are kept in a document keyed by request id (`upstreamAttempts.<id>`), so that
opening and closing one are each a single `$set` by `_id`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import DESCENDING

from lib.models import ItemStatus
from lib.pipelines.conversation import ConversationState
from lib.store.client import Store, translate_errors

# Statuses an earlier turn holds once it ran: its state is the conversation's after it.
_RAN = (ItemStatus.SUCCEEDED.value, ItemStatus.BLOCKED.value, ItemStatus.FAILED.value,
        ItemStatus.PROCESSING.value, ItemStatus.PENDING.value)


class AttemptLog:
    def __init__(self, store: Store):
        self.items = store.batch_items

    def open(self, item_id: str, claim_id: str, attempt: int, now: datetime, open_until: datetime) -> str | None:
        """Record a request about to be sent; its id, or None when the claim is no longer this step's."""
        request_id = f"a{attempt}-{uuid.uuid4().hex[:8]}"
        record = {"attempt": attempt, "startedAt": now, "openUntil": open_until, "outcome": "open"}
        with translate_errors():
            result = self.items.update_one(
                {"_id": ObjectId(item_id), "claimId": claim_id, "status": ItemStatus.PROCESSING.value},
                {"$set": {f"upstreamAttempts.{request_id}": record, "requestOpenUntil": open_until}},
            )
        return request_id if result.modified_count == 1 else None

    def close(self, item_id: str, request_id: str, outcome: str, now: datetime, *, request_over: bool,
              state: ConversationState | None = None) -> None:
        """Record how the request ended (`answered`, `blocked`, `failed:CODE`, `retry:CODE`) and the state after it.

        `request_over`: the deployment is done with it (the stream ended, or it was refused);
        otherwise its deadline stays on the row.
        """
        update: dict[str, Any] = {f"upstreamAttempts.{request_id}.outcome": outcome,
                                  f"upstreamAttempts.{request_id}.endedAt": now}
        if request_over:
            update["requestOpenUntil"] = None
        if state is not None:
            update["upstream"] = state.to_doc()
        with translate_errors():
            self.items.update_one({"_id": ObjectId(item_id)}, {"$set": update})

    def state_before(self, batch_id: str, chat_key: str, turn: int) -> ConversationState | None:
        """The conversation's state after its latest turn before `turn` (None: nothing was sent yet).

        Read only when a step takes a conversation up with no state in memory. The query
        names only the (batchId, chatKey, turn) index's fields: with the status and state
        conditions in it too, SecantusDB scans the whole collection instead. A conversation
        has a few turns, so they are filtered here, newest first.
        """
        query = {"batchId": ObjectId(batch_id), "chatKey": chat_key, "turn": {"$lt": turn}}
        with translate_errors():
            for doc in self.items.find(query, {"status": 1, "upstream": 1}).sort("turn", DESCENDING):
                if doc.get("status") in _RAN and doc.get("upstream"):
                    return ConversationState.from_doc(doc["upstream"])
        return None
