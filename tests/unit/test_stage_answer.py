"""Stage 8: the answer prompt, the strict parser of the tagged format, and the offline composer."""

from __future__ import annotations

from datetime import date

import pytest

from lib.chat.stages import answer
from lib.chat.stages.answer import AnswerInput, ParsedAnswer, build_request, parse_answer
from lib.chat.stages.answer_offline import answer_type_of, compose
from lib.chat.stages.base import StageReplyError
from lib.providers.offline import OfflineAI, OfflineSearch
from tests.support.stage_fakes import ScriptedAI, content_filter_error, result

PASSPORT_EN = "https://www.canada.ca/en/immigration-refugees-citizenship/services/canadian-passports/renew-adult-passport.html"
WELL_FORMED = """<preliminary-checks>English; passports</preliminary-checks>
<english-answer><s-1>You can renew online.</s-1><s-2>It takes 10 days.</s-2></english-answer>
<citation-head>Renew your passport</citation-head>
<citation-url>https://www.canada.ca/en/passport.html</citation-url>
<confidence>0.8</confidence>"""


def test_a_well_formed_english_reply_is_parsed_into_fields_and_the_checks_are_dropped():
    parsed = parse_answer(WELL_FORMED)

    assert parsed == ParsedAnswer(
        answer_type="normal", content="You can renew online. It takes 10 days.",
        english_answer="You can renew online. It takes 10 days.",
        sentences=("You can renew online.", "It takes 10 days."),
        english_sentences=("You can renew online.", "It takes 10 days."),
        citation_head="Renew your passport", citation_url="https://www.canada.ca/en/passport.html", confidence="0.8",
    )


def test_a_french_reply_has_the_answer_in_french_and_keeps_the_english_answer():
    parsed = parse_answer("<english-answer><s-1>Renew online.</s-1></english-answer>"
                          "<answer><s-1>Renouvelez en ligne.</s-1></answer>")

    assert parsed.content == "Renouvelez en ligne." and parsed.english_answer == "Renew online."
    assert parsed.sentences == ("Renouvelez en ligne.",)


@pytest.mark.parametrize("kind", ["not-gc", "pt-muni", "clarifying-question"])
def test_a_wrapped_answer_has_the_wrappers_answer_type(kind):
    parsed = parse_answer(f"<english-answer><{kind}><s-1>Text.</s-1></{kind}></english-answer>")

    assert parsed.answer_type == kind and parsed.content == "Text."


def test_a_wrapper_around_the_whole_answer_counts_too():
    parsed = parse_answer("<pt-muni><english-answer>Ask your province.</english-answer></pt-muni>")

    assert parsed.answer_type == "pt-muni"


def test_an_answer_without_sentence_tags_is_its_plain_text():
    parsed = parse_answer("<english-answer>Just text.</english-answer>")

    assert parsed.content == "Just text." and parsed.sentences == ()


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("Renew online.", "no <english-answer> or <answer>"),
        ("<preliminary-checks>x</preliminary-checks>", "no <english-answer>"),
        ("<english-answer><s-1>a</s-1><s-5>e</s-5></english-answer>", "more than 4 sentences"),
        ("<english-answer><s-1>a</s-1>", "never closed"),
        ("<english-answer><s-1>a</english-answer>", "never closed"),
        ("<english-answer>a</english-answer></answer>", "closes nothing"),
        ("<english-answer><not-gc><pt-muni>a</pt-muni></not-gc></english-answer>", "two answer types"),
        ("<english-answer>a</english-answer><english-answer>b</english-answer>", "appears 2 times"),
        ("<english-answer><s-1>a</s-1><s-1>b</s-1></english-answer>", "used twice"),
        ("<english-answer> </english-answer>", "empty"),
    ],
)
def test_a_malformed_answer_raises_a_stage_reply_error_that_says_why(reply, reason):
    with pytest.raises(StageReplyError) as caught:
        parse_answer(reply)

    assert reason in caught.value.reason


def test_the_prompt_carries_the_rules_scenario_results_date_and_output_language():
    inp = AnswerInput("How do I renew?", "Comment renouveler?", "fra", "fr",
                      search_results=(result(PASSPORT_EN, "Renew"),), department="IRCC", scenario="Passport scenario.",
                      today=date(2025, 3, 4))

    request = build_request(inp)

    for expected in ("<s-1>", "Passport scenario.", PASSPORT_EN, "2025-03-04", "Output language: French", "IRCC"):
        assert expected in request.system
    assert "Comment renouveler?" in request.messages[-1].content


def test_the_model_answer_is_parsed_with_its_usage():
    outcome = answer.run(AnswerInput("How do I renew?", "How do I renew?"), ScriptedAI(WELL_FORMED))

    assert outcome.answer.citation_url == "https://www.canada.ca/en/passport.html"
    assert outcome.usage.model == "fake-model" and outcome.refused is False


def test_a_malformed_model_answer_names_the_provider():
    with pytest.raises(StageReplyError) as caught:
        answer.run(AnswerInput("q", "q"), ScriptedAI("no tags at all"))

    assert caught.value.provider == "scripted" and caught.value.retryable


def test_a_content_filtered_answer_is_reported_as_refused():
    assert answer.run(AnswerInput("q", "q"), ScriptedAI(content_filter_error())).refused is True


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("How do I renew my driver's licence?", "pt-muni"), ("When is my property tax due?", "pt-muni"),
        ("How do I enrol my child in school? school enrolment", "pt-muni"), ("Comment obtenir mon permis de conduire?",
                                                                             "pt-muni"),
        ("Which provincial parks allow camping?", "pt-muni"), ("Best recipe for banana bread?", "not-gc"),
        ("Who won the hockey game last night?", "not-gc"), ("What is the weather forecast for Ottawa?", "not-gc"),
        ("Give me stock tips for 2025", "not-gc"), ("Quelle est la météo demain?", "not-gc"),
        ("How do I renew my passport?", None),
    ],
)
def test_the_offline_answer_type_comes_from_the_phrase_lists(question, kind):
    assert answer_type_of(question) == kind


def test_the_offline_answer_is_in_the_tagged_format_labelled_cited_and_at_most_four_sentences():
    results = OfflineSearch().search("renew my passport", "en", limit=3)

    parsed = parse_answer(compose("How do I renew my passport?", "How do I renew my passport?", "eng", results))

    assert parsed.answer_type == "normal" and parsed.content.startswith("[Offline answer] ")
    assert 1 <= len(parsed.sentences) <= 4 and all(s.endswith((".", "!", "?")) for s in parsed.sentences)
    assert parsed.citation_url == PASSPORT_EN


def test_a_french_question_gets_a_french_offline_answer_citing_the_french_page():
    results = OfflineSearch().search("renouveler mon passeport", "fr", limit=3)

    outcome = answer.run(AnswerInput("Comment renouveler mon passeport?", "Comment renouveler mon passeport?", "fra",
                                     "fr", search_results=tuple(results)), OfflineAI())

    assert outcome.answer.content.startswith("[Réponse hors ligne] ")
    assert "/fr/" in (outcome.answer.citation_url or "")
    assert outcome.answer.english_answer.startswith("[Offline answer] ")


def test_an_offline_question_with_no_results_is_a_clarifying_question():
    outcome = answer.run(AnswerInput("zzz unknown", "zzz unknown"), OfflineAI())

    assert outcome.answer.answer_type == "clarifying-question" and outcome.answer.citation_url is None
