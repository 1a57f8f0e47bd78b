"""The step engine: one QStash delivery runs one time-boxed chunk of a batch (design §4, §6).

A step takes the batch's lease, plans runnable conversations, runs up to
`concurrency` of them side by side (threads: provider calls are I/O), and stops
claiming when the budget left is shorter than a row is expected to take. Writes are
grouped: rows are claimed in bulk writes that keep each row's compare-and-set
(`lib.execution_writes.ClaimGroup`), and finished rows are recorded in bulk at each
flush (interactions, chats, outcomes, counters). It then releases the lease and
publishes its successor, or finalises the batch from the items, which are the source
of truth. A cancelled batch is settled by the same steps: its pending rows are
cancelled in chunks, and it becomes `cancelled` once no row is in flight.

A row's analyzers (lib/evaluation.py) run after its answer, inside its claim, and are
recorded with the answer, its tokens by stage and its cost in the same compare-and-set.
The flush adds the rows' tokens and cost to the batch's counters; a batch whose cost
reaches its budget stops claiming (BUDGET_EXCEEDED) and is settled like a cancel.

Every piece of a step's work fits its budget: claiming stops at the claim deadline,
waiting for rows in flight stops early enough to leave time for the last flush and
the wrap-up, and cancelling rows goes in chunks until the time is up.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bson import ObjectId

from lib.analyzers import needs_model
from lib.chat.service import ChatProcessingService, ChatResult
from lib.errors import AppError, ServiceUnavailable, UpstreamError
from lib.evaluation import RowAnalysis, analyse_row, nested, references_of, row_result, rules_only
from lib.execution_writes import ClaimGroup, EngineConfig, Finished, Progress, StepOutcome, Turns, record_finished
from lib.models import Batch, BatchItem, BatchStatus, ItemError, ItemStatus, Role, User
from lib.pipelines import AI_ANSWERS
from lib.planning import DurationEstimate, compute_backoff, final_status, may_start_row, plan_runnable
from lib.pricing import PriceTable
from lib.providers.base import AIProvider
from lib.queue import StepMessage, StepQueue
from lib.store.batches import BatchStore
from lib.store.chats import ChatStore
from lib.store.ids import to_object_id

if TYPE_CHECKING:
    from lib.ingestion import IngestionStep
    from lib.pipelines.ai_answers import AIAnswersPipeline

__all__ = ["EngineConfig", "StepEngine", "StepOutcome"]

log = logging.getLogger("ai_answers.execution")

FLUSH_EVERY_ROWS = 25
FLUSH_EVERY_SECONDS = 1.0
# A thread still inside a provider call at the end is left behind: the step stops
# waiting for it this long before the platform's limit...
RETURN_MARGIN_SECONDS = 2.0
# ...less this, kept for the last flush, the wrap-up and the next step's publish.
WRAP_UP_SECONDS = 3.0
# A row's answer is recorded only this long before its claim's lease ends: after that,
# another step may have claimed the row again.
ANSWER_MARGIN_SECONDS = 5.0
# A request to a pipeline that is not idempotent ends this long before the step stops waiting for rows.
UPSTREAM_MARGIN_SECONDS = 1.0
# Our own provider gate is full: the row waits this long, and no attempt is spent.
BUSY_BACKOFF_SECONDS = 2.0
# Rows of a cancelled batch cancelled per bulk write while settling it.
CANCEL_CHUNK = 500
POLL_SECONDS = 0.1


class StepEngine:
    def __init__(
        self,
        batches: BatchStore,
        chat: ChatProcessingService,
        queue: StepQueue,
        config: EngineConfig,
        now: Callable[[], datetime],
        chats: ChatStore | None = None,
        ingestion: IngestionStep | None = None,
        pipelines: Mapping[str, AIAnswersPipeline] | None = None,
        prices: PriceTable | None = None,
        answer_model: Callable[[str], str] | None = None,
    ):
        self.batches = batches
        # Pipelines a batch may name other than the local `chat` (lib/pipelines): by name.
        self.pipelines = dict(pipelines or {})
        self.chat = chat
        self.chats = chats if chats is not None else chat.chats
        self.queue = queue
        self.config = config
        self.now = now
        self.ingestion = ingestion  # writes the rows of a big upload (a batch `ingesting`)
        # What a row's model calls cost (lib/pricing.py), and the model that prices a row whose stages
        # are not itemised (a refusal in the step): the batch's AI provider's default model.
        self.prices = prices or PriceTable()
        self.answer_model = answer_model or (lambda provider: provider)

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
        try:
            if batch.ingest is not None:  # a big upload's rows are still being written
                if self.ingestion is None:
                    raise ServiceUnavailable("Object storage is not configured.", code="STORAGE_NOT_CONFIGURED")
                return self.ingestion.run(batch, owner, started)
            return _Step(self, batch, oid, owner, lease_until, started).run()
        except ServiceUnavailable:
            # Free the lease so QStash's redelivery can resume at once rather than after it expires.
            try:
                self.batches.release_lease(oid, owner, self.now())
            except ServiceUnavailable:
                log.info("batch=%s the lease could not be released (database away); it will expire", oid)
            raise

    def _lease_not_taken(self, oid: ObjectId, message: StepMessage, now: datetime) -> StepOutcome:
        current = self.batches.get(str(oid))
        if current is None or not current.status.is_running:
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


class _Step:
    """One lease holder's work on one batch."""

    def __init__(self, engine: StepEngine, batch: Batch, oid: ObjectId, owner: str, lease_until: datetime, t0: float):
        self.e = engine
        self.batch = batch
        self.oid = oid
        self.owner = owner
        self.lease_until = lease_until
        self.answer_by = lease_until - timedelta(seconds=ANSWER_MARGIN_SECONDS)
        max_duration = engine.config.function_max_duration
        self.claim_deadline = t0 + engine.config.step_budget_seconds
        # Rows started by the claim deadline are expected to end by it; slower ones get until
        # here, which leaves the wrap-up its time (or, with a short function, a second past
        # the claim deadline, never less than half a second before the return).
        returns_by = t0 + max_duration - RETURN_MARGIN_SECONDS
        self.wait_deadline = min(max(self.claim_deadline + 1.0, returns_by - WRAP_UP_SECONDS), returns_by - 0.5)
        self.work_deadline = returns_by - 1.0
        self.progress = Progress()
        self.estimate = DurationEstimate(initial=min(10.0, engine.config.step_budget_seconds / 4))
        self.claims = ClaimGroup(engine.batches, self.oid, owner, lease_until, engine.now, self.progress,
                                 with_references=bool(batch.analyzers))
        self.analyzers = tuple(batch.analyzers)
        self._judge: AIProvider | None = None
        self.outcome = StepOutcome(batch.id, "ran", seq=batch.step_seq)
        self.waiting_until: datetime | None = None  # the earliest backoff of the rows this step planned
        self.released_until: datetime | None = None  # ...and of the rows it sent back for a retry
        self.user = User(id=batch.uploader_user_id, email="", role=Role.PARTNER, active=True)

    def run(self) -> StepOutcome:
        e = self.e
        if self.batch.status == BatchStatus.CANCELLING:
            return self._settle_cancel()
        now = e.now()
        # Rows an earlier step left in flight (it ran out of time, or died) are orphans: run them again;
        # with a pipeline that is not idempotent, once the request they sent is past its deadline.
        orphans = e.batches.items_with_status(self.oid, ItemStatus.PROCESSING)
        waits = self.batch.pipeline == AI_ANSWERS
        e.batches.reset_orphans(orphans, self.owner, wait_until_closed=now if waits else None)
        still_open = [o for o in orphans if waits and o.claim_id != self.owner and o.open_until is not None
                      and o.open_until > now]
        if still_open:
            self.released_until = min(o.open_until for o in still_open)  # type: ignore[type-var]
        pending = e.batches.items_with_status(self.oid, ItemStatus.PENDING)
        plan = plan_runnable(pending, still_open, now)
        self.waiting_until = plan.waiting_until
        concurrency = max(1, min(self.batch.concurrency, e.config.concurrency_cap))
        if plan.conversations:
            self._run_conversations(plan.conversations, concurrency)
        status = self._flush()
        if status == BatchStatus.CANCELLING:
            return self._settle_cancel()
        return self._wrap_up()

    # --- running rows ---------------------------------------------------------------

    def _run_conversations(self, conversations: list, concurrency: int) -> None:
        pool = ThreadPoolExecutor(max_workers=min(concurrency, len(conversations)), thread_name_prefix="row")
        futures = [pool.submit(self._run_conversation, c.rows) for c in conversations]
        try:
            while True:
                remaining = self.wait_deadline - time.monotonic()
                done, not_done = wait(futures, timeout=min(POLL_SECONDS, max(0.0, remaining)))
                if not not_done:
                    break
                if remaining <= 0:
                    self.progress.stop.set()
                    log.warning("batch=%s step=%s left %d conversations running at the deadline",
                                self.batch.id, self.batch.step_seq, len(not_done))
                    break
                if self.progress.due(FLUSH_EVERY_ROWS, FLUSH_EVERY_SECONDS):
                    self._flush()
            for future in futures:
                if future.done() and future.exception() is not None:
                    raise future.exception()  # type: ignore[misc]
        finally:
            self.progress.stop.set()
            pool.shutdown(wait=False, cancel_futures=True)

    def _run_conversation(self, rows: list[BatchItem]) -> None:
        # The chat's interactions once one of its turns has run here: the next turn's history,
        # so that a follow-up does not read its chat back from the database. A first turn on
        # its first attempt has none, and nothing to read either.
        history: Turns = None
        for item in rows:
            if self.progress.stop.is_set():
                return
            if not may_start_row(self.claim_deadline - time.monotonic(), self.estimate.value):
                return
            if item.not_before is not None and item.not_before > self.e.now():
                return
            if not self.claims.claim(item):
                return  # cancelled, or another step has it: either way this conversation stops here
            if history is None and item.turn == 0 and item.attempts == 0:
                history = ()
            ran, history = self._run_row(item, attempt=item.attempts + 1, history=history)
            if not ran:
                return

    def _run_row(self, item: BatchItem, attempt: int, history: Turns) -> tuple[bool, Turns]:
        """Run one claimed row to an outcome; False when it must wait for a later step.

        Also returns the chat's history for the conversation's next turn: the answered chat
        after a success, the same history after a failure (a failed turn adds nothing to
        the chat). Within a step the history in memory is the truth: the turns before are
        recorded only at the next flush.
        """
        e = self.e
        while True:
            row_started = time.monotonic()
            try:
                if self.batch.pipeline == AI_ANSWERS:
                    result = self._upstream(item, attempt, history)
                else:
                    result = e.chat.process_message(
                        chat_id=item.chat_id,
                        user_message=item.question,
                        lang=self.batch.page_language,
                        selected_ai=self.batch.ai_provider,
                        selected_search=self.batch.search_provider,
                        referring_url=item.referring_url,
                        user=self.user,
                        override_user_id=self.batch.uploader_user_id if self.batch.apply_overrides else None,
                        interaction_id=item.interaction_id,
                        answer_by=self.answer_by,
                        earlier_turns=history,
                        record=False,
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
                if not exc.retryable or attempt - item.attempts_before >= e.config.max_attempts:
                    self._failed(item, attempt, ItemError(code=exc.code, message=exc.message, retryable=exc.retryable))
                    return True, history
                backoff = compute_backoff(attempt, exc.retry_after)
                time_left = self.claim_deadline - time.monotonic()
                if not self.progress.stop.is_set() and time_left > backoff + self.estimate.value:
                    time.sleep(backoff)
                    attempt += 1
                    continue
                self._release(item, attempt, ItemError(code=exc.code, message=exc.message, retryable=True), backoff)
                return False, None
            except ServiceUnavailable:
                raise  # the database or queue is away: the step fails and QStash redelivers it
            except AppError as exc:
                self._failed(item, attempt, ItemError(code=exc.code, message=exc.message))
                return True, history
            except Exception:  # a bug must not lose the other rows: record it on this one
                log.exception("batch=%s row=%s failed unexpectedly", self.batch.id, item.row_index)
                self._failed(item, attempt, ItemError(code="INTERNAL", message="The row failed unexpectedly."))
                return True, history
            elapsed = time.monotonic() - row_started
            self.estimate.observe(elapsed)
            if result.blocked_by is not None:
                self._blocked(item, attempt, result, elapsed)
                return True, history  # a refused turn adds nothing to the chat
            # The analyses run here, inside the row's claim, and are recorded with its answer in one
            # compare-and-set: a redelivered step or a crash can neither repeat nor lose them.
            analysis = self._analyse(item, row_result(
                status=ItemStatus.SUCCEEDED.value, question=item.question, lang=self.batch.page_language,
                fields=result.fields, answer=result.answer, citation_url=result.citation_url), self.analyzers)
            by_stage = {**result.tokens_by_stage, **analysis.tokens_by_stage}
            cost = e.prices.row_cost(by_stage, fallback_model=e.answer_model(self.batch.ai_provider),
                                     input_tokens=result.input_tokens, output_tokens=result.output_tokens)
            fields = {
                "status": ItemStatus.SUCCEEDED.value,
                "attempts": attempt,
                "chatId": result.chat_id,
                "answer": result.answer,
                "citationUrl": result.citation_url,
                "model": result.model,
                "result": result.fields,
                "tokens": {"input": result.input_tokens, "output": result.output_tokens, "byStage": by_stage},
                "cost": cost.to_doc(),
                "analysis": nested(analysis.columns),
                "responseTimeMs": int(elapsed * 1000),
                "finishedAt": e.now(),
                "error": None,
            }
            self.progress.add(Finished(item=item, fields=fields, interaction=result.interaction,
                                       new_chat=result.interaction is not None and len(result.turns) == 1))
            return True, result.turns or None

    def _upstream(self, item: BatchItem, attempt: int, history: Turns) -> ChatResult:
        """The row sent to a deployed AI Answers, with a deadline this step still waits for."""
        pipeline = self.e.pipelines.get(AI_ANSWERS)
        if pipeline is None:
            raise UpstreamError("This deployment has no AI_ANSWERS_URL: the batch's pipeline is unavailable.",
                                provider=AI_ANSWERS, retryable=False, code="PIPELINE_UNAVAILABLE")
        # Not idempotent: an answer must arrive while this step still records it (with time left to
        # record how the request ended), or not be asked for.
        left = self.wait_deadline - time.monotonic() - UPSTREAM_MARGIN_SECONDS
        waits_until = self.e.now() + timedelta(seconds=max(0.0, left))
        return pipeline.process_row(item=item, batch=self.batch, claim_id=self.owner, attempt=attempt,
                                    answer_by=min(self.answer_by, waits_until), earlier_turns=history)

    def _blocked(self, item: BatchItem, attempt: int, result: ChatResult, elapsed: float) -> None:
        """A question the pipeline refused: kept only as its masked text, in the row and its original cells."""
        e = self.e
        original = e.batches.original_of(item.id)
        if self.batch.question_column in original:
            original[self.batch.question_column] = result.redacted_question
        analysis = self._analyse(item, row_result(
            status=ItemStatus.BLOCKED.value, question=result.redacted_question, lang=self.batch.page_language,
            blocked_by=result.blocked_by), rules_only(self.analyzers))
        by_stage = {**result.tokens_by_stage, **analysis.tokens_by_stage}
        cost = e.prices.row_cost(by_stage, fallback_model=e.answer_model(self.batch.ai_provider),
                                 input_tokens=result.input_tokens, output_tokens=result.output_tokens)
        fields = {"status": ItemStatus.BLOCKED.value, "attempts": attempt, "blockedBy": result.blocked_by,
                  "fallbackUrl": result.fallback_url, "question": result.redacted_question, "original": original,
                  "model": result.model or None,
                  "tokens": {"input": result.input_tokens, "output": result.output_tokens, "byStage": by_stage},
                  "cost": cost.to_doc(), "analysis": nested(analysis.columns),
                  "responseTimeMs": int(elapsed * 1000), "finishedAt": e.now(), "error": None}
        self.progress.add(Finished(item=item, fields=fields))

    def _analyse(self, item: BatchItem, row, names: tuple[str, ...]) -> RowAnalysis:
        """The row's analyses (none when the batch asked for none); judges ask the batch's AI provider."""
        if not names:
            return RowAnalysis({}, {})
        judge = None
        if needs_model(names):
            if self._judge is None:
                self._judge = self.e.chat.providers.ai(self.batch.ai_provider)
            judge = self._judge
        refs = references_of(self.claims.references.get(item.id, item.references))
        return analyse_row(names, row, refs, judge)

    def _failed(self, item: BatchItem, attempt: int, error: ItemError) -> None:
        fields = {"status": ItemStatus.FAILED.value, "attempts": attempt, "error": error.model_dump(),
                  "finishedAt": self.e.now()}
        self.progress.add(Finished(item=item, fields=fields))

    def _release(self, item: BatchItem, attempt: int, error: ItemError, backoff: float) -> None:
        e = self.e
        not_before = e.now() + timedelta(seconds=backoff)
        if e.batches.release_for_retry(item.id, self.owner, error, not_before, attempts=attempt):
            self.outcome.rows_retry_later += 1
            with self.progress.lock:
                self.released_until = min(self.released_until or not_before, not_before)

    # --- recording ------------------------------------------------------------------

    def _flush(self) -> BatchStatus | None:
        """Record the rows that ended since the last flush, in bulk; the batch's status."""
        finished = self.progress.take()
        e = self.e
        now = e.now()
        late = [f for f in finished if f.interaction is not None and now > self.answer_by]
        if late:
            # Past the claim's deadline another step may run these rows again: drop the answers.
            log.warning("batch=%s dropped %d answers that came after the claim's deadline", self.batch.id, len(late))
            finished = [f for f in finished if f not in late]
        counts = record_finished(e.batches, e.chats, finished, self.owner, self.batch.uploader_user_id, now)
        self.outcome.rows_succeeded += counts.get(ItemStatus.SUCCEEDED.value, 0)
        self.outcome.rows_failed += counts.get(ItemStatus.FAILED.value, 0)
        status = e.batches.flush_progress(
            self.oid, processed=counts.get(ItemStatus.SUCCEEDED.value, 0),
            blocked=counts.get(ItemStatus.BLOCKED.value, 0), failed=counts.get(ItemStatus.FAILED.value, 0), now=now,
            input_tokens=counts.get("inputTokens", 0), output_tokens=counts.get("outputTokens", 0),
            cost_usd=counts.get("costMicroUsd", 0) / 1_000_000,
        )
        if status is not None and not status.is_active:
            self.progress.stop.set()
        return status

    # --- ending the step ------------------------------------------------------------

    def _wrap_up(self) -> StepOutcome:
        e = self.e
        now = e.now()
        if not e.batches.has_items_with_status(self.oid, ItemStatus.PENDING) and \
                not e.batches.has_items_with_status(self.oid, ItemStatus.PROCESSING):
            counts, spent = e.batches.tally(self.oid)
            done = final_status(counts)
            if done is not None:
                self._finalise(counts, done, now, spent)
                return self.outcome
        e.batches.release_lease(self.oid, self.owner, now)
        delay = self._next_delay(now)
        e.queue.publish_step(self.batch.id, self.batch.step_seq, dedup_id=f"{self.batch.id}:{self.batch.step_seq}",
                             delay_seconds=delay)
        return self.outcome

    def _settle_cancel(self) -> StepOutcome:
        """Cancel the batch's pending rows, in chunks, while the budget lasts; then `cancelled`.

        Runs once this step has recorded its own rows (or at the start of a step for a
        batch already cancelling): any row still `processing` can no longer be recorded by
        anybody (its step has recorded all it will), so it is cancelled with the rest.
        """
        e = self.e
        e.batches.reset_orphans(e.batches.items_with_status(self.oid, ItemStatus.PROCESSING), claim_id="")
        # A batch stopped by its budget: the rows it never ran say so.
        reason = self.progress.stop_reason or self.batch.stop_reason
        error = ItemError(code="BUDGET_EXCEEDED", message="The batch's estimated cost reached its budget before "
                          "this row ran.") if reason == "BUDGET_EXCEEDED" else None
        while True:  # one chunk at least, then as many as the time allows
            cancelled = e.batches.cancel_pending_chunk(self.oid, e.now(), CANCEL_CHUNK, error=error)
            if cancelled:
                e.batches.flush_progress(self.oid, cancelled=cancelled, now=e.now())
            if cancelled < CANCEL_CHUNK:
                more = e.batches.has_items_with_status(self.oid, ItemStatus.PENDING)
                break
            if time.monotonic() >= self.work_deadline:
                more = True
                break
        now = e.now()
        if not more and not e.batches.has_items_with_status(self.oid, ItemStatus.PROCESSING):
            counts, spent = e.batches.tally(self.oid)
            self._finalise(counts, BatchStatus.CANCELLED, now, spent)
            return self.outcome
        # Out of time with pending rows left: go on at once (a claim that raced the end of
        # this step is an orphan for the next one).
        e.batches.release_lease(self.oid, self.owner, now)
        e.queue.publish_step(self.batch.id, self.batch.step_seq, dedup_id=f"{self.batch.id}:{self.batch.step_seq}",
                             delay_seconds=0.0 if more else 1.0)
        self.outcome.action = "settling"
        return self.outcome

    def _finalise(self, counts: dict[str, int], status: BatchStatus, now: datetime,
                  spent: dict[str, float] | None = None) -> None:
        interactions = self.e.batches.succeeded_interaction_ids(self.oid)
        self.e.batches.finalise(self.oid, counts=counts, interactions=interactions, status=status, now=now,
                                spent=spent)
        self.outcome.action = "finalised"
        log.info("batch=%s finalised status=%s counts=%s", self.batch.id, status.value, counts)

    def _next_delay(self, now: datetime) -> float:
        """Run again at once, unless every pending row was waiting out a backoff when this step planned.

        Decided from this step's own plan and outcome, not by reading the pending rows again
        (at 100,000 rows that read alone would not fit the wrap-up's time).
        """
        if self.outcome.rows_succeeded or self.outcome.rows_failed:
            return 0.0
        moments = [m for m in (self.waiting_until, self.released_until) if m is not None]
        if not moments:
            return 0.0
        return max(1.0, (min(moments) - now).total_seconds())
