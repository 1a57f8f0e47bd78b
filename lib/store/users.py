"""Users and their prompt overrides."""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from bson.errors import InvalidId

from lib.models import PromptOverride, Role, User
from lib.store.client import Store, translate_errors


def _object_id(value: str) -> ObjectId | None:
    try:
        return ObjectId(value)
    except (InvalidId, TypeError):
        return None


class UserStore:
    def __init__(self, store: Store):
        self.users = store.users
        self.overrides = store.prompt_overrides

    def get(self, user_id: str) -> User | None:
        """The user with this id, or None (also for ids that are not ObjectIds)."""
        oid = _object_id(user_id)
        if oid is None:
            return None
        with translate_errors():
            doc = self.users.find_one({"_id": oid})
        return _user(doc) if doc else None

    def upsert(self, email: str, role: Role, active: bool = True) -> User:
        """Create or update the user with this e-mail (used to seed the local stack)."""
        with translate_errors():
            doc = self.users.find_one_and_update(
                {"email": email},
                {"$set": {"role": role.value, "active": active}, "$setOnInsert": {"email": email}},
                upsert=True,
                return_document=True,
            )
        return _user(doc)

    def set_active(self, user_id: str, active: bool) -> None:
        with translate_errors():
            self.users.update_one({"_id": _object_id(user_id)}, {"$set": {"active": active}})

    def delete(self, user_id: str) -> None:
        with translate_errors():
            self.users.delete_one({"_id": _object_id(user_id)})

    def enabled_overrides(self, user_id: str) -> list[PromptOverride]:
        """The user's enabled prompt overrides, by key."""
        with translate_errors():
            docs = list(self.overrides.find({"userId": user_id}))
        found = [PromptOverride(key=d["key"], text=d.get("text", "")) for d in docs if d.get("enabled")]
        return sorted(found, key=lambda o: o.key)

    def set_override(self, user_id: str, key: str, text: str, enabled: bool = True) -> None:
        with translate_errors():
            self.overrides.update_one(
                {"userId": user_id, "key": key}, {"$set": {"text": text, "enabled": enabled}}, upsert=True
            )


def _user(doc: dict[str, Any]) -> User:
    return User(id=str(doc["_id"]), email=doc["email"], role=Role(doc.get("role", "user")), active=bool(doc.get("active")))
