"""Users and their prompt overrides.

A user record that cannot be read as a `User` (an unknown role, no e-mail, an `active`
flag that is not a real boolean) is treated as no user at all: `get` answers None, so
`lib.auth.authenticate` refuses the token with 401 INVALID_USER, and the record is
logged once per user id at WARNING for someone to fix. Hand edits and old scripts leave
such records; they must lock their user out, not answer 500 or let them in.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId

from lib.models import PromptOverride, Role, User
from lib.store.client import Store, translate_errors

log = logging.getLogger("ai_answers.users")

_ROLES = frozenset(role.value for role in Role)


def _object_id(value: str) -> ObjectId | None:
    try:
        return ObjectId(value)
    except (InvalidId, TypeError):
        return None


def malformed_field(doc: dict[str, Any]) -> str | None:
    """The first field that makes this user record unusable, or None when it is sound."""
    email = doc.get("email")
    if not isinstance(email, str) or not email:
        return "email"
    if doc.get("role") not in _ROLES:  # a missing role too: every record we write has one
        return "role"
    if not isinstance(doc.get("active"), bool):  # "false" is truthy; 1 is not a flag either
        return "active"
    return None


class UserStore:
    def __init__(self, store: Store):
        self.users = store.users
        self.overrides = store.prompt_overrides
        # Ids of malformed records already logged: the services, and so this store, live as
        # long as the process, so each bad record is reported once, not on every request.
        self._reported: set[str] = set()
        self._reported_lock = threading.Lock()

    def get(self, user_id: str) -> User | None:
        """The user with this id, or None (also for ids that are not ObjectIds, and for malformed records)."""
        oid = _object_id(user_id)
        if oid is None:
            return None
        with translate_errors():
            doc = self.users.find_one({"_id": oid})
        if not doc:
            return None
        field = malformed_field(doc)
        if field is not None:
            self._report_malformed(str(doc["_id"]), field)
            return None
        return _user(doc)

    def _report_malformed(self, user_id: str, field: str) -> None:
        """Log a malformed record once per user id, naming the field and never the e-mail."""
        with self._reported_lock:
            if user_id in self._reported:
                return
            self._reported.add(user_id)
        log.warning("user record %s is malformed: %s", user_id, field)

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
    """A sound record (see `malformed_field`) as a `User`; only `active: true` is active."""
    return User(id=str(doc["_id"]), email=doc["email"], role=Role(doc["role"]), active=doc["active"] is True)
