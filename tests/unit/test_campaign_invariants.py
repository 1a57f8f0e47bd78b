"""The fault campaign's invariants must catch a bad record: a turn asked with the wrong history,
a trial missing or repeated, an analysis lost or doubled, token or cost totals off their rows' sums."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bson import ObjectId

from bench.campaign.invariants import BatchCheck, _analyses, _conversation_history, _spending, _trials
from lib.analyzers import MODULES
from lib.evaluation import flat, nested

T0 = datetime(2026, 11, 29, tzinfo=UTC)


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


# --- evaluation runs: trials, analyses, tokens and cost --------------------------------------

JUDGED = ["refusal", "similar-answer", "expert-scorer"]


def analysis(*names: str) -> dict:
    """What the engine stores for these analyzers: every column, nested by prefix."""
    return nested({column: f"{column}-value" for name in names for column in MODULES[name].COLUMNS})


def item(row: int, trial: int, trials: int, status: str = "succeeded", **extra) -> dict:
    doc = {"_id": ObjectId(), "rowIndex": row * trials + trial - 1, "rowNumber": row + 2, "trial": trial,
           "status": status, "chatId": f"chat-{row}-{trial}", "analysis": {},
           "cost": {"inputTokens": 100 + row, "outputTokens": 10, "usd": 0.000123}}
    return {**doc, **extra}


def batch(items: list[dict], trials: int = 1, analyzers: list[str] | None = None, **fields) -> dict:
    costs = [i.get("cost") or {} for i in items]
    doc = {"trials": trials, "analyzers": analyzers or [], "totalItems": len(items),
           "inputTokens": sum(c.get("inputTokens", 0) for c in costs),
           "outputTokens": sum(c.get("outputTokens", 0) for c in costs),
           "estimatedCostUsd": sum(c.get("usd", 0) for c in costs)}
    return {**doc, **fields}


def run(check_one, items: list[dict], doc: dict, *args) -> BatchCheck:
    check = BatchCheck(batch_id="b", name="n", status="processed", total=doc["totalItems"])
    check_one(check, doc, items, *args)
    return check


def test_trials_exact_pass_and_a_missing_or_repeated_trial_fails():
    good = [item(r, t, 2) for r in range(3) for t in (1, 2)]
    assert run(_trials, good, batch(good, trials=2), 3).violations == []
    missing = good[:-1]  # the last question has no trial 2
    assert run(_trials, missing, batch(missing, trials=2), 3).violations
    repeated = [*good[:-1], item(2, 1, 2)]  # trial 1 twice, trial 2 never
    assert run(_trials, repeated, batch(repeated, trials=2), 3).violations
    # Every question in both trials, but fewer questions than the file had: totalItems != rows x trials.
    assert run(_trials, good, batch(good, trials=2), 4).violations


def test_trials_sharing_a_chat_fail():
    shared = [item(r, t, 2, chatId=f"chat-{r}") for r in range(2) for t in (1, 2)]
    assert any("share a chat" in v for v in run(_trials, shared, batch(shared, trials=2), 2).violations)


def test_every_ended_row_holds_exactly_its_analyses_once():
    rows = [item(0, 1, 1, analysis=analysis(*JUDGED)),
            item(1, 1, 1, status="blocked", analysis=analysis("refusal")),  # a blocked row: no judge
            item(2, 1, 1, status="failed"), item(3, 1, 1, status="cancelled")]
    served = [{"status": i["status"], **flat(i["analysis"])} for i in rows]
    assert run(_analyses, rows, batch(rows, analyzers=JUDGED), served).violations == []

    lost = [item(0, 1, 1, analysis=analysis("refusal", "similar-answer"))]  # expert-scorer's lost
    check = run(_analyses, lost, batch(lost, analyzers=JUDGED), None)
    assert check.violations and check.lost == 1
    extra = [item(0, 1, 1, status="blocked", analysis=analysis(*JUDGED))]  # a judge ran on a refused row
    assert run(_analyses, extra, batch(extra, analyzers=JUDGED), None).violations
    partial = analysis(*JUDGED)
    del partial["similarity"]["label"]  # half a similarity: one column missing
    half = [item(0, 1, 1, analysis=partial)]
    assert run(_analyses, half, batch(half, analyzers=JUDGED), None).violations
    stray = [item(0, 1, 1, status="failed", analysis=analysis("refusal"))]
    assert run(_analyses, stray, batch(stray, analyzers=JUDGED), None).violations


def test_an_analysis_that_raised_keeps_its_error_cell_alone():
    errored = {"refusal": {"error": "ANALYZER_FAILED"}, "similarity": {"error": "ANALYZER_FAILED"},
               "expert": {"error": "ANALYZER_FAILED"}}
    rows = [item(0, 1, 1, analysis=errored)]
    assert run(_analyses, rows, batch(rows, analyzers=JUDGED), None).violations == []


def test_results_serving_other_analyses_than_stored_fail():
    rows = [item(0, 1, 1, analysis=analysis(*JUDGED))]
    served = [{"status": "succeeded", **flat(rows[0]["analysis"]), "similarity.label": "meaning-drift"}]
    assert run(_analyses, rows, batch(rows, analyzers=JUDGED), served).violations


def test_token_and_cost_totals_are_the_rows_sums():
    rows = [item(r, 1, 1) for r in range(4)] + [item(4, 1, 1, status="cancelled", cost=None)]
    good = run(_spending, rows, batch(rows))
    assert good.violations == [] and good.input_tokens == 4 * 100 + 6 and good.output_tokens == 40
    assert abs(good.cost_usd - 4 * 0.000123) < 1e-9
    doubled = batch(rows, inputTokens=4 * 100 + 6 + 103)  # a row's tokens counted twice
    assert len(run(_spending, rows, doubled).violations) == 1
    lost = batch(rows, outputTokens=30)  # a row's tokens never added
    assert len(run(_spending, rows, lost).violations) == 1
    cost = batch(rows, estimatedCostUsd=3 * 0.000123)
    assert len(run(_spending, rows, cost).violations) == 1
