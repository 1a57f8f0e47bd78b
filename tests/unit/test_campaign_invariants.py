"""The fault campaign's history invariant: it must catch a turn asked with the wrong history."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from bson import ObjectId

from bench.campaign.invariants import BatchCheck, _conversation_history

T0 = datetime(2026, 11, 29, tzinfo=timezone.utc)


def turn(chat: str, second: int, history: list[dict]) -> dict:
    return {"_id": ObjectId(), "chatId": chat, "createdAt": T0 + timedelta(seconds=second),
            "question": {"redactedText": f"Question {second}?"}, "historyIds": [d["_id"] for d in history]}


def violations(*docs: dict) -> list[str]:
    check = BatchCheck(batch_id="b", name="n", status="processed", total=len(docs))
    _conversation_history(check, {d["_id"]: d for d in docs})
    return check.violations


def test_turns_asked_with_their_earlier_turns_pass_in_any_order_of_reading():
    first = turn("c1", 1, [])
    second = turn("c1", 2, [first])
    third = turn("c1", 3, [first, second])
    other = turn("c2", 1, [])
    assert violations(third, first, other, second) == []


def test_a_stale_or_missing_history_is_a_violation():
    first = turn("c1", 1, [])
    second = turn("c1", 2, [first])
    stale = violations(first, second, turn("c1", 3, [first]))  # asked as if the second turn had not happened
    missing = violations(first, turn("c1", 2, []))
    assert len(stale) == 1 and len(missing) == 1
