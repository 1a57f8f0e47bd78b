"""The composition root: settings, store, queue, providers and services, wired once per process."""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from lib.batch_files import BatchFiles
from lib.batches import BatchService, _item_docs
from lib.chat.service import ChatProcessingService, Providers
from lib.direct_upload import DirectUploads
from lib.execution import EngineConfig, StepEngine
from lib.ingestion import IngestionStep
from lib.pipelines import AI_ANSWERS
from lib.pipelines.ai_answers import AIAnswersPipeline
from lib.pipelines.ai_answers_http import AIAnswersTransport
from lib.pipelines.attempts import AttemptLog
from lib.providers.registry import build_ai_provider, build_search_provider, citation_session, shared_gate
from lib.queue import QStashStepQueue, StepQueue
from lib.settings import MAX_CONCURRENCY, Settings
from lib.storage import Storage
from lib.store.batches import BatchStore
from lib.store.chats import ChatStore
from lib.store.client import Store, get_client
from lib.store.limits import LimitStore
from lib.store.objects import ObjectRecords
from lib.store.users import UserStore

if TYPE_CHECKING:
    from pymongo import MongoClient


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Services:
    settings: Settings
    store: Store
    users: UserStore
    chats: ChatStore
    batch_store: BatchStore
    queue: StepQueue
    chat: ChatProcessingService
    batches: BatchService
    engine: StepEngine
    now: Callable[[], datetime]
    files: BatchFiles | None = None  # object storage (None: S3_BUCKET not set)


def build_services(settings: Settings, *, queue: StepQueue | None = None,
                   now: Callable[[], datetime] = utc_now, client: MongoClient | None = None) -> Services:
    """Wire the real adapters (a test or benchmark may hand in its own queue, clock or client)."""
    store = Store(client or get_client(settings.mongodb_uri), settings.mongodb_db)
    users = UserStore(store)
    chats = ChatStore(store)
    batch_store = BatchStore(store)
    if queue is None:
        queue = QStashStepQueue(settings.qstash_token, settings.qstash_url, settings.process_step_url)
    providers = Providers(
        ai=lambda name: build_ai_provider(name, settings),
        search=lambda name: build_search_provider(name, settings),
    )
    chat = ChatProcessingService(
        chats, users.enabled_overrides, providers,
        max_message_chars=settings.max_message_chars, history_turns=settings.history_turns, now=now,
        check_citations=settings.citation_check, citation_session=citation_session(settings),
    )
    config = EngineConfig(
        max_attempts=settings.max_attempts,
        step_budget_seconds=settings.step_budget_seconds,
        function_max_duration=settings.function_max_duration,
        lease_seconds=settings.step_lease_seconds,
    )
    files = build_batch_files(settings, store, batch_store, now)
    uploads = DirectUploads(files, max_bytes=settings.max_upload_bytes_direct, now=now) if files else None
    # The rows of a direct upload are written by steps, with the same item builder as create's.
    ingestion = IngestionStep(batch_store, files, queue, config, now, item_docs=_item_docs,
                              window_rows=settings.ingest_window_rows,
                              chunk_rows=settings.ingest_chunk_rows) if files else None
    engine = StepEngine(batch_store, chat, queue, config, now, ingestion=ingestion,
                        pipelines=build_pipelines(settings, store, chats, now),
                        prices=settings.price_table(), answer_model=settings.answer_model)
    return Services(
        settings=settings, store=store, users=users, chats=chats, batch_store=batch_store, queue=queue, chat=chat,
        batches=BatchService(batch_store, LimitStore(store), queue, settings, now, files=files, uploads=uploads),
        engine=engine, now=now, files=files,
    )


def build_batch_files(settings: Settings, store: Store, batch_store: BatchStore,
                      now: Callable[[], datetime]) -> BatchFiles | None:
    """The batches' files in object storage, or None when S3_BUCKET is not set."""
    if settings.s3_bucket is None:
        return None
    storage = Storage(settings.s3_bucket, region=settings.s3_region, endpoint_url=settings.s3_endpoint_url,
                      credentials=settings.storage_credentials())
    return BatchFiles(storage, ObjectRecords(store), batch_store, retention_days=settings.retention_days, now=now)


def build_pipelines(settings: Settings, store: Store, chats: ChatStore,
                    now: Callable[[], datetime]) -> dict[str, AIAnswersPipeline]:
    """The pipelines other than the local one that batches may name (lib/pipelines): a deployed AI Answers."""
    if not settings.ai_answers_url:
        return {}
    transport = AIAnswersTransport(settings.ai_answers_url, token=settings.ai_answers_token,
                                   connect_timeout=settings.provider_connect_timeout,
                                   read_timeout=settings.provider_read_timeout,
                                   pool_size=max(settings.batch_concurrency, MAX_CONCURRENCY))
    pipeline = AIAnswersPipeline(transport, AttemptLog(store), chats, now=now,
                                 gate=shared_gate(AI_ANSWERS, settings), wait_seconds=settings.provider_wait_seconds,
                                 deployment=urlparse(settings.ai_answers_url).netloc)
    return {AI_ANSWERS: pipeline}


_services: Services | None = None
_lock = threading.Lock()


def get_services(env: Mapping[str, str] | None = None) -> Services:
    """The process's services, built on first use and reused by warm invocations."""
    global _services
    with _lock:
        if _services is None:
            settings = Settings.from_env(os.environ if env is None else env)
            configure_logging(settings.log_level)
            _services = build_services(settings)
        return _services


def reset_services() -> None:
    """Forget the process's services so the next use reads the environment again (tests)."""
    global _services
    with _lock:
        _services = None


def configure_logging(level: str) -> None:
    root = logging.getLogger("ai_answers")
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        root.addHandler(handler)
        root.propagate = False
    root.setLevel(level)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # the queue SDK's per-request lines
    # urllib3 logs retried URLs, and Google's API key travels in the query string.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
