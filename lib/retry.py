"""Retry in place: a final batch's failed (or cancelled) rows run again in the same batch (api.md).

The order of writes keeps the counters exact at every moment:
1. the batch goes from its final status back to `queued` with its counters less the rows
   about to run again, in one compare-and-set (of two retries at once, one wins);
2. those rows go back to `pending`, each keeping its last outcome in its `history` and
   its attempts (a run gets its own allowance: `attemptsBefore`);
3. a step is published. Should the queue be away, the sweep publishes it.

Rows that succeeded or were blocked are not touched, nor their interactions. Should step
2 never happen (a crash), the next step finds no pending row and finalises the batch
from its items, as exact as before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from bson import ObjectId

from lib.errors import BadRequest, Conflict, ServiceUnavailable
from lib.evaluation import MAX_BUDGET_USD
from lib.models import Batch, BatchStatus, ItemStatus
from lib.queue import StepQueue
from lib.store.batches import BatchStore

log = logging.getLogger("ai_answers.retry")

RETRYABLE = (ItemStatus.FAILED.value, ItemStatus.CANCELLED.value)


def parse_retry_body(body: dict[str, Any]) -> tuple[tuple[str, ...], float | None]:
    """The statuses to run again (default failed) and an optional new budget; 400 for anything else."""
    statuses = body.get("statuses", [ItemStatus.FAILED.value])
    if not isinstance(statuses, list) or not statuses or not all(isinstance(s, str) for s in statuses) \
            or set(statuses) - set(RETRYABLE):
        raise BadRequest("statuses must be a list of 'failed' and/or 'cancelled'.", code="INVALID_STATUSES",
                         details={"field": "statuses", "allowed": list(RETRYABLE)})
    budget = body.get("budgetUsd")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int | float)
                               or not 0 < budget <= MAX_BUDGET_USD):
        raise BadRequest("budgetUsd must be a number of dollars above 0.", code="INVALID_BUDGET",
                         details={"field": "budgetUsd"})
    return tuple(s for s in RETRYABLE if s in statuses), (float(budget) if budget is not None else None)


def retry_rows(store: BatchStore, queue: StepQueue, batch: Batch, statuses: Sequence[str], budget_usd: float | None,
               now: Callable[[], datetime], check_active: Callable[[], None] | None = None) -> dict[str, Any]:
    """Run the batch's rows with these statuses again (see the module's docstring).

    `check_active` raises (429 TOO_MANY_ACTIVE_BATCHES) when the batch's owner already has
    as many batches running as a user may: a retried batch is active again, as a new one
    would be. It is asked last, once the retry is otherwise possible, so that a batch with
    nothing to retry says so rather than "wait".
    """
    if not batch.status.is_final:
        raise Conflict("The batch is still running; retry its rows once it has finished.", code="BATCH_ACTIVE")
    if budget_usd is None and batch.budget_reached:
        raise Conflict(f"The batch's estimated cost (${batch.estimated_cost_usd:.4f}) has reached its budget "
                       f"(${batch.budget_usd:.2f}); give a higher budgetUsd to run rows again.",
                       code="BUDGET_EXCEEDED", details={"field": "budgetUsd"})
    if budget_usd is not None and budget_usd <= batch.estimated_cost_usd:
        raise BadRequest("The new budgetUsd must be above what the batch has already cost.", code="INVALID_BUDGET",
                         details={"field": "budgetUsd", "estimatedCostUsd": batch.estimated_cost_usd})
    oid = ObjectId(batch.id)
    counts = store.count_by_status(oid)
    moving = {s: counts.get(s, 0) for s in statuses}
    rows = sum(moving.values())
    if rows == 0:
        raise Conflict("The batch has no rows with these statuses to run again.", code="NOTHING_TO_RETRY",
                       details={"statuses": list(statuses)})
    if check_active is not None:
        check_active()
    at = now()
    runs = [dict(r) for r in batch.runs] or [{"run": 1, "startedAt": batch.started_at, "completedAt": None,
                                              "statuses": None, "rows": batch.total_items}]
    runs[-1]["completedAt"] = runs[-1].get("completedAt") or batch.completed_at
    run = len(runs) + 1
    runs.append({"run": run, "startedAt": at, "completedAt": None, "statuses": list(statuses), "rows": rows})
    if not store.reopen_for_retry(oid, was=batch.status, completed_at=batch.completed_at, counts=moving, runs=runs,
                                  budget_usd=budget_usd, now=at):
        raise Conflict("The batch changed meanwhile (another retry?); look at its status again.",
                       code="BATCH_ACTIVE")
    moved = store.requeue_rows(oid, statuses, run, at)
    if moved != rows:  # cannot happen while the batch is final; the finalisation recounts from the items anyway
        log.warning("batch=%s retry moved %d rows where %d were counted", batch.id, moved, rows)
    try:
        queue.publish_step(batch.id, 0, dedup_id=f"{batch.id}:retry:{run}")
    except ServiceUnavailable:  # the retry took effect: the sweep publishes the step
        log.warning("batch=%s retry run %d: its step could not be queued (the sweep will)", batch.id, run)
    return {"batchId": batch.id, "status": BatchStatus.QUEUED.value, "run": run, "rows": moved,
            "statuses": list(statuses)}
