"""Ids are the store's vocabulary: how a string from a request or a message becomes one."""

from __future__ import annotations

import secrets

from bson import ObjectId
from bson.errors import InvalidId


def to_object_id(value: str) -> ObjectId | None:
    """The ObjectId spelled by `value`, or None when it is not one."""
    try:
        return ObjectId(value)
    except (InvalidId, TypeError):
        return None


def new_chat_id() -> str:
    """A chat id nobody can predict (128 random bits): chats are named by the server only."""
    return secrets.token_hex(16)
