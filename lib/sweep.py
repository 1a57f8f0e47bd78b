"""The sweep (Vercel cron): re-kick batches whose step chain has gone quiet, finish what was left half-way."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bson import ObjectId

from lib.deletion import BatchDeletion
from lib.errors import ServiceUnavailable
from lib.ingestion import ABANDONED_SECONDS
from lib.models import BatchStatus
from lib.store.removal import BatchRemovalStore

if TYPE_CHECKING:
    from lib.services import Services

log = logging.getLogger("ai_answers.sweep")

ABANDONED_CREATE_SECONDS = 600
ABANDONED_INGEST_SECONDS = ABANDONED_SECONDS


def sweep(services: Services) -> dict[str, Any]:
    """Publish a step for every running batch (cancelling included) with no live lease and a stale heartbeat.

    Also removes batches whose creation never finished (a create killed midway) or whose
    ingestion nobody moved for an hour, with their files; goes on with deletions that died
    half-way (lib/deletion.py, within a few seconds); and deletes the files in object
    storage past their retention day.
    """
    now = services.now()
    stale_before = now - timedelta(seconds=services.settings.sweep_stale_seconds)
    abandoned_before = now - timedelta(seconds=ABANDONED_INGEST_SECONDS)
    kicked: list[str] = []
    removed: list[ObjectId] = []
    waiting = services.batch_store.running_batches()
    for batch in waiting:
        lease_live = batch.lease_until is not None and batch.lease_until > now
        last_sign = batch.heartbeat_at or batch.updated_at
        if lease_live or last_sign > stale_before:
            continue
        if batch.status == BatchStatus.INGESTING and last_sign < abandoned_before:
            log.warning("sweep removes batch=%s: its ingestion has not moved since %s", batch.id, last_sign.isoformat())
            removed.append(ObjectId(batch.id))
            continue
        services.queue.publish_step(
            batch.id, batch.step_seq, dedup_id=f"{batch.id}:sweep:{int(last_sign.timestamp())}"
        )
        kicked.append(batch.id)
        log.warning("sweep re-published a step for batch=%s (quiet since %s)", batch.id, last_sign.isoformat())
    removed += services.batch_store.abandoned_creations(now - timedelta(seconds=ABANDONED_CREATE_SECONDS))
    for batch_id in removed:
        if services.files is not None:
            services.files.forget_batch(batch_id)  # first: the records say which objects are the batch's
        services.batch_store.delete_batch(batch_id)
    answer: dict[str, Any] = {"kicked": kicked, "removedAbandoned": [str(b) for b in removed]}
    deletion = BatchDeletion(services.batches, BatchRemovalStore(services.store), services.files, services.now)
    try:
        answer.update(deletion.finish_stalled())
    except ServiceUnavailable as exc:  # storage away: those batches stay stamped, the next run goes on
        log.warning("sweep could not finish the deletions left half-way: %s", exc.code)
        answer["deletionsFinished"] = None
    if services.files is not None:
        try:
            answer.update(services.files.expire())
        except ServiceUnavailable as exc:  # the re-kicks are done; retention catches up at the next run
            log.warning("sweep could not expire stored files: %s", exc.code)
            answer["expiredObjects"] = None
    return answer
