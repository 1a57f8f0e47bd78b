"""One MongoClient per process, the collections, their indexes, and error translation."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from pymongo import ASCENDING, DESCENDING, MongoClient
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError

from lib.errors import ServiceUnavailable

log = logging.getLogger("ai_answers.store")

USERS = "users"
PROMPT_OVERRIDES = "prompt_overrides"
CHATS = "chats"
INTERACTIONS = "interactions"
BATCHES = "batches"
BATCH_ITEMS = "batch_items"
RATE_EVENTS = "rate_events"
STORAGE_OBJECTS = "storage_objects"  # every object put in object storage, until it is deleted

_clients: dict[str, MongoClient] = {}
_indexed: set[tuple[int, str]] = set()
_lock = threading.Lock()


def get_client(uri: str) -> MongoClient:
    """The process's client for `uri`, created on first use and reused by warm invocations."""
    with _lock:
        client = _clients.get(uri)
        if client is None:
            client = MongoClient(
                uri,
                tz_aware=True,
                connect=False,
                serverSelectionTimeoutMS=5000,
                connectTimeoutMS=5000,
                socketTimeoutMS=30000,
                retryWrites=True,
                retryReads=True,
                maxPoolSize=64,
                appname="ai-answers-batch",
            )
            _clients[uri] = client
        return client


class Store:
    """The database and its collections, with indexes ensured once per process."""

    def __init__(self, client: MongoClient, db_name: str):
        self.client = client
        self.db: Database = client[db_name]
        self.users: Collection = self.db[USERS]
        self.prompt_overrides: Collection = self.db[PROMPT_OVERRIDES]
        self.chats: Collection = self.db[CHATS]
        self.interactions: Collection = self.db[INTERACTIONS]
        self.batches: Collection = self.db[BATCHES]
        self.batch_items: Collection = self.db[BATCH_ITEMS]
        self.rate_events: Collection = self.db[RATE_EVENTS]
        self.storage_objects: Collection = self.db[STORAGE_OBJECTS]
        key = (id(client), db_name)
        if key not in _indexed:
            with translate_errors():
                self.ensure_indexes()
            _indexed.add(key)

    def ensure_indexes(self) -> None:
        """Create every index the service reads by. Idempotent."""
        self.users.create_index([("email", ASCENDING)], unique=True)
        self.prompt_overrides.create_index([("userId", ASCENDING), ("key", ASCENDING)], unique=True)
        self.chats.create_index([("userId", ASCENDING)])
        self.interactions.create_index([("chatId", ASCENDING)])
        self.batches.create_index([("uploaderUserId", ASCENDING), ("createdAt", DESCENDING)])
        self.batches.create_index([("status", ASCENDING)])
        self.batches.create_index([("uploaderUserId", ASCENDING), ("status", ASCENDING)])
        self.batches.create_index([("deletingAt", ASCENDING)], sparse=True)  # deletions left half-way (sweep)
        self.batch_items.create_index([("batchId", ASCENDING), ("rowIndex", ASCENDING)], unique=True)
        self.batch_items.create_index([("batchId", ASCENDING), ("status", ASCENDING)])
        # a conversation's latest turn before this one (ai-answers: the state a step takes up)
        self.batch_items.create_index([("batchId", ASCENDING), ("chatKey", ASCENDING), ("turn", ASCENDING)])
        self.rate_events.create_index([("expiresAt", ASCENDING)], expireAfterSeconds=0)
        self.storage_objects.create_index([("expiresOn", ASCENDING)])
        self.storage_objects.create_index([("uploadId", ASCENDING)])
        self.storage_objects.create_index([("batchId", ASCENDING)])


@contextmanager
def translate_errors() -> Iterator[None]:
    """Map driver errors to the service's own: the database being away is a 503."""
    try:
        yield
    except ConnectionFailure as exc:
        raise ServiceUnavailable("The database is unreachable; try again shortly.", code="DATABASE_UNAVAILABLE") from exc
    except OperationFailure as exc:
        # The server refused or could not finish the operation (a write conflict, a
        # stepdown, a timeout, several errors at once under load): the caller may retry,
        # and what it wrote is undone by its own all-or-nothing handling. Never a 500.
        log.warning("database operation failed code=%s labels=%s", exc.code,
                    sorted(getattr(exc, "_error_labels", ()) or ()))
        raise ServiceUnavailable(f"The database could not complete the operation (code {exc.code}); "
                                 "try again shortly.", code="DATABASE_ERROR") from exc
    except PyMongoError as exc:
        raise ServiceUnavailable("The database did not answer; try again shortly.", code="DATABASE_UNAVAILABLE") from exc
