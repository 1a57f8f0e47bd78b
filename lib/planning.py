"""Pure decisions of the engine: which rows may run, backoff, budgets, outcomes, progress.

Functions of data and `now` only, so they are tested with tables (tests/unit).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from lib.models import BatchItem, BatchStatus, ItemStatus

MAX_BACKOFF_SECONDS = 60.0


@dataclass(frozen=True)
class Conversation:
    chat_key: str
    rows: list[BatchItem]  # runnable now, in row order; the first is the conversation's next turn


@dataclass(frozen=True)
class Plan:
    conversations: list[Conversation]
    waiting_until: datetime | None  # earliest moment a backed-off row becomes runnable


def plan_runnable(pending: Iterable[BatchItem], in_flight: Iterable[BatchItem], now: datetime) -> Plan:
    """Group pending rows into conversations: longest first, then by first row.

    Longest first (the classic LPT rule) keeps a long conversation that sits late in the
    file from becoming the batch's tail: the makespan approaches max(longest
    conversation, rows / concurrency). A conversation is left out while one of its rows
    is in flight (its order must hold). Inside a conversation, rows run in row order, so
    a row that is waiting out a backoff (`not_before` in the future) holds back the rows
    after it.
    """
    busy = {item.chat_key for item in in_flight}
    by_key: dict[str, list[BatchItem]] = {}
    for item in sorted(pending, key=lambda i: i.row_index):
        if item.chat_key not in busy:
            by_key.setdefault(item.chat_key, []).append(item)
    conversations: list[Conversation] = []
    waiting_until: datetime | None = None
    for key, rows in by_key.items():
        head = rows[0]
        if head.not_before is not None and head.not_before > now:
            waiting_until = head.not_before if waiting_until is None else min(waiting_until, head.not_before)
            continue
        conversations.append(Conversation(chat_key=key, rows=rows))
    conversations.sort(key=lambda c: (-len(c.rows), c.rows[0].row_index))
    return Plan(conversations=conversations, waiting_until=waiting_until)


def compute_backoff(attempt: int, retry_after: float | None = None, base: float = 1.0) -> float:
    """Seconds to wait before attempt `attempt + 1`: exponential, capped, at least Retry-After."""
    delay = min(MAX_BACKOFF_SECONDS, base * (2 ** max(0, attempt - 1)))
    if retry_after is not None:
        delay = max(delay, min(MAX_BACKOFF_SECONDS, retry_after))
    return delay


def may_start_row(time_left: float, expected_row_seconds: float) -> bool:
    """Start another row only if it is expected to finish inside the step's budget."""
    return time_left > expected_row_seconds


def final_status(counts: Mapping[str, int]) -> BatchStatus | None:
    """The batch's final status once no row is pending or in flight; None while some are."""
    if counts.get(ItemStatus.PENDING.value, 0) or counts.get(ItemStatus.PROCESSING.value, 0):
        return None
    if counts.get(ItemStatus.FAILED.value, 0):
        return BatchStatus.COMPLETED_WITH_ERRORS
    return BatchStatus.PROCESSED


def counters(total: int, **counts: int) -> dict[str, int]:
    """Counters as shown: never summing above `total` at any moment.

    While a batch runs its counters are flushed in groups by concurrent steps; should
    they ever overlap, the later kinds in `counts` give way (they are exact once final).
    """
    shown: dict[str, int] = {}
    left = max(0, total)
    for name, value in counts.items():
        shown[name] = min(max(0, value), left)
        left -= shown[name]
    return shown


def progress(
    total: int, done: int, started_at: datetime | None, now: datetime, status: BatchStatus
) -> tuple[float, float | None]:
    """Percent of rows ended and seconds left, from the throughput observed since the start."""
    percent = 100.0 if total == 0 else round(100.0 * min(done, total) / total, 1)
    if status.is_final:
        return (percent if status == BatchStatus.CANCELLED else 100.0), 0.0
    if status == BatchStatus.CANCELLING:
        return percent, None
    if not started_at or done <= 0:
        return percent, None
    elapsed = (now - started_at).total_seconds()
    if elapsed <= 0:
        return percent, None
    rate = done / elapsed
    return percent, round((total - done) / rate, 1)


def chat_key_for(label: str | None, row_index: int) -> str:
    """Rows with the same label form one conversation; unlabelled rows are their own."""
    return f"label:{label}" if label else f"row:{row_index}"


class DurationEstimate:
    """A moving estimate of how long a row takes, to decide whether one more fits."""

    def __init__(self, initial: float, weight: float = 0.3):
        self.value = initial
        self.weight = weight
        self._seen = False

    def observe(self, seconds: float) -> None:
        if not self._seen:
            self.value, self._seen = seconds, True
        else:
            self.value = self.weight * seconds + (1 - self.weight) * self.value
