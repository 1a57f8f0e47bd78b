"""A batch's summary and its comparison with a baseline, computed from its items in one pass (api.md).

`summarise` reads each item's small projection once (status, stage, answer type, time,
analyses, expected outcome, cost) and counts: rows by status, blocked by stage, answer
types, analyzer pass rates (`lib.analyzers.passed`), block precision and recall where the
file says which questions should be blocked, latency p50/p95, tokens and cost against
the budget, each question's stability across its trials, and against a baseline how
many answers kept their meaning, drifted, got better or got worse.

`compare_rows` puts a batch's rows beside the baseline's trial 1, matched by `rowNumber`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from lib.analyzers import passed
from lib.evaluation import flat
from lib.models import Batch, ItemStatus

COMPARE_COLUMNS = ["rowNumber", "trial", "question", "baselineStatus", "baselineAnswer", "baselineCitationUrl",
                   "status", "answer", "citationUrl", "similarity.label", "similarity.score", "similarity.winner"]
ANSWERED = (ItemStatus.SUCCEEDED.value, ItemStatus.BLOCKED.value)


def percentile(values: list[int], q: float) -> int | None:
    """The nearest-rank percentile (q in 0..100) of the values, None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summarise(batch: Batch, rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The batch's summary from its items (see the module's docstring)."""
    by_status: dict[str, int] = {}
    blocked_by: dict[str, int] = {}
    answer_types: dict[str, int] = {}
    rates = {name: {"passed": 0, "failed": 0, "notApplicable": 0} for name in batch.analyzers}
    times: list[int] = []
    unpriced: set[str] = set()
    block = {"tp": 0, "fp": 0, "fn": 0, "tn": 0, "labelled": 0}
    questions: dict[int, list[bool]] = {}
    baseline = {"same": 0, "drift": 0, "better": 0, "worse": 0, "tie": 0, "notCompared": 0}
    judge_usage: dict[str, dict[str, int]] = {}
    for row in rows:
        status = row.get("status") or "unknown"
        by_status[status] = by_status.get(status, 0) + 1
        analysis = flat(row.get("analysis"))
        if status == ItemStatus.BLOCKED.value:
            stage = row.get("blockedBy") or "unknown"
            blocked_by[stage] = blocked_by.get(stage, 0) + 1
        answer_type = (row.get("result") or {}).get("answerType")
        if status == ItemStatus.SUCCEEDED.value and answer_type:
            answer_types[answer_type] = answer_types.get(answer_type, 0) + 1
        if status in ANSWERED and isinstance(row.get("responseTimeMs"), int):
            times.append(row["responseTimeMs"])
        unpriced.update((row.get("cost") or {}).get("unpriced") or [])
        for stage, used in ((row.get("tokens") or {}).get("byStage") or {}).items():
            if stage.startswith("analyzer."):
                entry = judge_usage.setdefault(stage.split(".", 1)[1], {"inputTokens": 0, "outputTokens": 0})
                entry["inputTokens"] += int(used.get("inputTokens") or 0)
                entry["outputTokens"] += int(used.get("outputTokens") or 0)
        row_passes = True
        for name in batch.analyzers:
            verdict = passed(name, analysis) if status in ANSWERED else None
            key = "notApplicable" if verdict is None else ("passed" if verdict else "failed")
            rates[name][key] += 1
            row_passes = row_passes and verdict is not False
        _count_block(block, status, analysis, (row.get("references") or {}).get("expectedOutcome"))
        if status in (*ANSWERED, ItemStatus.FAILED.value):
            # A trial passes when it was answered and no analyzer failed it (blocked rows pass when
            # no analyzer says they should not have been).
            ok = status in ANSWERED and row_passes and (status == ItemStatus.SUCCEEDED.value or bool(batch.analyzers))
            questions.setdefault(int(row.get("rowNumber") or 0), []).append(ok)
        if batch.baseline_batch_id is not None and status in ANSWERED:
            _count_baseline(baseline, analysis)
    return {
        "batchId": batch.id,
        "status": batch.status.value,
        "totalItems": batch.total_items,
        "trials": batch.trials,
        "byStatus": by_status,
        "blockedByStage": blocked_by,
        "answerTypes": answer_types,
        "analyzers": {name: _rate(counts) for name, counts in rates.items()},
        "blockDetection": _block_scores(block),
        "latencyMs": {"p50": percentile(times, 50), "p95": percentile(times, 95), "rows": len(times)},
        "tokens": {"input": batch.input_tokens, "output": batch.output_tokens, "judges": judge_usage},
        "cost": {"estimatedUsd": round(batch.estimated_cost_usd, 6), "budgetUsd": batch.budget_usd,
                 "budgetUsedPercent": round(100 * batch.estimated_cost_usd / batch.budget_usd, 1)
                 if batch.budget_usd else None,
                 "unpricedModels": sorted(unpriced), "stopReason": batch.stop_reason},
        "stability": _stability(questions, batch.trials),
        "baseline": {"batchId": batch.baseline_batch_id, **baseline} if batch.baseline_batch_id else None,
    }


def _rate(counts: dict[str, int]) -> dict[str, Any]:
    judged = counts["passed"] + counts["failed"]
    return {**counts, "passRate": round(counts["passed"] / judged, 4) if judged else None}


def _count_block(block: dict[str, int], status: str, analysis: Mapping[str, Any], expected: str | None) -> None:
    """Block detection against the file's expectedOutcome: positives are the questions to block."""
    if expected not in ("block", "answer") or status not in ANSWERED:
        return
    refused = analysis.get("refusal.detected")
    predicted = bool(refused) if isinstance(refused, bool) else status == ItemStatus.BLOCKED.value
    block["labelled"] += 1
    key = ("tp" if predicted else "fn") if expected == "block" else ("fp" if predicted else "tn")
    block[key] += 1


def _block_scores(block: dict[str, int]) -> dict[str, Any] | None:
    if not block["labelled"]:
        return None
    tp, fp, fn = block["tp"], block["fp"], block["fn"]
    return {"labelledRows": block["labelled"], "truePositives": tp, "falsePositives": fp, "falseNegatives": fn,
            "trueNegatives": block["tn"], "precision": round(tp / (tp + fp), 4) if tp + fp else None,
            "recall": round(tp / (tp + fn), 4) if tp + fn else None}


def _count_baseline(baseline: dict[str, int], analysis: Mapping[str, Any]) -> None:
    label = analysis.get("similarity.label")
    winner = analysis.get("similarity.winner")
    if label is None:
        baseline["notCompared"] += 1
        return
    baseline["same" if label == "same-meaning" else "drift"] += 1
    if winner in ("new", "baseline", "tie"):
        baseline[{"new": "better", "baseline": "worse", "tie": "tie"}[winner]] += 1


def _stability(questions: dict[int, list[bool]], trials: int) -> dict[str, Any]:
    """Each question's trials: all passed, mixed, or all failed (questions whose trials all ended)."""
    counts = {"allPass": 0, "mixed": 0, "allFail": 0}
    mixed_rows: list[int] = []
    for number, outcomes in sorted(questions.items()):
        if all(outcomes):
            counts["allPass"] += 1
        elif any(outcomes):
            counts["mixed"] += 1
            mixed_rows.append(number)
        else:
            counts["allFail"] += 1
    return {"trials": trials, "questions": len(questions), **counts, "mixedRowNumbers": mixed_rows[:100]}


def compare_rows(batch: Batch, rows: Iterable[Mapping[str, Any]], baseline_rows: Iterable[Mapping[str, Any]],
                 baseline_id: str) -> list[dict[str, Any]]:
    """The batch's rows beside the baseline's trial 1 (by rowNumber), in input order then trial.

    The similarity label and winner are the batch's own analysis when that baseline is the
    batch's own baseline (otherwise nobody judged the pair: they stay empty).
    """
    base = {int(r["rowNumber"]): r for r in baseline_rows
            if (r.get("trial") or 1) == 1 and r.get("rowNumber") is not None}
    judged = batch.baseline_batch_id == baseline_id
    out = []
    for row in sorted(rows, key=lambda r: (r.get("rowIndex") or 0, r.get("trial") or 1)):
        other = base.get(int(row.get("rowNumber") or 0), {})
        analysis = flat(row.get("analysis")) if judged else {}
        out.append({
            "rowNumber": row.get("rowNumber"), "trial": row.get("trial") or 1, "question": row.get("question"),
            "baselineStatus": other.get("status"), "baselineAnswer": _answer(other),
            "baselineCitationUrl": _citation(other), "status": row.get("status"), "answer": _answer(row),
            "citationUrl": _citation(row), "similarity.label": analysis.get("similarity.label"),
            "similarity.score": analysis.get("similarity.score"),
            "similarity.winner": analysis.get("similarity.winner"),
        })
    return out


def _answer(row: Mapping[str, Any]) -> str | None:
    if row.get("status") != ItemStatus.SUCCEEDED.value:
        return None
    return (row.get("result") or {}).get("answer") or row.get("answer")


def _citation(row: Mapping[str, Any]) -> str | None:
    if row.get("status") != ItemStatus.SUCCEEDED.value:
        return None
    return (row.get("result") or {}).get("citationUrl") or row.get("citationUrl")
