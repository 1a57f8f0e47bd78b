"""Chats and interactions, written by the chat pipeline (the same for single and batch messages)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import InsertOne, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from lib.store.client import Store, translate_errors

_DUPLICATE_KEY = 11000


class ChatStore:
    def __init__(self, store: Store):
        self.chats = store.chats
        self.interactions = store.interactions

    def create_chat(self, chat_id: str, user_id: str, now: datetime) -> None:
        """Record a new chat, issued by the server, as the user's."""
        with translate_errors():
            self.chats.insert_one({"_id": chat_id, "userId": user_id, "createdAt": now})

    def owner_of(self, chat_id: str) -> str | None:
        """Whose chat this is, or None when the server never issued it."""
        with translate_errors():
            doc = self.chats.find_one({"_id": chat_id}, {"userId": 1})
        return str(doc["userId"]) if doc else None

    def ensure_chats(self, chats: dict[str, str], now: datetime) -> None:
        """Record chats (id -> owner) issued at upload, in one bulk write; existing ones stay as they are."""
        if not chats:
            return
        # Filtered on the owner too: an upsert on `_id` alone is a collection scan on SecantusDB.
        ops = [UpdateOne({"_id": chat_id, "userId": user_id}, {"$setOnInsert": {"createdAt": now}}, upsert=True)
               for chat_id, user_id in chats.items()]
        with translate_errors():
            _ignoring_duplicates(lambda: self.chats.bulk_write(ops, ordered=False))

    def insert_interactions(self, docs: list[dict[str, Any]]) -> None:
        """Insert interactions in one bulk write; one whose `_id` exists already stands (a re-run's)."""
        if not docs:
            return
        with translate_errors():
            _ignoring_duplicates(lambda: self.interactions.bulk_write([InsertOne(d) for d in docs], ordered=False))

    def turns(self, chat_id: str) -> list[dict[str, Any]]:
        """Every interaction of the chat (small documents: question, answer, time), oldest first."""
        with translate_errors():
            docs = list(self.interactions.find({"chatId": chat_id}))
        return sorted(docs, key=lambda d: (d["createdAt"], str(d["_id"])))

    def insert_interaction(self, doc: dict[str, Any]) -> bool:
        """Insert the interaction; False when one with the same `_id` already exists."""
        with translate_errors():
            try:
                self.interactions.insert_one(doc)
            except DuplicateKeyError:
                return False
        return True

    def get_interaction(self, interaction_id: ObjectId) -> dict[str, Any] | None:
        with translate_errors():
            return self.interactions.find_one({"_id": interaction_id})


def _ignoring_duplicates(write: Any) -> None:
    """Run a bulk write; duplicate keys are expected (a re-run), any other write error is not."""
    try:
        write()
    except BulkWriteError as exc:
        others = [e for e in exc.details.get("writeErrors", []) if e.get("code") != _DUPLICATE_KEY]
        if others or exc.details.get("writeConcernErrors"):
            raise

