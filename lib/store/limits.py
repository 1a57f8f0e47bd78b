"""Per-user counters for rate limits: one fixed-window document per user, action and window."""

from __future__ import annotations

from datetime import datetime, timedelta

from pymongo import ReturnDocument

from lib.store.client import Store, translate_errors


class LimitStore:
    def __init__(self, store: Store):
        self.events = store.rate_events

    def hit(self, user_id: str, action: str, window_start: datetime, window_seconds: int) -> int:
        """Count one more `action` by the user in the window starting at `window_start`; return the count."""
        key = f"{user_id}:{action}:{int(window_start.timestamp())}"
        with translate_errors():
            doc = self.events.find_one_and_update(
                {"_id": key},
                {"$inc": {"count": 1},
                 "$setOnInsert": {"userId": user_id, "expiresAt": window_start + timedelta(seconds=2 * window_seconds)}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        return int(doc["count"])
