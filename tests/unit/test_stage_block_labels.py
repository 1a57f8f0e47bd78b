"""The offline pipeline against a labelled file: block recall and false-block rate, per kind and overall.

tests/data/block_labels.csv: `expected` (block / allow), `kind` (the PII, word-list or
probe kind a block row holds; for allow rows, what might be mistaken for PII: form
numbers, dollar amounts, department names, numbering, historical figures, ordinary
questions), `lang`, `question`. The floors are the issue's: recall >= 0.9, false-block
rate <= 0.05, overall.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import pytest

from lib.chat.stages.base import Blocked
from lib.chat.stages.pipeline import run_pipeline
from lib.providers.offline import OfflineAI, OfflineSearch

LABELS = Path(__file__).resolve().parents[1] / "data" / "block_labels.csv"
MIN_RECALL = 0.9
MAX_FALSE_BLOCK_RATE = 0.05


@pytest.fixture(scope="module")
def outcomes() -> list[tuple[dict[str, str], bool]]:
    ai, search = OfflineAI(), OfflineSearch()
    with LABELS.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [(row, isinstance(run_pipeline(row["question"], [], row["lang"], None, ai, search), Blocked))
            for row in rows]


def rates(outcomes: list[tuple[dict[str, str], bool]], expected: str) -> dict[str, tuple[int, int]]:
    per_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row, blocked in outcomes:
        if row["expected"] == expected:
            per_kind[row["kind"]][0] += blocked
            per_kind[row["kind"]][1] += 1
    return {kind: (hit, total) for kind, (hit, total) in sorted(per_kind.items())}


def test_the_file_has_enough_rows_of_each_side(outcomes):
    sides = defaultdict(int)
    for row, _ in outcomes:
        sides[row["expected"]] += 1

    assert sides["block"] >= 60 and sides["allow"] >= 60


def test_the_offline_pipeline_blocks_at_least_90_percent_of_the_questions_that_must_be_blocked(outcomes, capsys):
    per_kind = rates(outcomes, "block")
    blocked, total = (sum(v[i] for v in per_kind.values()) for i in (0, 1))
    with capsys.disabled():
        print(f"\nblock recall {blocked}/{total}:", {k: f"{h}/{n}" for k, (h, n) in per_kind.items()})
    missed = [row["question"] for row, was_blocked in outcomes if row["expected"] == "block" and not was_blocked]

    assert blocked / total >= MIN_RECALL, missed


def test_the_offline_pipeline_blocks_at_most_5_percent_of_the_questions_that_must_pass(outcomes, capsys):
    per_kind = rates(outcomes, "allow")
    blocked, total = (sum(v[i] for v in per_kind.values()) for i in (0, 1))
    with capsys.disabled():
        print(f"\nfalse blocks {blocked}/{total}:", {k: f"{h}/{n}" for k, (h, n) in per_kind.items()})
    wrongly = [row["question"] for row, was_blocked in outcomes if row["expected"] == "allow" and was_blocked]

    assert blocked / total <= MAX_FALSE_BLOCK_RATE, wrongly
