"""Evaluation runs' pure parts: the create fields, the file's reference columns, the baseline match,
prices, and the summary's counts (issue 12)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from lib.errors import BadRequest
from lib.evaluation import flat, match_baseline, nested, parse_evaluation_fields, reference_columns, row_references
from lib.models import Batch
from lib.pricing import PriceTable, parse_prices
from lib.summary import compare_rows, percentile, summarise

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def batch(**changes) -> Batch:
    doc = {"_id": "6560f0f0f0f0f0f0f0f0f0f0", "name": "b", "status": "processed", "uploaderUserId": "u",
           "aiProvider": "openai", "searchProvider": "offline", "pageLanguage": "en", "totalItems": 4,
           "createdAt": NOW, "updatedAt": NOW, **changes}
    return Batch.from_doc(doc)


@pytest.mark.parametrize(("fields", "expected"), [
    ({}, (1, (), None, None)),
    ({"trials": "8", "analyzers": "citation, refusal,refusal", "budgetUsd": "12.50",
      "baselineBatchId": "6560f0f0f0f0f0f0f0f0f0f0"}, (8, ("refusal", "citation"), "6560f0f0f0f0f0f0f0f0f0f0", 12.5)),
    ({"trials": " 2 ", "analyzers": "", "budgetUsd": ""}, (2, (), None, None)),
])
def test_the_evaluation_fields_of_a_create_are_read_with_their_defaults(fields, expected):
    got = parse_evaluation_fields(fields)
    assert (got.trials, got.analyzers, got.baseline_batch_id, got.budget_usd) == expected


@pytest.mark.parametrize(("field", "value", "code"), [
    ("trials", "0", "INVALID_TRIALS"), ("trials", "9", "INVALID_TRIALS"), ("trials", "-1", "INVALID_TRIALS"),
    ("trials", "٣", "INVALID_TRIALS"), ("analyzers", "judge", "INVALID_ANALYZERS"),
    ("budgetUsd", "0", "INVALID_BUDGET"), ("budgetUsd", "0.0000001", "INVALID_BUDGET"),
    ("budgetUsd", "inf", "INVALID_BUDGET"), ("budgetUsd", "5,00", "INVALID_BUDGET"),
    ("baselineBatchId", "6560F0F0", "INVALID_BASELINE_ID"), ("baselineBatchId", "{'$ne': 1}", "INVALID_BASELINE_ID"),
])
def test_a_bad_evaluation_field_is_refused_with_a_code_naming_it(field, value, code):
    with pytest.raises(BadRequest) as refused:
        parse_evaluation_fields({field: value})
    assert refused.value.code == code and refused.value.details["field"] == field


def test_reference_columns_are_matched_like_the_other_columns_first_alias_winning():
    columns = ["QUESTION", "golden_answer", "Expected Answer", "expected-citation-url", "block"]
    assert reference_columns(columns) == {"referenceAnswer": "Expected Answer",
                                          "expectedCitation": "expected-citation-url", "expectedOutcome": "block"}


@pytest.mark.parametrize(("cell", "outcome", "warned"), [
    ("Don't block", "answer", False), ("BLOCKED", "block", False), ("", None, False), ("maybe", None, True),
])
def test_a_rows_expected_outcome_is_read_and_a_value_that_is_neither_is_a_warning(cell, outcome, warned):
    refs, warning = row_references({"a": " The answer ", "o": cell}, {"referenceAnswer": "a", "expectedOutcome": "o"})
    assert refs.get("expectedOutcome") == outcome and refs["referenceAnswer"] == "The answer"
    assert (warning is not None) == warned


def test_the_baseline_is_matched_by_row_number_on_its_first_trial_and_a_different_question_is_refused():
    baseline = [{"rowNumber": 2, "trial": 1, "question": "How  do I renew?", "status": "succeeded",
                 "result": {"answer": "Online.", "citationUrl": "https://www.canada.ca/a"}},
                {"rowNumber": 2, "trial": 2, "question": "How do I renew?", "status": "failed"},
                {"rowNumber": 3, "trial": 1, "question": "Hi", "status": "blocked"}]
    matched = match_baseline([(2, "how do i renew?"), (3, "hi")], baseline)
    assert matched[2] == {"baselineAnswer": "Online.", "baselineCitation": "https://www.canada.ca/a",
                          "baselineStatus": "succeeded"}
    assert matched[3]["baselineStatus"] == "blocked"
    with pytest.raises(BadRequest) as refused:
        match_baseline([(2, "how do i renew?"), (3, "Hello")], baseline)
    assert refused.value.code == "BASELINE_MISMATCH" and refused.value.details["rowNumbers"] == [3]
    with pytest.raises(BadRequest):
        match_baseline([(2, "how do i renew?")], baseline)  # the baseline has a row the file lacks


def test_analyzer_columns_are_stored_without_dots_and_read_back_flat():
    columns = {"similarity.label": "same-meaning", "similarity.changedFacts": ["a"], "refusal.detected": False}
    assert nested(columns) == {"similarity": {"label": "same-meaning", "changedFacts": ["a"]},
                               "refusal": {"detected": False}}
    assert flat(nested(columns)) == columns


def test_prices_take_the_longest_listed_prefix_and_an_unknown_model_costs_nothing_but_is_named():
    table = PriceTable.with_overrides(parse_prices('{"stub-model": {"input": 1, "output": 2}}'))
    cost = table.row_cost({"answer": {"model": "gpt-4.1-mini-2025-04-14", "inputTokens": 1_000_000,
                                      "outputTokens": 500_000},
                           "analyzer.similar-answer": {"model": "stub-model", "inputTokens": 10, "outputTokens": 5},
                           "translation": {"model": "mystery", "inputTokens": 7, "outputTokens": 1}})
    assert cost.input_tokens == 1_000_017 and cost.output_tokens == 500_006
    assert cost.usd == pytest.approx(0.40 + 0.80 + (10 + 10) / 1_000_000)
    assert cost.unpriced == ("mystery",)
    blocked = table.row_cost({}, fallback_model="gpt-4.1", input_tokens=1000, output_tokens=0)
    assert blocked.usd == pytest.approx(0.002)


@pytest.mark.parametrize("text", ['[1]', '{"m": 1}', '{"m": {"input": -1}}', '{"m": {"input": "1"}}',
                                  '{"m": {"input": 1, "cached": 2}}', "{nope"])
def test_a_malformed_price_table_is_refused(text):
    with pytest.raises(ValueError):
        parse_prices(text)


def test_percentiles_are_nearest_rank():
    assert percentile([], 50) is None
    assert percentile([30, 10, 20, 40], 50) == 20 and percentile(list(range(1, 101)), 95) == 95


def row(number, trial, status="succeeded", **extra):
    return {"rowNumber": number, "rowIndex": (number - 2) * 2 + trial - 1, "trial": trial, "status": status,
            "responseTimeMs": 100 * number, **extra}


def test_the_summary_counts_statuses_pass_rates_block_scores_stability_and_baseline_drift():
    b = batch(trials=2, analyzers=["refusal", "similar-answer"], baselineBatchId="6560f0f0f0f0f0f0f0f0f0f1",
              estimatedCostUsd=0.5, budgetUsd=2.0)
    same = {"similarity": {"label": "same-meaning", "winner": "tie"}, "refusal": {"detected": False, "match": True}}
    drift = {"similarity": {"label": "meaning-drift", "winner": "baseline"},
             "refusal": {"detected": False, "match": True}}
    rows = [row(2, 1, analysis=same, references={"expectedOutcome": "answer"}, result={"answerType": "normal"}),
            row(2, 2, analysis=drift, references={"expectedOutcome": "answer"}),
            row(3, 1, "blocked", blockedBy="shortQuery", references={"expectedOutcome": "block"},
                analysis={"refusal": {"detected": True, "match": True}}),
            row(3, 2, "failed")]
    summary = summarise(b, rows)
    assert summary["byStatus"] == {"succeeded": 2, "blocked": 1, "failed": 1}
    assert summary["blockedByStage"] == {"shortQuery": 1} and summary["answerTypes"] == {"normal": 1}
    assert summary["analyzers"]["similar-answer"]["passRate"] == 0.5
    assert summary["analyzers"]["refusal"]["passed"] == 3
    assert summary["blockDetection"]["precision"] == 1.0 and summary["blockDetection"]["recall"] == 1.0
    assert summary["latencyMs"] == {"p50": 200, "p95": 300, "rows": 3}
    assert summary["stability"]["allPass"] == 0 and summary["stability"]["mixed"] == 2
    assert summary["baseline"]["same"] == 1 and summary["baseline"]["drift"] == 1
    assert summary["baseline"]["worse"] == 1 and summary["baseline"]["tie"] == 1
    assert summary["cost"]["budgetUsedPercent"] == 25.0


def test_compare_puts_each_row_beside_the_baselines_first_trial_and_judges_only_against_its_own_baseline():
    b = batch(baselineBatchId="6560f0f0f0f0f0f0f0f0f0f1")
    mine = [row(2, 2, answer="New 2"), row(2, 1, answer="New 1",
                                           analysis={"similarity": {"label": "same-meaning", "winner": "new"}})]
    base = [row(2, 1, answer="Old", citationUrl="https://www.canada.ca/old"), row(2, 2, answer="Old 2")]
    rows = compare_rows(b, mine, base, "6560f0f0f0f0f0f0f0f0f0f1")
    assert [(r["trial"], r["answer"], r["baselineAnswer"]) for r in rows] == [(1, "New 1", "Old"), (2, "New 2", "Old")]
    assert rows[0]["similarity.winner"] == "new" and rows[0]["baselineCitationUrl"] == "https://www.canada.ca/old"
    assert compare_rows(b, mine, base, "6560f0f0f0f0f0f0f0f0f0f2")[0]["similarity.label"] is None
