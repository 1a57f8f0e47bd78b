"""Analyzers chosen per batch: each adds typed columns to a row, after its answer, in the row's own work.

The registry of the four analyzers (`ANALYZER_NAMES`, one module each, the shape in
`lib.analyzers.base`), the parsers of the upload fields that choose and feed them, and
`run_analyzers`, which the engine calls once per row inside the row's claim so that a
redelivery neither loses nor repeats an analysis. Rules-only analyzers (refusal,
citation) need no provider; the judges (similar-answer, expert-scorer) ask the batch's
AI provider, or use their deterministic method with the offline one.

A judge that fails marks its own `<prefix>.error` cell; `run_analyzers` never raises
for it, and the other analyzers of the row still run.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from lib.analyzers import citation, expert_scorer, refusal, similar_answer
from lib.analyzers.base import References, RowResult
from lib.errors import BadRequest
from lib.providers.base import AIProvider

__all__ = [
    "ANALYZER_NAMES", "Analysis", "References", "RowResult", "columns_for", "needs_model", "parse_analyzers",
    "parse_expected_outcome", "passed", "run_analyzers",
]

MODULES: dict[str, ModuleType] = {m.NAME: m for m in (refusal, citation, similar_answer, expert_scorer)}
ANALYZER_NAMES: tuple[str, ...] = ("refusal", "citation", "similar-answer", "expert-scorer")
USAGE_PREFIX = "analyzer."
# Spellings of the file's expectedOutcome / BLOCK column (case and spacing ignored).
_BLOCK_WORDS = frozenset({"block", "blocked", "refuse", "refused", "yes", "true", "1"})
_ANSWER_WORDS = frozenset({"answer", "don't block", "dont block", "do not block", "allow", "no", "false", "0"})


@dataclass(frozen=True)
class Analysis:
    """A row's analyses: flat result columns, judge tokens per analyzer, and the judge model per analyzer."""

    columns: dict[str, Any]
    usage: dict[str, dict[str, int]]
    models: dict[str, str]


def parse_analyzers(value: str | None) -> tuple[str, ...]:
    """The analyzers a comma list names, in `ANALYZER_NAMES` order, once each.

    Raises `BadRequest` (INVALID_ANALYZERS) when a name is not an analyzer.
    """
    names = {part.strip().lower() for part in (value or "").split(",") if part.strip()}
    unknown = sorted(names - set(ANALYZER_NAMES))
    if unknown:
        raise BadRequest(f"Unknown analyzer(s): {', '.join(unknown)}. Choose from: {', '.join(ANALYZER_NAMES)}.",
                         code="INVALID_ANALYZERS", details={"unknown": unknown, "allowed": list(ANALYZER_NAMES)})
    return tuple(name for name in ANALYZER_NAMES if name in names)


def parse_expected_outcome(cell: object) -> str | None:
    """"block" or "answer" from an expectedOutcome / BLOCK cell; None when blank.

    Raises `ValueError` for any other value (the upload turns it into a warning for the row).
    """
    if cell is None:
        return None
    if isinstance(cell, bool):
        return "block" if cell else "answer"
    if isinstance(cell, int | float):
        if cell in (0, 1):
            return "block" if cell == 1 else "answer"
        raise ValueError(f"expected outcome {cell!r} is not block or answer")
    text = " ".join(str(cell).replace("\u2019", "'").split()).lower()
    if not text:
        return None
    if text in _BLOCK_WORDS:
        return "block"
    if text in _ANSWER_WORDS:
        return "answer"
    raise ValueError(f"expected outcome {str(cell)[:40]!r} is not block or answer")


def _modules(names: Iterable[str]) -> list[ModuleType]:
    chosen = set(names)
    unknown = chosen - set(ANALYZER_NAMES)
    if unknown:
        raise ValueError(f"not analyzers: {sorted(unknown)}")
    return [MODULES[name] for name in ANALYZER_NAMES if name in chosen]


def needs_model(names: Iterable[str]) -> bool:
    """Whether one of the analyzers asks a judge (similar-answer, expert-scorer)."""
    return any(module.NEEDS_MODEL for module in _modules(names))


def columns_for(names: Iterable[str]) -> list[str]:
    """Every output column of these analyzers, in `ANALYZER_NAMES` order, each ending with its error column."""
    return [column for module in _modules(names) for column in module.COLUMNS]


def run_analyzers(names: Iterable[str], row: RowResult, refs: References, ai: AIProvider | None) -> Analysis:
    """Run the chosen analyzers on one row. A judge's failure is in its error cell; this never raises for it.

    `ai` is the batch's AI provider (the offline one in the local stack); None runs the
    judges' deterministic method, as the offline provider does, without counting usage.
    """
    columns: dict[str, Any] = {}
    usage: dict[str, dict[str, int]] = {}
    models: dict[str, str] = {}
    for module in _modules(names):
        cells = module.analyze(row, refs, ai)
        columns.update({column: cells.columns.get(column) for column in module.COLUMNS})
        spent = cells.usage
        if spent.model or spent.input_tokens or spent.output_tokens:
            usage[USAGE_PREFIX + module.NAME] = {"input": spent.input_tokens, "output": spent.output_tokens}
            if spent.model:
                models[module.NAME] = spent.model
    return Analysis(columns, usage, models)


def passed(name: str, columns: dict[str, Any]) -> bool | None:
    """Whether a row passed one analyzer, for the summary's pass rates; None when not applicable or errored."""
    return MODULES[name].passed(columns)
