"""Ingestion by steps: the rows of a big upload are written in chunks by queued steps.

create checks the whole file first (`scan_upload`: every error a one-piece upload would
get) and answers 202 with the batch `ingesting`. Each step of such a batch comes here
from the engine, lease taken the same way: it reads the source from storage, takes the
next conversations in file order and writes their rows in bulk, moving the batch's mark
(`ingest.nextIndex`) by compare-and-set after each chunk, until its time is up; then it
publishes the next step. Once every row is written the batch is `queued` (or stays
`cancelling` if it was cancelled meanwhile, and the engine then settles the cancel) and
runs like any other.

A chunk holds whole conversations (a conversation belongs to the chunk of its first row),
so its chat, its turns and its screening are decided as in a one-piece upload. Row
indexes are the rows' places in the file, and chat ids are derived from the batch's own
secret salt and the conversation: a chunk written again after a crash gives the same
rows, and those already there are kept (the unique (batchId, rowIndex) index).

A batch compared with a baseline gets, chunk by chunk, the baseline's answers at the same
places (read by exact keys, never written; create checked the two hold as many
questions): a question that differs, or a baseline that was deleted or runs again
meanwhile, fails the ingestion (BASELINE_MISMATCH, BASELINE_NOT_FOUND, BASELINE_NOT_FINAL).
A row's warning (an expected outcome that is neither block nor answer) is kept on the
batch with the chunk's mark, once.

All or nothing: a source that is gone or no longer reads as it did at upload, or a
baseline that does not match, deletes the batch, its rows and its files; storage or the database away is a 503 and QStash
redelivers; the sweep removes an ingestion that nobody moved for an hour.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from bson import ObjectId

from lib.batch_files import BatchFiles
from lib.errors import AppError, Conflict, NotFound, ServiceUnavailable
from lib.evaluation import add_baseline
from lib.execution_writes import EngineConfig, StepOutcome
from lib.models import Batch, ItemStatus
from lib.planning import chat_key_for
from lib.queue import StepQueue
from lib.spreadsheet import ParsedRow, TableLayout, iter_upload_rows
from lib.store.batches import BatchStore

log = logging.getLogger("ai_answers.ingestion")

ABANDONED_SECONDS = 3600  # an ingestion nobody moved for this long is removed by the sweep

# (batch id, table, lang, trials=, analyzers=, warnings=) -> item documents (row warnings appended to `warnings`)
ItemDocs = Callable[..., list[dict[str, Any]]]
MAX_WARNINGS_KEPT = 100  # as lib/batches.py: the batch keeps its first warnings, and counts them all


def ingest_state(layout: TableLayout) -> dict[str, Any]:
    """What a batch being ingested carries: how to read its file, where it is, its chat-id salt."""
    return {"layout": layout.to_doc(), "nextIndex": 0, "salt": secrets.token_hex(32)}


def conversation_chat_id(salt: bytes, chat_key: str, trial: object = None) -> str:
    """A conversation's chat id: 128 bits nobody can predict without the batch's salt, the same every time."""
    message = f"{chat_key}\x1f{'' if trial is None else trial}".encode()
    return hmac.new(salt, message, hashlib.sha256).hexdigest()[:32]


def place(docs: list[dict[str, Any]], indexes: list[int], salt: bytes, trials: int = 1) -> None:
    """Give a chunk's rows their place in the whole file: row index, conversation key, chat id.

    `indexes[i]` is the file index of the chunk's i-th row (what the item builder numbered
    i × trials + trial − 1: each trial is an item of its own, in its own conversation).
    """
    for doc in docs:
        local, offset = divmod(doc["rowIndex"], trials)
        index = indexes[local]
        trial = int(doc.get("trial") or 1)
        doc["rowIndex"] = index * trials + offset
        key = chat_key_for(doc.get("chatLabel"), index)
        doc["chatKey"] = key if trial == 1 else f"{key}#trial{trial}"
        doc["chatId"] = conversation_chat_id(salt, doc["chatKey"], trial if trial > 1 else None)


def chunks_of(window: dict[int, list[tuple[int, ParsedRow]]], end: int,
              size: int) -> list[tuple[int, list[tuple[int, ParsedRow]]]]:
    """The window's conversations in chunks of about `size` rows: (mark after the chunk, rows in file order)."""
    chunks: list[tuple[int, list[tuple[int, ParsedRow]]]] = []
    current: list[tuple[int, ParsedRow]] = []
    for first, conversation in window.items():  # in the order of their first rows
        if current and len(current) >= size:
            chunks.append((first, sorted(current, key=lambda pair: pair[0])))
            current = []
        current.extend(conversation)
    if current or not chunks:
        chunks.append((end, sorted(current, key=lambda pair: pair[0])))
    return chunks


class IngestionStep:
    def __init__(self, batches: BatchStore, files: BatchFiles, queue: StepQueue, config: EngineConfig,
                 now: Callable[[], datetime], item_docs: ItemDocs, *, window_rows: int = 20_000,
                 chunk_rows: int = 1_000):
        self.batches = batches
        self.files = files
        self.queue = queue
        self.config = config
        self.now = now
        self.item_docs = item_docs
        self.window_rows = window_rows  # rows (by their conversation's first row) one step reads in
        self.chunk_rows = chunk_rows  # rows written, and the mark moved, at a time

    def run(self, batch: Batch, owner: str, started: float) -> StepOutcome:
        """Write the batch's next rows while the step's budget lasts. Raises `ServiceUnavailable` to be redelivered."""
        oid = ObjectId(batch.id)
        outcome = StepOutcome(batch.id, "ingesting", seq=batch.step_seq)
        assert batch.ingest is not None
        layout = TableLayout.from_doc(batch.ingest["layout"])
        mark = int(batch.ingest["nextIndex"])
        try:
            if mark < layout.row_count:
                mark = self._write_rows(batch, oid, owner, layout, mark, started, outcome)
                if mark < 0:
                    outcome.action = "lease-lost"
                    return outcome
        except ServiceUnavailable:
            raise
        except AppError as exc:  # the source is gone or reads differently: nothing may be left half made
            log.error("batch=%s ingestion failed code=%s: %s; removing the batch", batch.id, exc.code, exc.message)
            self.abandon(oid)
            outcome.action = "ingest-failed"
            return outcome
        now = self.now()
        if mark >= layout.row_count:
            status = self.batches.finish_ingest(oid, owner, now)
            if status is None:
                outcome.action = "lease-lost"
                return outcome
            outcome.action = "ingested"
            log.info("batch=%s ingested %d rows; now %s", batch.id, layout.row_count, status.value)
        self.batches.release_lease(oid, owner, now)
        self.queue.publish_step(batch.id, batch.step_seq, dedup_id=f"{batch.id}:{batch.step_seq}")
        return outcome

    def _write_rows(self, batch: Batch, oid: ObjectId, owner: str, layout: TableLayout, mark: int,
                    started: float, outcome: StepOutcome) -> int:
        """Write chunks from `mark` on, window after window while the budget lasts; the new mark.

        -1: the lease or the mark was taken by another step.
        """
        deadline = started + self.config.step_budget_seconds
        salt = bytes.fromhex(batch.ingest["salt"])  # type: ignore[index]
        data = self._source(batch)
        chunk_seconds = window_seconds = 0.0
        while mark < layout.row_count:
            if window_seconds and time.monotonic() + window_seconds + 1.5 * chunk_seconds > deadline:
                break  # no time to read one more window: the next step goes on
            read_started = time.monotonic()
            end = min(mark + self.window_rows, layout.row_count)
            window = self._read_window(data, layout, mark, end)
            window_seconds = time.monotonic() - read_started
            for upto, rows in chunks_of(window, end, self.chunk_rows):
                if chunk_seconds and time.monotonic() + 1.5 * chunk_seconds > deadline:
                    break
                chunk_started = time.monotonic()
                table = replace(layout.shell(), rows=[row for _, row in rows])
                warnings: list[dict[str, Any]] = []
                docs = self.item_docs(oid, table, batch.page_language, trials=batch.trials,
                                      analyzers=tuple(batch.analyzers), warnings=warnings)
                indexes = [index for index, _ in rows]
                place(docs, indexes, salt, batch.trials)
                if batch.baseline_batch_id is not None:
                    self._join_baseline(batch, docs, indexes)
                self.batches.insert_items_once(docs)
                blocked = sum(1 for doc in docs if doc.get("status") == ItemStatus.BLOCKED.value)
                if not self.batches.advance_ingest(oid, owner, done=mark, upto=upto, inserted=len(docs),
                                                   blocked=blocked, now=self.now(), warnings=warnings,
                                                   keep_warnings=MAX_WARNINGS_KEPT):
                    log.warning("batch=%s ingestion mark %d taken by another step", batch.id, mark)
                    return -1
                outcome.rows_succeeded += len(rows)
                mark = upto
                chunk_seconds = max(chunk_seconds, time.monotonic() - chunk_started)
            if mark < end:
                break  # the window was cut short by the deadline
        log.info("batch=%s step=%s wrote rows up to index %d of %d", batch.id, batch.step_seq, mark, layout.row_count)
        return mark

    def _join_baseline(self, batch: Batch, docs: list[dict[str, Any]], indexes: list[int]) -> None:
        """The baseline's answers joined to a chunk's rows: its trial-1 rows at the same file places.

        Read by exact keys on (batchId, rowIndex): a baseline of T trials holds file row i at
        rowIndex i × T. Raises an `AppError` (the ingestion fails) when a question differs or
        the baseline is no longer the finished batch create checked.
        """
        assert batch.baseline_batch_id is not None
        baseline = self.batches.get(batch.baseline_batch_id)
        if baseline is None or baseline.deleting_at is not None:
            raise NotFound("The baseline batch was deleted while this file was being read.",
                           code="BASELINE_NOT_FOUND", details={"field": "baselineBatchId"})
        if not baseline.status.is_final:
            raise Conflict("The baseline batch runs again (a retry) while this file is being read.",
                           code="BASELINE_NOT_FINAL", details={"field": "baselineBatchId"})
        rows = self.batches.rows_at(ObjectId(baseline.id), [index * baseline.trials for index in indexes],
                                    "baseline")
        add_baseline(docs, rows, batch.analyzers, batch.page_language, complete=False)

    def _source(self, batch: Batch) -> bytes:
        """The batch's file, read from storage (the steps keep no state of their own)."""
        assert batch.source is not None
        buffer = io.BytesIO()
        self.files.storage.download(batch.source["key"], buffer, max_bytes=int(batch.source["bytes"]))
        return buffer.getvalue()

    @staticmethod
    def _read_window(data: bytes, layout: TableLayout, start: int, end: int) -> dict[int, list[tuple[int, ParsedRow]]]:
        """The rows of the conversations whose first row's index is in [start, end), by that first index."""
        window: dict[int, list[tuple[int, ParsedRow]]] = {}
        first_of: dict[str, int] = {}
        count, read_all = 0, True
        with iter_upload_rows(data, layout) as rows:
            for index, row in enumerate(rows):
                if index >= end and layout.chat_index is None:
                    read_all = False
                    break  # no conversations: nothing later belongs to this window
                count = index + 1
                first = index if row.chat_label is None else first_of.setdefault(row.chat_label, index)
                if start <= first < end:
                    window.setdefault(first, []).append((index, row))
        if count < end or (read_all and count != layout.row_count):
            raise AppError(f"The stored file has {count} rows where {layout.row_count} were counted at upload.",
                           code="SOURCE_CHANGED")
        return window

    def abandon(self, oid: ObjectId) -> None:
        """Remove a batch whose ingestion cannot finish: its files, its rows, itself."""
        self.files.forget_batch(oid)
        self.batches.delete_batch(oid)
