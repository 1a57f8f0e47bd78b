from datetime import datetime, timedelta, timezone

import pytest

from lib.models import BatchItem, BatchStatus, ItemStatus
from lib.planning import (
    DurationEstimate,
    chat_key_for,
    compute_backoff,
    counters,
    final_status,
    may_start_row,
    plan_runnable,
    progress,
)

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)


def item(row: int, key: str, *, status: ItemStatus = ItemStatus.PENDING, not_before: datetime | None = None) -> BatchItem:
    return BatchItem(
        _id=f"{row:024x}", batchId="b" * 24, rowIndex=row, chatKey=key, question=f"q{row}", status=status,
        interactionId=f"{row + 1000:024x}", notBefore=not_before,
    )


def test_longer_conversations_are_planned_first_then_by_first_row_with_turns_in_row_order():
    pending = [item(3, "label:a"), item(0, "label:a"), item(1, "row:1"), item(2, "label:b"), item(4, "label:b"),
               item(5, "row:5"), item(6, "label:c"), item(7, "label:c"), item(8, "label:c")]
    plan = plan_runnable(pending, [], NOW)
    assert [c.chat_key for c in plan.conversations] == ["label:c", "label:a", "label:b", "row:1", "row:5"]
    assert [r.row_index for r in plan.conversations[0].rows] == [6, 7, 8]
    assert [r.row_index for r in plan.conversations[1].rows] == [0, 3]


def test_a_conversation_with_a_row_in_flight_is_not_runnable():
    plan = plan_runnable([item(5, "label:a"), item(6, "label:b")], [item(1, "label:a", status=ItemStatus.PROCESSING)], NOW)
    assert [c.chat_key for c in plan.conversations] == ["label:b"]


def test_a_row_waiting_out_a_backoff_holds_back_its_conversation_and_sets_the_wake_up_time():
    later = NOW + timedelta(seconds=7)
    plan = plan_runnable([item(0, "label:a", not_before=later), item(1, "label:a"), item(2, "row:2")], [], NOW)
    assert [c.chat_key for c in plan.conversations] == ["row:2"]
    assert plan.waiting_until == later


def test_a_backoff_that_has_passed_does_not_hold_anything_back():
    plan = plan_runnable([item(0, "label:a", not_before=NOW - timedelta(seconds=1))], [], NOW)
    assert len(plan.conversations) == 1 and plan.waiting_until is None


@pytest.mark.parametrize(
    ("attempt", "retry_after", "expected"),
    [(1, None, 1.0), (2, None, 2.0), (3, None, 4.0), (10, None, 60.0), (1, 5.0, 5.0), (3, 1.0, 4.0), (1, 999.0, 60.0)],
)
def test_backoff_is_exponential_capped_and_never_shorter_than_retry_after(attempt, retry_after, expected):
    assert compute_backoff(attempt, retry_after) == expected


@pytest.mark.parametrize(("time_left", "expected_row", "may"), [(10, 2, True), (2, 2, False), (0.5, 2, False)])
def test_a_row_starts_only_if_it_is_expected_to_finish_in_the_budget(time_left, expected_row, may):
    assert may_start_row(time_left, expected_row) is may


@pytest.mark.parametrize(
    ("counts", "status"),
    [
        ({"succeeded": 3}, BatchStatus.PROCESSED),
        ({"succeeded": 2, "failed": 1}, BatchStatus.COMPLETED_WITH_ERRORS),
        ({"succeeded": 2, "pending": 1}, None),
        ({"succeeded": 2, "processing": 1}, None),
        ({}, BatchStatus.PROCESSED),
    ],
)
def test_the_final_status_follows_from_the_item_counts(counts, status):
    assert final_status(counts) == status


def test_progress_reports_percent_and_an_eta_from_observed_throughput():
    percent, eta = progress(100, 25, NOW - timedelta(seconds=10), NOW, BatchStatus.PROCESSING)
    assert percent == 25.0
    assert eta == 30.0


def test_progress_has_no_eta_before_the_first_row_finishes():
    assert progress(100, 0, NOW, NOW, BatchStatus.PROCESSING) == (0.0, None)
    assert progress(100, 0, None, NOW, BatchStatus.QUEUED) == (0.0, None)


def test_a_finished_batch_is_complete_with_nothing_left():
    assert progress(10, 10, NOW, NOW, BatchStatus.PROCESSED) == (100.0, 0.0)


def test_rows_with_a_label_share_a_chat_and_rows_without_have_their_own():
    assert chat_key_for("c1", 0) == chat_key_for("c1", 9) == "label:c1"
    assert chat_key_for(None, 3) != chat_key_for(None, 4)


def test_the_duration_estimate_starts_from_the_first_observation_and_then_smooths():
    estimate = DurationEstimate(initial=10.0, weight=0.5)
    estimate.observe(2.0)
    assert estimate.value == 2.0
    estimate.observe(4.0)
    assert estimate.value == 3.0


@pytest.mark.parametrize(
    ("total", "counts", "shown"),
    [
        (10, {"processed": 3, "failed": 2, "cancelled": 5}, {"processed": 3, "failed": 2, "cancelled": 5}),
        # a cancel settling while late rows are flushed: never a sum above the total
        (3000, {"processed": 112, "failed": 0, "cancelled": 2906}, {"processed": 112, "failed": 0, "cancelled": 2888}),
        (5, {"processed": 7, "cancelled": 1}, {"processed": 5, "cancelled": 0}),
        (5, {"processed": -1, "cancelled": 2}, {"processed": 0, "cancelled": 2}),
    ],
)
def test_counters_as_shown_never_sum_above_the_total(total, counts, shown):
    assert counters(total, **counts) == shown
    assert sum(counters(total, **counts).values()) <= total
