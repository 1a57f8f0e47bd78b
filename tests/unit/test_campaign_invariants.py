"""The fault campaign's history invariant: it must catch a turn asked with the wrong history."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from bson import ObjectId

from bench.campaign.invariants import BatchCheck, _conversation_history

T0 = datetime(2026, 11, 29, tzinfo=timezone.utc)


def turn(chat: str, second: int, question: str, query: str) -> dict:
    return {"_id": ObjectId(), "chatId": chat, "createdAt": T0 + timedelta(seconds=second),
            "question": {"redactedText": question}, "search": {"query": query}}


def violations(*docs: dict) -> list[str]:
    check = BatchCheck(batch_id="b", name="n", status="processed", total=len(docs))
    _conversation_history(check, {d["_id"]: d for d in docs})
    return check.violations


def test_turns_asked_with_the_previous_question_pass_in_any_order_of_reading():
    assert violations(
        turn("c1", 3, "And for a child?", "And for a child? How long does it take?"),
        turn("c1", 1, "How do I renew a passport?", "How do I renew a passport?"),
        turn("c1", 2, "How long does it take?", "How long does it take? How do I renew a passport?"),
        turn("c2", 1, "What is the GST credit?", "What is the GST credit?"),
    ) == []


def test_a_stale_or_missing_history_is_a_violation():
    stale = violations(
        turn("c1", 1, "First?", "First?"),
        turn("c1", 2, "Second?", "Second? First?"),
        turn("c1", 3, "Third?", "Third? First?"),  # asked as if the second turn had not happened
    )
    missing = violations(turn("c1", 1, "First?", "First?"), turn("c1", 2, "Second?", "Second?"))
    assert stale == ["1 turns were not given their conversation's previous turn as history"]
    assert missing == ["1 turns were not given their conversation's previous turn as history"]
