"""Per-user counters for rate limits: one fixed-window document per user, action and window."""

from __future__ import annotations

from datetime import datetime, timedelta

from lib.store.client import Store, translate_errors


class LimitStore:
    def __init__(self, store: Store):
        self.events = store.rate_events

    def hit(self, user_id: str, action: str, window_start: datetime, window_seconds: int) -> int:
        """Count one more `action` by the user in the window starting at `window_start`; return the count."""
        key = f"{user_id}:{action}:{int(window_start.timestamp())}"
        # An update filtered on `userId` too, then a read by `_id`: a findAndModify upsert on
        # `_id` alone scans the collection on SecantusDB, and this one grows with traffic.
        with translate_errors():
            self.events.update_one(
                {"_id": key, "userId": user_id},
                {"$inc": {"count": 1},
                 "$setOnInsert": {"expiresAt": window_start + timedelta(seconds=2 * window_seconds)}},
                upsert=True,
            )
            doc = self.events.find_one({"_id": key}, {"count": 1})
        return int(doc["count"]) if doc else 1
