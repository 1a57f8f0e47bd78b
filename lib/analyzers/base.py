"""What every analyzer shares: the row it looks at, what the row is compared with, the cells it writes.

An analyzer is a module with `NAME`, `PREFIX`, `COLUMNS` (its output columns, in order,
`<PREFIX>.error` last), `NEEDS_MODEL`, `analyze(row, refs, ai) -> Cells` and
`passed(columns) -> bool | None`. `analyze` never raises for a judge that failed: it
fills `<PREFIX>.error` and leaves its other cells None, so one broken judge marks one
cell and not the row.

Cells are JSON scalars or lists of strings (the results code joins lists with " | ").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lib.chat.stages.base import NO_USAGE, Usage

BLOCKED = "blocked"


@dataclass(frozen=True)
class References:
    """What a row is compared with: the file's evaluation columns, or the baseline batch's row.

    When the baseline's answer is there it becomes the reference of similar-answer and
    expert-scorer (`reference_text`), in place of the file's `referenceAnswer`.
    """

    reference_answer: str | None = None
    expected_citation: str | None = None
    expected_outcome: str | None = None  # "block" | "answer" | None
    baseline_answer: str | None = None
    baseline_citation: str | None = None
    baseline_status: str | None = None

    @property
    def reference_text(self) -> str | None:
        """The answer to compare with: the baseline's when there is one, else the file's reference."""
        for text in (self.baseline_answer, self.reference_answer):
            if text is not None and text.strip():
                return text.strip()
        return None

    @property
    def against_baseline(self) -> bool:
        """Whether `reference_text` is the baseline's answer (the judge then also names a winner)."""
        return bool(self.baseline_answer and self.baseline_answer.strip())


@dataclass(frozen=True)
class RowResult:
    """What the pipeline produced for the row (the question as stored: masked).

    `citation_status` is the pipeline's own citation check (`unchecked`, `verified` or
    `fallback`, lib.chat.stages.citation.CitationStatus) when it made one; it is optional
    so that a pipeline without that check (a deployed AI Answers) can leave it out.
    """

    status: str  # "succeeded" | "blocked"
    question: str
    lang: str  # "en" | "fr" (a question language, "eng" / "fra", reads the same)
    answer: str | None = None
    answer_type: str | None = None
    citation_url: str | None = None
    english_answer: str | None = None
    sentences: tuple[str, ...] = ()
    blocked_by: str | None = None
    citation_status: str | None = None

    @property
    def blocked(self) -> bool:
        """Whether the pipeline refused the question by design (it was never answered)."""
        return self.status == BLOCKED

    @property
    def answer_text(self) -> str | None:
        """The answer as the user saw it, or None for a blocked or empty answer."""
        if self.blocked or self.answer is None or not self.answer.strip():
            return None
        return self.answer.strip()


@dataclass(frozen=True)
class Cells:
    """One analyzer's output: its columns (every name of its COLUMNS) and what its judge call cost."""

    columns: dict[str, Any]
    usage: Usage = NO_USAGE


def empty(columns: tuple[str, ...]) -> dict[str, Any]:
    """Every column None: an analyzer that does not apply to this row."""
    return dict.fromkeys(columns)


def errored(columns: tuple[str, ...], code: str) -> dict[str, Any]:
    """Every column None but the error column (the last one), which gets `code`."""
    cells = empty(columns)
    cells[columns[-1]] = code
    return cells
