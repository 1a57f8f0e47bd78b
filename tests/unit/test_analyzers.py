"""The analyzers' pure cores: the upload-field parsers, the rules, the offline judges, the strict judge parser.

The judges' model path, over HTTP against the provider stub, is in
tests/integration/test_analyzer_judges.py.
"""

from __future__ import annotations

import json

import pytest

from lib.analyzers import (
    ANALYZER_NAMES,
    References,
    RowResult,
    citation,
    columns_for,
    expert_scorer,
    needs_model,
    parse_analyzers,
    parse_expected_outcome,
    passed,
    refusal,
    run_analyzers,
    similar_answer,
)
from lib.analyzers.facts import changed_facts, facts_of
from lib.analyzers.judge import MalformedJudgeReply, parse_reply
from lib.errors import BadRequest
from lib.providers.offline import OfflineAI

PASSPORT_Q = "How do I renew my passport?"
REFERENCE = ("You can renew your passport online or by mail. The fee is $160 for an adult passport "
             "valid for 10 years.")
PARAPHRASE = ("You can renew your adult passport by mail or online. An adult passport valid for 10 years "
              "costs $160.")
CHANGED_FEE = ("You can renew your passport online or by mail. The fee is $120 for an adult passport "
               "valid for 5 years.")
OTHER_TOPIC = "To apply for employment insurance, submit an application online through Service Canada."
CITED = "https://www.canada.ca/en/immigration-refugees-citizenship/services/canadian-passports.html"


def answered(answer: str = PARAPHRASE, answer_type: str = "normal", citation_url: str | None = CITED,
             **extra: object) -> RowResult:
    return RowResult("succeeded", PASSPORT_Q, "en", answer=answer, answer_type=answer_type,
                     citation_url=citation_url, **extra)  # type: ignore[arg-type]


BLOCKED = RowResult("blocked", "my name is XXX", "en", blocked_by="piStage1")


# -- the upload fields -----------------------------------------------------------------


@pytest.mark.parametrize(("value", "names"), [
    (None, ()),
    ("", ()),
    (" , ", ()),
    ("citation, refusal", ("refusal", "citation")),
    ("Expert-Scorer,similar-answer,refusal,refusal", ("refusal", "similar-answer", "expert-scorer")),
    (" similar-answer ", ("similar-answer",)),
])
def test_the_analyzers_field_names_each_analyzer_once_in_the_registry_order(value: str | None,
                                                                            names: tuple[str, ...]) -> None:
    assert parse_analyzers(value) == names


def test_an_unknown_analyzer_is_a_bad_request_that_lists_the_unknown_and_the_allowed_names() -> None:
    with pytest.raises(BadRequest) as caught:
        parse_analyzers("refusal, safety, bias")

    assert caught.value.status == 400
    assert caught.value.code == "INVALID_ANALYZERS"
    assert caught.value.details == {"unknown": ["bias", "safety"], "allowed": list(ANALYZER_NAMES)}


@pytest.mark.parametrize(("cell", "outcome"), [
    ("block", "block"), ("Blocked", "block"), (" REFUSE ", "block"), ("yes", "block"), ("TRUE", "block"),
    ("1", "block"), (1, "block"), (1.0, "block"), (True, "block"),
    ("answer", "answer"), ("Don't block", "answer"), ("don\u2019t  block", "answer"), ("dont block", "answer"),
    ("allow", "answer"), ("No", "answer"), ("false", "answer"), ("0", "answer"), (0, "answer"), (False, "answer"),
    (None, None), ("", None), ("   ", None),
])
def test_an_expected_outcome_cell_reads_as_block_answer_or_nothing(cell: object, outcome: str | None) -> None:
    assert parse_expected_outcome(cell) == outcome


@pytest.mark.parametrize("cell", ["maybe", "blocks", "2", 2, 0.5, "block it"])
def test_any_other_expected_outcome_is_a_value_error_for_a_row_warning(cell: object) -> None:
    with pytest.raises(ValueError, match="not block or answer"):
        parse_expected_outcome(cell)


def test_only_the_judges_need_a_model() -> None:
    assert not needs_model(("refusal", "citation"))
    assert needs_model(("refusal", "similar-answer"))
    assert needs_model(("expert-scorer",))
    assert not needs_model(())


def test_the_result_columns_come_in_the_registry_order_each_analyzer_ending_with_its_error() -> None:
    columns = columns_for(("expert-scorer", "refusal"))

    assert columns == [
        "refusal.detected", "refusal.expected", "refusal.match", "refusal.flagged", "refusal.error",
        "expert.verdict", "expert.ideasFound", "expert.ideasMissing", "expert.answerTypeOk", "expert.score",
        "expert.error",
    ]
    assert columns_for(ANALYZER_NAMES)[5:10] == ["citation.wellFormed", "citation.allowedDomain",
                                                 "citation.liveStatus", "citation.matchesExpected", "citation.error"]
    assert columns_for(()) == []


def test_the_analyzer_columns_never_collide_with_the_empty_expert_columns_of_the_export() -> None:
    from lib.results import EXPERT_COLUMNS

    assert not set(columns_for(ANALYZER_NAMES)) & set(EXPERT_COLUMNS)


# -- refusal ---------------------------------------------------------------------------


@pytest.mark.parametrize(("row", "expected", "cells"), [
    (BLOCKED, "block", (True, True, True, False)),
    (BLOCKED, "answer", (True, False, False, True)),
    (answered(answer_type="not-gc"), "block", (True, True, True, False)),
    (answered(answer_type="pt-muni"), "answer", (True, False, False, True)),
    (answered(answer_type="clarifying-question"), "answer", (False, False, True, False)),
    (answered(), "block", (False, True, False, True)),
    (answered(), "answer", (False, False, True, False)),
    (answered(), None, (False, None, None, None)),
])
def test_refusal_compares_a_block_or_refusal_type_answer_with_the_expected_outcome(
        row: RowResult, expected: str | None, cells: tuple[object, ...]) -> None:
    columns = refusal.analyze(row, References(expected_outcome=expected), None).columns

    assert tuple(columns[c] for c in refusal.COLUMNS[:4]) == cells
    assert columns["refusal.error"] is None
    assert refusal.passed(columns) is cells[2]


# -- citation --------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "well_formed", "allowed"), [
    (CITED, True, True),
    ("http://canada.ca/en.html", True, True),
    ("https://www.cra-arc.gc.ca/", True, True),
    ("https://example.com/canada.ca", True, False),
    ("https://canada.ca.example.com/", True, False),
    ("https://notcanada.ca/", True, False),
    ("ftp://www.canada.ca/file", False, False),
    ("www.canada.ca/en.html", False, False),
    ("https://user:pw@www.canada.ca/", False, False),
    ("https://www.canada.ca:port/", False, False),
    ("https://www.canada.ca/a page", False, False),
    ("https:///path-only", False, False),
    ("", False, False),
])
def test_a_citation_is_well_formed_with_an_http_scheme_and_a_host_and_allowed_on_canada_ca_or_gc_ca(
        url: str, well_formed: bool, allowed: bool) -> None:
    columns = citation.analyze(answered(citation_url=url), References(), None).columns

    assert (columns["citation.wellFormed"], columns["citation.allowedDomain"]) == (well_formed, allowed)
    assert columns["citation.matchesExpected"] is None
    assert citation.passed(columns) is (well_formed and allowed)


@pytest.mark.parametrize("expected", [
    "https://www.canada.ca/en/immigration-refugees-citizenship/services/canadian-passports.html",
    "http://canada.ca/en/immigration-refugees-citizenship/services/canadian-passports.html",
    "https://WWW.Canada.CA/en/immigration-refugees-citizenship/services/canadian-passports.html/",
    "https://canada.ca/en/immigration-refugees-citizenship/services/canadian-passports.html#renew",
    " https://www.canada.ca:443/en/immigration-refugees-citizenship/services/canadian-passports.html ",
])
def test_the_expected_citation_matches_whatever_its_scheme_host_case_www_trailing_slash_or_fragment(
        expected: str) -> None:
    columns = citation.analyze(answered(), References(expected_citation=expected), None).columns

    assert columns["citation.matchesExpected"] is True
    assert citation.passed(columns) is True


@pytest.mark.parametrize("expected", [
    "https://www.canada.ca/en/immigration-refugees-citizenship/services/Canadian-Passports.html",
    "https://www.canada.ca/en/immigration-refugees-citizenship/services/canadian-passports.html?x=1",
    "https://www.canada.ca/fr/immigration-refugies-citoyennete/services/passeports-canadiens.html",
])
def test_another_path_or_query_does_not_match_the_expected_citation_and_fails_the_row(expected: str) -> None:
    columns = citation.analyze(answered(), References(expected_citation=expected), None).columns

    assert columns["citation.matchesExpected"] is False
    assert citation.passed(columns) is False


@pytest.mark.parametrize(("status", "live"), [
    ("verified", "verified"), ("fallback", "fallback"), ("unchecked", None), (None, None),
])
def test_the_live_status_is_the_pipelines_own_check_and_none_when_it_made_none(status: str | None,
                                                                             live: str | None) -> None:
    columns = citation.analyze(answered(citation_status=status), References(), None).columns

    assert columns["citation.liveStatus"] == live


def test_a_blocked_row_has_no_citation_to_judge() -> None:
    columns = citation.analyze(BLOCKED, References(expected_citation=CITED), None).columns

    assert columns == dict.fromkeys(citation.COLUMNS)
    assert citation.passed(columns) is None


def test_an_answer_without_a_citation_is_neither_well_formed_nor_the_expected_one() -> None:
    columns = citation.analyze(answered(citation_url=None), References(expected_citation=CITED), None).columns

    assert (columns["citation.wellFormed"], columns["citation.allowedDomain"],
            columns["citation.matchesExpected"]) == (False, False, False)


# -- facts -----------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "facts"), [
    ("The fee is $1,500.00 as of April 30, 2025. See https://www.canada.ca/en/passport.html.",
     {"1500", "2025-04-30", "canada.ca/en/passport.html"}),
    ("Les frais sont de 1 500,00 $ depuis le 30 avril 2025; voir www.canada.ca/en/passport.html",
     {"1500", "2025-04-30", "canada.ca/en/passport.html"}),
    ("Apply by 2024-01-05, or in Février 2024; 12.5% of 3,2 items.", {"2024-01-05", "2024-02", "12.5", "3.2"}),
    ("It takes 10 business days.", {"10"}),
    ("Version 1.2.3 of the form.", set()),
    ("No facts here.", set()),
])
def test_facts_are_urls_dates_and_numbers_each_in_one_comparable_spelling(text: str, facts: set[str]) -> None:
    assert facts_of(text) == facts


def test_changed_facts_lists_the_references_facts_then_the_answers() -> None:
    assert changed_facts(REFERENCE, CHANGED_FEE) == ["10", "160", "120", "5"]
    assert changed_facts(REFERENCE, PARAPHRASE) == []


# -- similar-answer, offline -----------------------------------------------------------


OFFLINE = OfflineAI()


def test_a_paraphrase_with_the_same_facts_is_the_same_meaning_above_the_threshold() -> None:
    columns = similar_answer.analyze(answered(PARAPHRASE), References(reference_answer=REFERENCE), OFFLINE).columns

    assert columns["similarity.label"] == "same-meaning"
    assert similar_answer.SAME_MEANING_THRESHOLD <= columns["similarity.score"] < 1
    assert columns["similarity.changedFacts"] == []
    assert columns["similarity.winner"] is None  # the reference is not a baseline
    assert similar_answer.passed(columns) is True


def test_a_changed_amount_drifts_even_when_the_wording_is_nearly_the_same() -> None:
    columns = similar_answer.analyze(answered(CHANGED_FEE), References(reference_answer=REFERENCE), OFFLINE).columns

    assert columns["similarity.score"] >= 0.95
    assert columns["similarity.label"] == "meaning-drift"
    assert columns["similarity.changedFacts"] == ["10", "160", "120", "5"]
    assert similar_answer.passed(columns) is False


@pytest.mark.parametrize("answer", [
    OTHER_TOPIC,
    REFERENCE + " You will need two new photos and your old passport. Mail the form to Gatineau.",
])
def test_another_topic_or_an_added_sentence_scores_below_the_threshold(answer: str) -> None:
    columns = similar_answer.analyze(answered(answer), References(reference_answer=REFERENCE), OFFLINE).columns

    assert columns["similarity.score"] < similar_answer.SAME_MEANING_THRESHOLD
    assert columns["similarity.label"] == "meaning-drift"


def test_the_offline_label_and_accents_do_not_count_as_a_difference() -> None:
    score = similar_answer.similarity("Vous pouvez présenter une demande en ligne.",
                                      "[Réponse hors ligne] Vous pouvez presenter une demande en ligne.")

    assert score == 1.0


def test_against_a_baseline_the_same_meaning_is_a_tie_and_a_blocked_row_loses_to_the_baseline() -> None:
    refs = References(reference_answer=OTHER_TOPIC, baseline_answer="[Offline answer] " + REFERENCE)

    same = similar_answer.analyze(answered(REFERENCE), refs, OFFLINE).columns
    lost = similar_answer.analyze(BLOCKED, refs, OFFLINE).columns

    assert (same["similarity.label"], same["similarity.score"], same["similarity.winner"]) == ("same-meaning", 1.0,
                                                                                               "tie")
    assert (lost["similarity.label"], lost["similarity.score"], lost["similarity.winner"]) == ("meaning-drift", 0.0,
                                                                                               "baseline")


def test_without_a_reference_the_judges_fill_nothing_and_are_not_counted() -> None:
    analysis = run_analyzers(("similar-answer", "expert-scorer"), answered(), References(), OFFLINE)

    assert analysis.columns == dict.fromkeys(columns_for(("similar-answer", "expert-scorer")))
    assert analysis.usage == {} and analysis.models == {}
    assert passed("similar-answer", analysis.columns) is None
    assert passed("expert-scorer", analysis.columns) is None


# -- expert-scorer, offline ------------------------------------------------------------


def test_the_key_ideas_are_the_references_clauses_with_content_words() -> None:
    ideas = expert_scorer.key_ideas("[Offline answer] Renew online; it is fast.\n- Pay $160.\nOk. Yes!", "en")

    assert [idea.text for idea in ideas] == ["Renew online;", "it is fast.", "Pay $160."]
    assert ideas[0].words == frozenset({"renew", "online"})
    assert ideas[2].words == frozenset({"pay", "160"})


@pytest.mark.parametrize(("found", "total", "type_ok", "verdict"), [
    (3, 3, True, "pass"), (2, 3, True, "needs-review"), (2, 4, True, "needs-review"), (1, 3, True, "fail"),
    (0, 3, True, "fail"), (1, 1, True, "pass"), (3, 3, False, "fail"),
])
def test_the_verdict_is_pass_for_all_ideas_fail_below_half_and_review_between(found: int, total: int,
                                                                              type_ok: bool, verdict: str) -> None:
    assert expert_scorer.verdict_of(found, total, type_ok) == verdict


def test_an_answer_with_every_idea_passes_and_one_that_changed_a_number_misses_that_idea() -> None:
    refs = References(reference_answer=REFERENCE)

    good = expert_scorer.analyze(answered(PARAPHRASE), refs, OFFLINE).columns
    changed = expert_scorer.analyze(answered(CHANGED_FEE), refs, OFFLINE).columns

    assert (good["expert.verdict"], good["expert.score"], good["expert.ideasMissing"]) == ("pass", 1.0, [])
    assert changed["expert.verdict"] == "needs-review"
    assert changed["expert.ideasFound"] == ["You can renew your passport online or by mail."]
    assert changed["expert.ideasMissing"] == ["The fee is $160 for an adult passport valid for 10 years."]
    assert changed["expert.score"] == 0.5


def test_a_not_gc_answer_where_a_reference_exists_fails_the_answer_type_check() -> None:
    columns = expert_scorer.analyze(answered(REFERENCE, answer_type="not-gc"), References(reference_answer=REFERENCE),
                                    OFFLINE).columns

    assert (columns["expert.verdict"], columns["expert.answerTypeOk"]) == ("fail", False)
    assert expert_scorer.passed(columns) is False


def test_a_blocked_row_with_a_reference_fails_with_every_idea_missing() -> None:
    columns = expert_scorer.analyze(BLOCKED, References(reference_answer=REFERENCE), OFFLINE).columns

    assert columns == {"expert.verdict": "fail", "expert.ideasFound": [],
                       "expert.ideasMissing": ["You can renew your passport online or by mail.",
                                               "The fee is $160 for an adult passport valid for 10 years."],
                       "expert.answerTypeOk": False, "expert.score": 0.0, "expert.error": None}


@pytest.mark.parametrize("lang", ["fr", "fra"])
def test_french_ideas_are_found_through_folded_accents_and_plurals(lang: str) -> None:
    row = RowResult("succeeded", "Comment renouveler mon passeport?", lang,
                    answer="Vous pouvez renouveler vos passeports en ligne; les frais sont de 160 $.",
                    answer_type="normal")
    refs = References(reference_answer="Renouvelez votre passeport en ligne. Les frais s'élèvent à 160 $.")

    columns = expert_scorer.analyze(row, refs, OFFLINE).columns

    # "passeports" is "passeport"; two of three content words (60 % or more) find each idea.
    assert columns["expert.ideasFound"] == ["Renouvelez votre passeport en ligne.", "Les frais s'élèvent à 160 $."]
    assert columns["expert.verdict"] == "pass"


# -- the strict judge parser -----------------------------------------------------------


WELL_FORMED = {"label": "same-meaning", "score": 0.9, "changedFacts": [], "winner": None}


@pytest.mark.parametrize("reply", [
    json.dumps(WELL_FORMED),
    "  \n" + json.dumps(WELL_FORMED, indent=2) + "\n",
    "```json\n" + json.dumps(WELL_FORMED) + "\n```",
    json.dumps({**WELL_FORMED, "score": 1}),
])
def test_the_judge_parser_reads_one_json_object_of_the_asked_shape(reply: str) -> None:
    verdict = parse_reply(reply, similar_answer.SimilarityVerdict)

    assert verdict.label == "same-meaning" and verdict.changed_facts == [] and verdict.winner is None


@pytest.mark.parametrize("reply", [
    "",
    "same-meaning",
    "Here is my verdict: " + json.dumps(WELL_FORMED),
    json.dumps(WELL_FORMED) + "\nI hope this helps.",
    json.dumps(WELL_FORMED) + json.dumps(WELL_FORMED),
    json.dumps([WELL_FORMED]),
    '{"label": "same-meaning", "score": 0.9, "changedFacts": [], "winner": null',
    json.dumps({**WELL_FORMED, "confidence": 0.8}),
    json.dumps({k: v for k, v in WELL_FORMED.items() if k != "winner"}),
    json.dumps({**WELL_FORMED, "label": "same"}),
    json.dumps({**WELL_FORMED, "score": "0.9"}),
    json.dumps({**WELL_FORMED, "score": True}),
    json.dumps({**WELL_FORMED, "score": 1.5}),
    '{"label": "same-meaning", "score": NaN, "changedFacts": [], "winner": null}',
    json.dumps({**WELL_FORMED, "changedFacts": "none"}),
    json.dumps({**WELL_FORMED, "changedFacts": [1, 2]}),
    json.dumps({**WELL_FORMED, "winner": "new answer"}),
    '{"label": "same-meaning", "label": "meaning-drift", "score": 0.9, "changedFacts": [], "winner": null}',
    "```\n" + json.dumps(WELL_FORMED) + "\n``` and more",
])
def test_the_judge_parser_rejects_anything_else(reply: str) -> None:
    with pytest.raises(MalformedJudgeReply):
        parse_reply(reply, similar_answer.SimilarityVerdict)


def test_the_expert_parser_wants_a_boolean_answer_type_check_and_lists_of_strings() -> None:
    good = {"verdict": "needs-review", "ideasFound": ["a"], "ideasMissing": ["b"], "answerTypeOk": True}

    assert parse_reply(json.dumps(good), expert_scorer.ExpertVerdict).ideas_missing == ["b"]
    for bad in ({**good, "answerTypeOk": "true"}, {**good, "verdict": "PASS"}, {**good, "ideasFound": "a"},
                {**good, "ideas_found": ["a"]}):
        with pytest.raises(MalformedJudgeReply):
            parse_reply(json.dumps(bad), expert_scorer.ExpertVerdict)


# -- run_analyzers ---------------------------------------------------------------------


def test_run_analyzers_fills_every_column_and_counts_the_offline_judges_words() -> None:
    refs = References(reference_answer=REFERENCE, expected_citation=CITED, expected_outcome="answer")

    analysis = run_analyzers(ANALYZER_NAMES, answered(), refs, OFFLINE)

    assert list(analysis.columns) == columns_for(ANALYZER_NAMES)
    assert [passed(name, analysis.columns) for name in ANALYZER_NAMES] == [True, True, True, True]
    words = len(REFERENCE.split()) + len(PARAPHRASE.split())
    assert analysis.usage == {"analyzer.similar-answer": {"input": words, "output": 0},
                              "analyzer.expert-scorer": {"input": words, "output": 0}}
    assert analysis.models == {"similar-answer": "offline", "expert-scorer": "offline"}


def test_without_a_provider_the_judges_use_their_offline_method_and_count_nothing() -> None:
    analysis = run_analyzers(("similar-answer",), answered(), References(reference_answer=REFERENCE), None)

    assert analysis.columns["similarity.label"] == "same-meaning"
    assert analysis.usage == {} and analysis.models == {}


def test_an_errored_cell_is_not_applicable_to_the_pass_rates() -> None:
    assert passed("similar-answer", {"similarity.label": None, "similarity.error": "JUDGE_MALFORMED"}) is None
    assert passed("expert-scorer", {"expert.verdict": None, "expert.error": "PROVIDER_ERROR"}) is None
