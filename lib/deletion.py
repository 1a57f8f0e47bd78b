"""Deleting a finished batch: its rows, the interactions and chats they made, its files, then the batch.

Only the owner or an admin may, and only once the batch is final: a running batch has
steps that would write rows back (409 `BATCH_ACTIVE`; cancel it first). The batch
document goes last, so a deletion that dies half-way (a killed function, the database
or storage away) leaves a batch that is still listed and is deleted by running the same
request again: every step deletes by exact keys and deleting what is gone is a no-op.

A call works for a bounded time (SecantusDB removes about 400 rows a second, so a
100,000-row batch takes minutes): when time runs out it answers 202 with
`deleted: false` and the caller asks again; the batch carries `deletingAt` meanwhile
(each call stamps it anew), and the list and status say `deleting: true`.

A deletion nobody asks about again (the page closed, the function killed) is finished by
the sweep (`finish_stalled`): a `deletingAt` older than `STALLED_SECONDS` is taken over by
compare-and-set on that stamp, so two sweeps, or a sweep and the owner, never work the
same batch twice at once, and each sweep works within its own time budget.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId

from lib.batch_files import BatchFiles
from lib.batches import BatchService
from lib.errors import Conflict, NotFound
from lib.models import Batch, BatchStatus, User
from lib.store.removal import BatchRemovalStore

log = logging.getLogger("ai_answers.deletion")

CHUNK_ROWS = 500  # ~1.2 s of deletes a chunk on SecantusDB (rows, interactions, chats)
BUDGET_SECONDS = 8.0  # under the 10 s a Vercel function gets by default, with a chunk to spare
STALLED_SECONDS = 300  # the page asks again every few seconds: a stamp this old was left by nobody
SWEEP_BUDGET_SECONDS = 4.0  # of the sweep's 10 s, after its re-kicks and before retention
# The stamp a sweep leaves looks this much younger than stalled: the next run (every 5 minutes)
# takes the batch up again, while a sweep overlapping this one does not.
SWEEP_RETAKE_SECONDS = 60
_FINAL = [s.value for s in BatchStatus if s.is_final]


class BatchDeletion:
    def __init__(self, batches: BatchService, store: BatchRemovalStore, files: BatchFiles | None,
                 now: Callable[[], datetime], *, clock: Callable[[], float] = time.monotonic,
                 budget_seconds: float = BUDGET_SECONDS, chunk_rows: int = CHUNK_ROWS):
        self.batches = batches
        self.store = store
        self.files = files
        self.now = now
        self.clock = clock
        self.budget_seconds = budget_seconds
        self.chunk_rows = chunk_rows

    def delete(self, user: User, batch_id: str | None) -> tuple[dict[str, Any], bool]:
        """Delete what is left of the batch within the time budget; the answer, and whether it is all gone.

        Raises 400 for a missing or malformed id, 404 for a batch the user may not see,
        409 `BATCH_ACTIVE` for one that is not final, 503 when the database or storage is away.
        """
        batch = self.batches.owned(user, batch_id)
        oid = ObjectId(batch.id)
        if not batch.status.is_final:
            raise Conflict(f"The batch is {batch.status}; cancel it and wait until it has stopped to delete it.",
                           code="BATCH_ACTIVE", details={"status": batch.status.value})
        if not self.store.mark_deleting(oid, _FINAL, self.now()):
            raise NotFound("No such batch.", code="BATCH_NOT_FOUND")  # deleted by a concurrent call meanwhile
        return self._remove(batch, self.clock() + self.budget_seconds)

    def finish_stalled(self, budget_seconds: float = SWEEP_BUDGET_SECONDS) -> dict[str, list[str]]:
        """Go on with deletions that died half-way (the sweep), oldest first, while `budget_seconds` last.

        What is not finished in this run is stamped so that the next run picks it up again
        (about 1,600 rows a run on SecantusDB; a caller asking again goes faster).
        """
        deadline = self.clock() + budget_seconds
        now = self.now()
        retake = now - timedelta(seconds=STALLED_SECONDS - SWEEP_RETAKE_SECONDS)
        finished: list[str] = []
        paused: list[str] = []
        for oid, stamp in self.store.stalled_deletions(now - timedelta(seconds=STALLED_SECONDS)):
            if self.clock() > deadline:
                break
            if not self.store.take_over_deletion(oid, stamp, _FINAL, retake):
                continue  # asked about again meanwhile, gone, or running again
            batch = self.batches.store.get(str(oid))
            if batch is None:
                continue
            log.warning("sweep goes on with the deletion of batch=%s (left since %s)", batch.id, stamp.isoformat())
            _, done = self._remove(batch, deadline)
            (finished if done else paused).append(batch.id)
        return {"deletionsFinished": finished, "deletionsPaused": paused}

    def _remove(self, batch: Batch, deadline: float) -> tuple[dict[str, Any], bool]:
        """Delete the rows chunk after chunk until `deadline` (a `clock` reading), then the files and the batch."""
        oid = ObjectId(batch.id)
        deleted_rows = 0
        while True:
            refs = self.store.next_rows(oid, self.chunk_rows)
            if not refs.item_ids:
                break
            # The row last: while it stands, a re-run still finds what it pointed at.
            self.store.delete_interactions(refs.interaction_ids, refs.chat_ids, batch.uploader_user_id)
            self.store.delete_chats(refs.chat_ids, batch.uploader_user_id)
            deleted_rows += self.store.delete_items(refs.item_ids)
            if len(refs.item_ids) < self.chunk_rows:
                break  # that was the last of them
            if self.clock() > deadline:
                log.info("batch=%s deletion paused after %d rows (time budget)", batch.id, deleted_rows)
                return {"batchId": batch.id, "deleted": False, "deletedItems": deleted_rows}, False
        if self.files is not None:
            # Storage away: a 503, and the batch stays to be deleted again. The upload it was
            # made from goes too: its record has nothing left to prove once the batch is gone.
            self.files.forget_batch(oid, drop_uploads=True)
        self.store.delete_batch(oid)
        log.info("batch=%s deleted (%d rows in this call)", batch.id, deleted_rows)
        return {"batchId": batch.id, "deleted": True, "deletedItems": deleted_rows}, True
