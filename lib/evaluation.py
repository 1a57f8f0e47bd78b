"""Evaluation runs at upload and in the row's work: trials, references, baseline, analyzers (issue 12).

At upload (`lib/batches.py`):
- `parse_evaluation_fields`: the create form's `trials`, `analyzers`, `baselineBatchId`
  and `budgetUsd`, each checked with a code that says what to fix.
- `reference_columns` / `row_references`: the file's evaluation columns
  (`referenceAnswer`, `expectedCitation`, `expectedOutcome`, and their aliases) matched
  like every other column, and read per row into the item's `references`.
- `match_baseline`: the baseline batch's rows (trial 1) by `rowNumber`, checked to hold
  the same questions; their answer, citation and status join each row's references
  (`add_baseline`). The baseline is read, never written: once at create for a file sent
  whole; for a direct upload, its rows at the same places chunk by chunk by the ingestion
  steps (`lib/ingestion.py`), after create checked the two hold as many questions.

In the step (`lib/execution.py`): `row_result` and `references_of` turn the pipeline's
result and the stored references into the analyzers' inputs (`lib/analyzers`), and
`analysis_fields` runs them and shapes what is stored with the row's outcome.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lib.analyzers import (
    ANALYZER_NAMES,
    References,
    RowResult,
    needs_model,
    parse_analyzers,
    parse_expected_outcome,
    run_analyzers,
)
from lib.errors import BadRequest, ServiceUnavailable
from lib.models import ItemStatus
from lib.providers.base import AIProvider
from lib.spreadsheet import normalise_header

log = logging.getLogger("ai_answers.evaluation")

MAX_TRIALS = 8
MAX_BUDGET_USD = 1_000_000.0
# The file's evaluation columns and their aliases, matched like the other columns (case, spaces, _ and - ignored).
REFERENCE_HEADERS: dict[str, tuple[str, ...]] = {
    "referenceAnswer": ("referenceAnswer", "expectedAnswer", "goldenAnswer"),
    "expectedCitation": ("expectedCitation", "expectedCitationUrl"),
    "expectedOutcome": ("expectedOutcome", "BLOCK"),
}
MAX_MISMATCHES_LISTED = 20
_WHOLE = re.compile(r"[0-9]{1,2}")
_NUMBER = re.compile(r"[0-9]{1,9}(\.[0-9]{1,6})?")
_ERROR_CELL = "ANALYZER_FAILED"


@dataclass(frozen=True)
class EvaluationRequest:
    trials: int = 1
    analyzers: tuple[str, ...] = ()
    baseline_batch_id: str | None = None
    budget_usd: float | None = None


def parse_evaluation_fields(fields: Mapping[str, str]) -> EvaluationRequest:
    """The create form's evaluation fields, checked; each error names its field."""
    trials_text = (fields.get("trials") or "").strip()
    trials = 1
    if trials_text:
        if not _WHOLE.fullmatch(trials_text) or not 1 <= int(trials_text) <= MAX_TRIALS:
            raise BadRequest(f"trials must be a whole number from 1 to {MAX_TRIALS}.", code="INVALID_TRIALS",
                             details={"field": "trials", "max": MAX_TRIALS})
        trials = int(trials_text)
    try:
        analyzers = parse_analyzers(fields.get("analyzers"))
    except BadRequest as exc:
        raise BadRequest(exc.message, code=exc.code, details={**(exc.details or {}), "field": "analyzers"}) from None
    baseline = (fields.get("baselineBatchId") or "").strip() or None
    if baseline is not None and not re.fullmatch(r"[0-9a-f]{24}", baseline):
        raise BadRequest("baselineBatchId is not a valid batch id.", code="INVALID_BASELINE_ID",
                         details={"field": "baselineBatchId"})
    budget_text = (fields.get("budgetUsd") or "").strip()
    budget = None
    if budget_text:
        if not _NUMBER.fullmatch(budget_text) or not 0 < float(budget_text) <= MAX_BUDGET_USD \
                or not math.isfinite(float(budget_text)):
            raise BadRequest(f"budgetUsd must be a number of dollars above 0 and at most {MAX_BUDGET_USD:,.0f} "
                             "(like 5 or 12.50).", code="INVALID_BUDGET", details={"field": "budgetUsd"})
        budget = float(budget_text)
    return EvaluationRequest(trials=trials, analyzers=analyzers, baseline_batch_id=baseline, budget_usd=budget)


# --- the file's evaluation columns ------------------------------------------------------


def reference_columns(columns: Iterable[str]) -> dict[str, str]:
    """Which of the file's columns hold each kind of reference (the first alias found)."""
    by_key = {}
    for column in columns:
        by_key.setdefault(normalise_header(column), column)
    found: dict[str, str] = {}
    for kind, aliases in REFERENCE_HEADERS.items():
        for alias in aliases:
            column = by_key.get(normalise_header(alias))
            if column is not None:
                found[kind] = column
                break
    return found


def row_references(original: Mapping[str, Any], columns: Mapping[str, str]) -> tuple[dict[str, Any], str | None]:
    """A row's references from its cells, and a warning when its expected outcome is not block or answer."""
    refs: dict[str, Any] = {}
    warning = None
    for kind in ("referenceAnswer", "expectedCitation"):
        cell = original.get(columns[kind], "") if kind in columns else ""
        if isinstance(cell, str) and cell.strip():
            refs[kind] = cell.strip()
    if "expectedOutcome" in columns:
        cell = original.get(columns["expectedOutcome"], "")
        try:
            outcome = parse_expected_outcome(cell)
        except ValueError:
            outcome = None
            warning = (f"The {columns['expectedOutcome']!r} cell {str(cell)[:40]!r} is neither block nor answer; "
                       "the row is run without an expected outcome.")
        if outcome is not None:
            refs["expectedOutcome"] = outcome
    return refs, warning


# --- the baseline ----------------------------------------------------------------------


def baseline_references(doc: Mapping[str, Any]) -> dict[str, Any]:
    """What a baseline row gives the new one: its answer, citation and status."""
    result = doc.get("result") or {}
    answer = result.get("answer") or doc.get("answer")
    citation = result.get("citationUrl") or doc.get("citationUrl")
    return {"baselineAnswer": answer, "baselineCitation": citation, "baselineStatus": doc.get("status")}


def match_baseline(rows: Iterable[tuple[int, str]], baseline_docs: Iterable[Mapping[str, Any]], *,
                   complete: bool = True) -> dict[int, dict[str, Any]]:
    """The baseline's references by row number; raises BadRequest when its questions are not the same.

    `rows` are the new file's (rowNumber, question as kept); the baseline's rows are its
    trial 1. Questions are compared as stored (masked the same way), spaces ignored.
    `complete=False`: `rows` are one chunk of the file and `baseline_docs` the baseline's
    rows at the same places, so a baseline row the chunk lacks is not a mismatch (an
    ingestion checks the row counts once, at create).
    """
    by_number = {int(d["rowNumber"]): d for d in baseline_docs if (d.get("trial") or 1) == 1
                 and d.get("rowNumber") is not None}
    mismatched: list[int] = []
    matched: dict[int, dict[str, Any]] = {}
    seen = set()
    for number, question in rows:
        seen.add(number)
        doc = by_number.get(number)
        if doc is None or _plain(doc.get("question")) != _plain(question):
            mismatched.append(number)
            continue
        matched[number] = baseline_references(doc)
    missing = sorted(set(by_number) - seen) if complete else []
    if mismatched or missing:
        listed = sorted(set(mismatched) | set(missing))
        raise BadRequest("The baseline batch does not hold the same questions on the same rows "
                         f"(rows {', '.join(map(str, listed[:MAX_MISMATCHES_LISTED]))}"
                         f"{'…' if len(listed) > MAX_MISMATCHES_LISTED else ''}). Upload the same file.",
                         code="BASELINE_MISMATCH",
                         details={"field": "baselineBatchId", "rowNumbers": listed[:MAX_MISMATCHES_LISTED],
                                  "count": len(listed)})
    return matched


def _plain(text: object) -> str:
    return " ".join(str(text or "").split()).casefold()


def baseline_row_count_mismatch(row_count: int, baseline_total_items: int, baseline_trials: int) -> BadRequest | None:
    """A file of `row_count` questions against a baseline of another size: the error (checked before any row)."""
    baseline_rows = baseline_total_items // max(1, baseline_trials)
    if baseline_rows == row_count:
        return None
    return BadRequest(f"The baseline batch has {baseline_rows} questions where this file has {row_count}. "
                      "Upload the same file.", code="BASELINE_MISMATCH",
                      details={"field": "baselineBatchId", "rowCount": row_count, "baselineRowCount": baseline_rows})


def add_baseline(items: list[dict[str, Any]], baseline_docs: Iterable[Mapping[str, Any]],
                 analyzers: Sequence[str], lang: str, *, complete: bool = True) -> None:
    """Join the baseline's answers to the rows' references (raises BASELINE_MISMATCH).

    Rows refused at upload get their rules-only analyses again: the refusal analyzer
    reads the baseline's status too.
    """
    firsts = [(d["rowNumber"], d["question"]) for d in items if d["trial"] == 1]
    matched = match_baseline(firsts, baseline_docs, complete=complete)
    for doc in items:
        doc["references"] = {**doc["references"], **matched.get(doc["rowNumber"], {})}
        if doc["status"] == ItemStatus.BLOCKED.value and analyzers:
            doc["analysis"] = upload_analysis(doc, lang, analyzers)


def upload_analysis(doc: Mapping[str, Any], lang: str, analyzers: Sequence[str]) -> dict[str, Any]:
    """The rules-only analyses of a row refused at upload (there is no answer for a judge to read)."""
    names = rules_only(analyzers)
    if not names:
        return {}
    row = row_result(status=ItemStatus.BLOCKED.value, question=doc["question"], lang=lang,
                     blocked_by=doc["blockedBy"])
    return nested(analyse_row(names, row, references_of(doc.get("references")), None).columns)


# --- in the row's work -----------------------------------------------------------------


def references_of(stored: Mapping[str, Any] | None) -> References:
    """The analyzers' references from what the item stores."""
    s = stored or {}
    return References(reference_answer=s.get("referenceAnswer"), expected_citation=s.get("expectedCitation"),
                      expected_outcome=s.get("expectedOutcome"), baseline_answer=s.get("baselineAnswer"),
                      baseline_citation=s.get("baselineCitation"), baseline_status=s.get("baselineStatus"))


def row_result(*, status: str, question: str, lang: str, fields: Mapping[str, Any] | None = None,
               answer: str | None = None, citation_url: str | None = None, blocked_by: str | None = None
               ) -> RowResult:
    """The analyzers' view of a row's outcome (the answer fields of `lib.chat.record.answer_fields`)."""
    f = fields or {}
    sentences = tuple(s for s in (f.get(f"sentence{n}") for n in range(1, 5)) if isinstance(s, str) and s)
    return RowResult(status=status, question=question, lang=f.get("questionLanguage") or lang,
                     answer=f.get("answer", answer), answer_type=f.get("answerType"),
                     citation_url=f.get("citationUrl", citation_url), english_answer=f.get("englishAnswer"),
                     sentences=sentences, blocked_by=blocked_by, citation_status=f.get("citationStatus"))


def rules_only(names: Iterable[str]) -> tuple[str, ...]:
    """The analyzers that call no judge (what a blocked row gets)."""
    return tuple(name for name in names if not needs_model([name]))


@dataclass(frozen=True)
class RowAnalysis:
    columns: dict[str, Any]
    tokens_by_stage: dict[str, dict[str, Any]]  # {"analyzer.<name>": {"model", "inputTokens", "outputTokens"}}


def analyse_row(names: tuple[str, ...], row: RowResult, refs: References, ai: AIProvider | None) -> RowAnalysis:
    """Run the batch's analyzers on one row; what to store with its outcome.

    A judge's failure is already in its own error cell (lib/analyzers). A bug in an
    analyzer must not lose the row's answer either: its error cells say so and the row
    is recorded. `ServiceUnavailable` goes up: the step fails and the row runs again.
    """
    if not names:
        return RowAnalysis({}, {})
    try:
        analysis = run_analyzers(names, row, refs, ai)
    except ServiceUnavailable:
        raise
    except Exception:  # a bug must not lose the row's answer (nor fail the step again and again)
        log.exception("analyzers %s failed on a row", ",".join(names))
        return RowAnalysis({f"{_prefix(name)}.error": _ERROR_CELL for name in names}, {})
    by_stage = {
        stage: {"model": analysis.models.get(stage.split(".", 1)[-1]), "inputTokens": int(used.get("input") or 0),
                "outputTokens": int(used.get("output") or 0)}
        for stage, used in analysis.usage.items()
    }
    return RowAnalysis(dict(analysis.columns), by_stage)


_PREFIXES = {"refusal": "refusal", "citation": "citation", "similar-answer": "similarity", "expert-scorer": "expert"}


def _prefix(name: str) -> str:
    return _PREFIXES.get(name, name)


def analyzers_offered() -> list[dict[str, Any]]:
    """The analyzers an upload may choose, for `options`."""
    return [{"name": name, "needsModel": needs_model([name])} for name in ANALYZER_NAMES]


def nested(columns: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Analyzer columns as stored: `{"similarity": {"label": ...}}` (field names in the database hold no dots)."""
    out: dict[str, dict[str, Any]] = {}
    for column, value in columns.items():
        prefix, _, name = column.partition(".")
        out.setdefault(prefix, {})[name or "value"] = value
    return out


def flat(stored: Mapping[str, Any] | None) -> dict[str, Any]:
    """Stored analyses back as flat columns (`similarity.label`)."""
    return {f"{prefix}.{name}": value for prefix, cells in (stored or {}).items() if isinstance(cells, Mapping)
            for name, value in cells.items()}
