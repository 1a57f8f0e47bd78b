"""The sweep (Vercel cron): re-kick batches whose step chain has gone quiet."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lib.services import Services

log = logging.getLogger("ai_answers.sweep")

ABANDONED_CREATE_SECONDS = 600


def sweep(services: Services) -> dict[str, Any]:
    """Publish a step for every running batch (cancelling included) with no live lease and a stale heartbeat.

    Also removes batches whose creation never finished (a create killed midway).
    """
    now = services.now()
    stale_before = now - timedelta(seconds=services.settings.sweep_stale_seconds)
    kicked: list[str] = []
    waiting = services.batch_store.running_batches()
    for batch in waiting:
        lease_live = batch.lease_until is not None and batch.lease_until > now
        last_sign = batch.heartbeat_at or batch.updated_at
        if lease_live or last_sign > stale_before:
            continue
        services.queue.publish_step(
            batch.id, batch.step_seq, dedup_id=f"{batch.id}:sweep:{int(last_sign.timestamp())}"
        )
        kicked.append(batch.id)
        log.warning("sweep re-published a step for batch=%s (quiet since %s)", batch.id, last_sign.isoformat())
    removed = services.batch_store.abandoned_creations(now - timedelta(seconds=ABANDONED_CREATE_SECONDS))
    for batch_id in removed:
        services.batch_store.delete_batch(batch_id)
    return {"kicked": kicked, "removedAbandoned": [str(b) for b in removed]}
