"""The step engine: one QStash delivery runs one time-boxed chunk of a batch (design §4).

A step takes the batch's lease, plans runnable conversations, runs up to
`concurrency` of them side by side (threads: provider calls are I/O), claims each row
by compare-and-set, and stops claiming when the budget left is shorter than a row is
expected to take. It then releases the lease and publishes its successor, or
finalises the batch from the items, which are the source of truth.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId

from lib.chat.service import ChatProcessingService
from lib.errors import AppError, ServiceUnavailable, UpstreamError
from lib.models import Batch, BatchItem, BatchStatus, ItemError, ItemStatus, Role, User
from lib.planning import DurationEstimate, chat_id_for, compute_backoff, final_status, may_start_row, plan_runnable
from lib.queue import StepMessage, StepQueue
from lib.store.batches import BatchStore
from lib.store.chats import to_object_id

log = logging.getLogger("ai_answers.execution")

FLUSH_EVERY_ROWS = 25
FLUSH_EVERY_SECONDS = 2.0
# A thread still inside a provider call when the budget ends is left behind; the step
# returns this long before the platform would kill it.
RETURN_MARGIN_SECONDS = 2.0
# A row's answer is recorded only this long before its claim's lease ends: after that,
# another step may have claimed the row again.
ANSWER_MARGIN_SECONDS = 5.0
# Our own provider gate is full: the row waits this long, and no attempt is spent.
BUSY_BACKOFF_SECONDS = 2.0

# A chat's interactions, oldest first, as a conversation's previous turn left them (None: unknown).
Turns = tuple[dict[str, Any], ...] | None


@dataclass
class StepOutcome:
    batch_id: str
    action: str  # "ran", "finalised", "lease-busy", "nothing-to-do"
    seq: int = 0
    rows_succeeded: int = 0
    rows_failed: int = 0
    rows_retry_later: int = 0


@dataclass
class _Progress:
    """Finished rows not yet added to the batch's counters (flushed in groups)."""

    processed: int = 0
    failed: int = 0
    interactions: list[ObjectId] = field(default_factory=list)
    last_flush: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self) -> tuple[int, int, list[ObjectId]]:
        with self.lock:
            taken = (self.processed, self.failed, self.interactions)
            self.processed, self.failed, self.interactions = 0, 0, []
            self.last_flush = time.monotonic()
            return taken


@dataclass(frozen=True)
class EngineConfig:
    max_attempts: int
    step_budget_seconds: float
    function_max_duration: float
    lease_seconds: int
    concurrency_cap: int = 32


class StepEngine:
    def __init__(
        self,
        batches: BatchStore,
        chat: ChatProcessingService,
        queue: StepQueue,
        config: EngineConfig,
        now: Callable[[], datetime],
    ):
        self.batches = batches
        self.chat = chat
        self.queue = queue
        self.config = config
        self.now = now

    def run_step(self, message: StepMessage) -> StepOutcome:
        """Run one step of the batch. Raises `ServiceUnavailable` when QStash should redeliver."""
        started = time.monotonic()
        oid = to_object_id(message.batch_id)
        if oid is None:
            return StepOutcome(message.batch_id, "nothing-to-do")
        owner = uuid.uuid4().hex
        now = self.now()
        lease_until = now + timedelta(seconds=self.config.lease_seconds)
        batch = self.batches.take_lease(oid, owner, now, lease_until)
        if batch is None:
            return self._lease_not_taken(oid, message, now)
        step = _Step(self, batch, oid, owner, lease_until, started)
        try:
            return step.run()
        except ServiceUnavailable:
            # Free the lease so QStash's redelivery can resume at once rather than after it expires.
            try:
                self.batches.release_lease(oid, owner, self.now())
            except ServiceUnavailable:
                pass  # the database is away: the lease will expire on its own
            raise

    def _lease_not_taken(self, oid: ObjectId, message: StepMessage, now: datetime) -> StepOutcome:
        current = self.batches.get(str(oid))
        if current is not None and current.status == BatchStatus.CANCELLED and current.completed_at is None:
            return self.settle_cancelled(oid, now)
        if current is None or not current.status.is_active:
            return StepOutcome(message.batch_id, "nothing-to-do")
        if current.lease_until is not None and current.lease_until > now:
            # A live step holds the lease. Should it die, this delayed message picks the
            # batch up when the lease expires (one per lease, however many deliveries).
            delay = (current.lease_until - now).total_seconds() + 1
            self.queue.publish_step(
                message.batch_id, current.step_seq, dedup_id=f"{message.batch_id}:lease:{current.step_seq}",
                delay_seconds=delay,
            )
            return StepOutcome(message.batch_id, "lease-busy", seq=current.step_seq)
        # The lease was freed between our attempt and this read: let QStash redeliver.
        raise ServiceUnavailable("The step lease changed hands; retry.", code="LEASE_RACE")

    def settle_cancelled(self, oid: ObjectId, now: datetime) -> StepOutcome:
        """Record a cancelled batch's rows in flight: those whose step died are cancelled; recount."""
        in_flight = self.batches.items_with_status(oid, ItemStatus.PROCESSING)
        self.batches.cancel_abandoned_rows(in_flight, now)
        counts = self.batches.count_by_status(oid)
        self.batches.finalise(oid, counts=counts, interactions=self.batches.succeeded_interaction_ids(oid),
                              status=None, now=now)
        live = [i.lease_until for i in in_flight if i.lease_until is not None and i.lease_until > now]
        if live:
            schedule_settle(self.queue, str(oid), max(live), now)
        return StepOutcome(str(oid), "settled")


def schedule_settle(queue: StepQueue, batch_id: str, when: datetime, now: datetime) -> None:
    """A step at `when` records a cancelled batch's rows still in flight (one per moment)."""
    queue.publish_step(batch_id, 0, dedup_id=f"{batch_id}:settle:{int(when.timestamp())}",
                       delay_seconds=max(1.0, (when - now).total_seconds() + 1))


class _Step:
    """One lease holder's work on one batch."""

    def __init__(self, engine: StepEngine, batch: Batch, oid: ObjectId, owner: str, lease_until: datetime, t0: float):
        self.e = engine
        self.batch = batch
        self.oid = oid
        self.owner = owner
        self.lease_until = lease_until
        self.claim_deadline = t0 + engine.config.step_budget_seconds
        self.return_deadline = t0 + engine.config.function_max_duration - RETURN_MARGIN_SECONDS
        self.progress = _Progress()
        self.estimate = DurationEstimate(initial=min(10.0, engine.config.step_budget_seconds / 4))
        self.cancelled = threading.Event()
        self.outcome = StepOutcome(batch.id, "ran", seq=batch.step_seq)
        self.user = User(id=batch.uploader_user_id, email="", role=Role.PARTNER, active=True)

    def run(self) -> StepOutcome:
        e = self.e
        now = e.now()
        in_flight = e.batches.items_with_status(self.oid, ItemStatus.PROCESSING)
        if e.batches.reset_expired(in_flight, now):
            in_flight = [i for i in in_flight if i.lease_until is not None and i.lease_until > now]
        pending = e.batches.items_with_status(self.oid, ItemStatus.PENDING)
        plan = plan_runnable(pending, in_flight, now)
        concurrency = max(1, min(self.batch.concurrency, e.config.concurrency_cap))
        if plan.conversations:
            self._run_conversations(plan.conversations, concurrency)
        self._flush()
        return self._wrap_up()

    def _run_conversations(self, conversations: list, concurrency: int) -> None:
        pool = ThreadPoolExecutor(max_workers=min(concurrency, len(conversations)), thread_name_prefix="row")
        futures = [pool.submit(self._run_conversation, c.rows) for c in conversations]
        try:
            while True:
                remaining = self.return_deadline - time.monotonic()
                done, not_done = wait(futures, timeout=min(1.0, max(0.0, remaining)))
                if not not_done:
                    break
                if remaining <= 0:
                    log.warning("batch=%s step=%s left %d conversations running at the deadline",
                                self.batch.id, self.batch.step_seq, len(not_done))
                    break
                if time.monotonic() - self.progress.last_flush >= FLUSH_EVERY_SECONDS:
                    self._flush()
            for future in futures:
                if future.done() and future.exception() is not None:
                    raise future.exception()  # type: ignore[misc]
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def _run_conversation(self, rows: list[BatchItem]) -> None:
        # The chat's interactions once one of its turns has run here: the next turn's history,
        # so that a follow-up does not open its chat and read it back from the database.
        history: Turns = None
        for item in rows:
            if self.cancelled.is_set():
                return
            if not may_start_row(self.claim_deadline - time.monotonic(), self.estimate.value):
                return
            now = self.e.now()
            if item.not_before is not None and item.not_before > now:
                return
            if not self.e.batches.claim(item.id, self.owner, now, self.lease_until):
                return  # cancelled, or another step has it: either way this conversation stops here
            ran, history = self._run_row(item, attempt=item.attempts + 1, history=history)
            if not ran:
                return
            if len(self.progress.interactions) + self.progress.failed >= FLUSH_EVERY_ROWS:
                self._flush()

    def _run_row(self, item: BatchItem, attempt: int, history: Turns) -> tuple[bool, Turns]:
        """Run one claimed row to an outcome; False when it must wait for a later step.

        Also returns the chat's history for the conversation's next turn: the answered chat
        after a success, None (read it from the store) after anything else.
        """
        e = self.e
        while True:
            row_started = time.monotonic()
            try:
                result = e.chat.process_message(
                    chat_id=chat_id_for(self.batch.id, item.chat_key),
                    user_message=item.question,
                    lang=self.batch.page_language,
                    selected_ai=self.batch.ai_provider,
                    selected_search=self.batch.search_provider,
                    referring_url=item.referring_url,
                    user=self.user,
                    override_user_id=self.batch.uploader_user_id if self.batch.apply_overrides else None,
                    interaction_id=item.interaction_id,
                    answer_by=self.lease_until - timedelta(seconds=ANSWER_MARGIN_SECONDS),
                    earlier_turns=history,
                )
            except UpstreamError as exc:
                self.estimate.observe(time.monotonic() - row_started)
                if exc.code == "PROVIDER_BUSY":
                    # Throttled by our own gate: not the row's fault, so it costs no attempt.
                    self._release(item, attempt - 1, ItemError(code=exc.code, message=exc.message, retryable=True),
                                  BUSY_BACKOFF_SECONDS)
                    return False, None
                log.info("batch=%s row=%s attempt=%s provider=%s error=%s retryable=%s", self.batch.id,
                         item.row_index, attempt, exc.provider, exc.code, exc.retryable)
                if not exc.retryable or attempt >= e.config.max_attempts:
                    self._finish_failed(item, attempt, ItemError(code=exc.code, message=exc.message, retryable=exc.retryable))
                    return True, None
                backoff = compute_backoff(attempt, exc.retry_after)
                time_left = self.claim_deadline - time.monotonic()
                if not self.cancelled.is_set() and time_left > backoff + self.estimate.value:
                    time.sleep(backoff)
                    attempt += 1
                    continue
                self._release(item, attempt, ItemError(code=exc.code, message=exc.message, retryable=True), backoff)
                return False, None
            except ServiceUnavailable:
                raise  # the database or queue is away: the step fails and QStash redelivers it
            except AppError as exc:
                self._finish_failed(item, attempt, ItemError(code=exc.code, message=exc.message))
                return True, None
            except Exception:  # a bug must not lose the other rows: record it on this one
                log.exception("batch=%s row=%s failed unexpectedly", self.batch.id, item.row_index)
                self._finish_failed(item, attempt, ItemError(code="INTERNAL", message="The row failed unexpectedly."))
                return True, None
            elapsed = time.monotonic() - row_started
            self.estimate.observe(elapsed)
            finished = e.batches.finish(
                item.id,
                self.owner,
                {
                    "status": ItemStatus.SUCCEEDED.value,
                    "attempts": attempt,
                    "chatId": result.chat_id,
                    "answer": result.answer,
                    "citationUrl": result.citation_url,
                    "model": result.model,
                    "tokens": {"input": result.input_tokens, "output": result.output_tokens},
                    "responseTimeMs": int(elapsed * 1000),
                    "finishedAt": e.now(),
                    "error": None,
                },
            )
            if finished:
                with self.progress.lock:
                    self.progress.processed += 1
                    self.progress.interactions.append(ObjectId(item.interaction_id))
                    self.outcome.rows_succeeded += 1
            return True, result.turns or None

    def _finish_failed(self, item: BatchItem, attempt: int, error: ItemError) -> None:
        finished = self.e.batches.finish(
            item.id,
            self.owner,
            {"status": ItemStatus.FAILED.value, "attempts": attempt, "error": error.model_dump(), "finishedAt": self.e.now()},
        )
        if finished:
            with self.progress.lock:
                self.progress.failed += 1
                self.outcome.rows_failed += 1

    def _release(self, item: BatchItem, attempt: int, error: ItemError, backoff: float) -> None:
        e = self.e
        not_before = e.now() + timedelta(seconds=backoff)
        if e.batches.release_for_retry(item.id, self.owner, error, not_before, attempts=attempt):
            self.outcome.rows_retry_later += 1
            # A cancel that came while this row was in flight must not see it start again.
            if e.batches.status_of(self.oid) == BatchStatus.CANCELLED:
                e.batches.cancel_item_if_pending(item.id, e.now())

    def _flush(self) -> None:
        processed, failed, interactions = self.progress.take()
        status = self.e.batches.flush_progress(
            self.oid, processed=processed, failed=failed, interactions=interactions, now=self.e.now()
        )
        if status == BatchStatus.CANCELLED:
            self.cancelled.set()

    def _wrap_up(self) -> StepOutcome:
        e = self.e
        now = e.now()
        counts = e.batches.count_by_status(self.oid)
        status = e.batches.status_of(self.oid)
        if status == BatchStatus.CANCELLED:
            e.batches.cancel_pending_items(self.oid, now)
            counts = e.batches.count_by_status(self.oid)
            e.batches.finalise(self.oid, counts=counts, interactions=e.batches.succeeded_interaction_ids(self.oid),
                               status=None, now=now)
            e.batches.release_lease(self.oid, self.owner, now)
            if counts.get(ItemStatus.PROCESSING.value):
                schedule_settle(e.queue, self.batch.id, self.lease_until, now)  # rows left running at the deadline
            self.outcome.action = "finalised"
            return self.outcome
        done = final_status(counts)
        if done is not None:
            e.batches.finalise(self.oid, counts=counts, interactions=e.batches.succeeded_interaction_ids(self.oid),
                               status=done, now=now)
            self.outcome.action = "finalised"
            log.info("batch=%s finalised status=%s counts=%s", self.batch.id, done.value, counts)
            return self.outcome
        e.batches.release_lease(self.oid, self.owner, now)
        delay = self._next_delay(now)
        e.queue.publish_step(self.batch.id, self.batch.step_seq, dedup_id=f"{self.batch.id}:{self.batch.step_seq}",
                             delay_seconds=delay)
        return self.outcome

    def _next_delay(self, now: datetime) -> float:
        """Run again at once, unless every pending row waits on a backoff or a row in flight."""
        pending = self.e.batches.items_with_status(self.oid, ItemStatus.PENDING)
        in_flight = self.e.batches.items_with_status(self.oid, ItemStatus.PROCESSING)
        plan = plan_runnable(pending, in_flight, now)
        if plan.conversations:
            return 0.0
        moments = [i.lease_until for i in in_flight if i.lease_until is not None]
        if plan.waiting_until is not None:
            moments.append(plan.waiting_until)
        if not moments:
            return 0.0
        return max(1.0, (min(moments) - now).total_seconds())
