"""Workloads of the throughput benchmark and the bounds they are measured against (pure).

A shape is the list of conversations of one batch file, in file order: a conversation
of one turn is an independent row (no `chatId`), longer ones share a `chatId`.

- A: independent rows only.
- B: conversations of 6 turns only.
- C: a mix: blocks of 6 independent rows, each followed by a 6-turn conversation, so
  conversations start all through the file (the last one near its end).

An evaluation run (`trials`, `analyzers`) runs the same file: `with_trials` is the shape the
engine then schedules (each trial of a conversation its own chat, next to the others), and
each row makes one more model call per judge analyzer (`judge_calls`).
"""

from __future__ import annotations

import csv
import io
import math
from collections import deque
from dataclasses import dataclass

TURNS = 6
_TOPICS = (
    "renew my passport", "apply for employment insurance", "get a social insurance number",
    "file my taxes online", "apply for the Canada child benefit", "replace a lost citizenship certificate",
    "check my immigration application", "apply for old age security", "get a student loan",
    "register a small business",
)


@dataclass(frozen=True)
class Shape:
    name: str
    description: str
    conversations: tuple[int, ...]  # turns per conversation, in file order

    @property
    def rows(self) -> int:
        return sum(self.conversations)

    @property
    def longest(self) -> int:
        return max(self.conversations)


def shape_a(rows: int) -> Shape:
    return Shape("A", f"{rows} independent rows", (1,) * rows)


def shape_b(rows: int) -> Shape:
    count = max(1, rows // TURNS)
    return Shape("B", f"{count} conversations x {TURNS} turns", (TURNS,) * count)


def shape_c(rows: int) -> Shape:
    blocks = max(1, rows // (2 * TURNS))
    conversations: list[int] = []
    for _ in range(blocks):
        conversations += [1] * TURNS + [TURNS]
    return Shape("C", f"{blocks * TURNS} independent rows + {blocks} conversations x {TURNS} turns, interleaved",
                 tuple(conversations))


SHAPES = {"A": shape_a, "B": shape_b, "C": shape_c}
# Analyzers that ask a model (one call per answered row each); the rules-only ones ask none.
JUDGE_ANALYZERS = ("similar-answer", "expert-scorer")


def with_trials(shape: Shape, trials: int) -> Shape:
    """The items the engine schedules for `trials` runs of the file: each conversation `trials`
    times, in chats of their own, next to each other (items are in row order, then trial)."""
    if trials <= 1:
        return shape
    return Shape(shape.name, f"{shape.description}, x {trials} trials",
                 tuple(turns for turns in shape.conversations for _ in range(trials)))


def judge_calls(analyzers: str | tuple[str, ...]) -> int:
    """Model calls the analyzers add to an answered row that has a reference: one per judge."""
    names = analyzers.split(",") if isinstance(analyzers, str) else analyzers
    return sum(1 for name in {n.strip() for n in names} if name in JUDGE_ANALYZERS)


def csv_bytes(shape: Shape, *, extra_columns: int = 0, filler: str = "", references: bool = False) -> bytes:
    """The batch file: QUESTION, chatId (empty for independent rows), URL, and optional extra columns.

    Every turn of a conversation is written in file order (turn 1, 2, ...); conversations
    follow one another as in an export of chat logs. `references` adds a `referenceAnswer`
    to every row, so that each judge analyzer asks its model on every answered row.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["QUESTION", "chatId", "URL"] + [f"note{n}" for n in range(extra_columns)]
                    + (["referenceAnswer"] if references else []))
    row = 0
    for number, turns in enumerate(shape.conversations):
        label = f"conv-{number}" if turns > 1 else ""
        for turn in range(turns):
            topic = _TOPICS[row % len(_TOPICS)]
            question = f"Question {row} (turn {turn + 1}): how do I {topic}?" if turns > 1 else \
                f"Question {row}: how do I {topic}?"
            writer.writerow([question, label, f"https://www.canada.ca/en/page-{row % 50}.html"]
                            + [f"{filler}{row}-{n}" for n in range(extra_columns)]
                            + ([f"You can {topic} online; see the page on canada.ca."] if references else []))
            row += 1
    return buffer.getvalue().encode("utf-8")


def ideal_bound(shape: Shape, latency: float, concurrency: int, calls_per_row: float = 1.0) -> float:
    """max(longest conversation x T, rows x T / concurrency), T = L x model calls per row: no schedule beats it.

    A row of the pipeline makes several model calls one after the other (PII screening,
    query rewrite, department, answer...), each answered after L.
    """
    row = latency * calls_per_row
    return max(shape.longest * row, shape.rows * row / concurrency)


def list_schedule_makespan(shape: Shape, latency: float, concurrency: int) -> float:
    """Makespan of whole conversations handed, in file order, to the first free worker.

    This is what the engine's plan does with zero overhead; it can exceed `ideal_bound`
    because a conversation is never split across workers (B: ceil(100/16) rounds of 6
    turns) and a long conversation near the end of the file starts late (C).
    """
    free = [0.0] * concurrency
    for turns in shape.conversations:
        slot = min(range(concurrency), key=free.__getitem__)
        free[slot] += turns * latency
    return max(free)


def rate_limited_makespan(calls: int, latency: float, concurrency: int, per_window: int,
                          window: float = 60.0) -> float:
    """Best makespan of `calls` independent calls of `latency` with `concurrency` workers when a
    provider admits at most `per_window` call starts in any sliding `window` seconds."""
    workers = [0.0] * concurrency
    starts: deque[float] = deque()
    end = 0.0
    for _ in range(calls):
        slot = min(range(concurrency), key=workers.__getitem__)
        start = workers[slot]
        if len(starts) >= per_window:
            start = max(start, starts[len(starts) - per_window] + window)
        starts.append(start)
        workers[slot] = start + latency
        end = max(end, workers[slot])
    return end


def queue_message_target(makespan: float, step_budget: float) -> int:
    """The issue's ceiling on messages published per batch: ceil(makespan / budget) + 1."""
    return math.ceil(makespan / step_budget) + 1
