"""Chats and interactions, written by the chat pipeline (the same for single and batch messages)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from pymongo.errors import DuplicateKeyError

from lib.store.client import Store, translate_errors


@dataclass(frozen=True)
class ChatOpened:
    is_new: bool
    owner_id: str


@dataclass(frozen=True)
class PastTurn:
    interaction_id: str
    question: str
    answer: str
    created_at: datetime


def to_object_id(value: str) -> ObjectId | None:
    """The ObjectId spelled by `value`, or None when it is not one."""
    try:
        return ObjectId(value)
    except (InvalidId, TypeError):
        return None


class ChatStore:
    def __init__(self, store: Store):
        self.chats = store.chats
        self.interactions = store.interactions

    def open_chat(self, chat_id: str, user_id: str, now: datetime) -> ChatOpened:
        """Create the chat for `user_id` unless it exists; tell whether it is new and whose it is."""
        # One upsert filtered on the owner too: it matches the user's own chat or inserts a
        # new one (a findAndModify upsert on `_id` alone is a collection scan on SecantusDB).
        # Somebody else's chat makes the insert fail on the duplicate `_id`; only then is
        # the owner read.
        with translate_errors():
            try:
                result = self.chats.update_one(
                    {"_id": chat_id, "userId": user_id}, {"$setOnInsert": {"createdAt": now}}, upsert=True
                )
            except DuplicateKeyError:
                existing = self.chats.find_one({"_id": chat_id}, {"userId": 1})
                return ChatOpened(is_new=False, owner_id=str((existing or {}).get("userId")))
        return ChatOpened(is_new=result.upserted_id is not None, owner_id=user_id)

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
