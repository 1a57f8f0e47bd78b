"""Stages 5 and 6: the search query (model and offline) and the search with its one simpler retry."""

from __future__ import annotations

import pytest

from lib.chat.stages import query_rewrite, search
from lib.chat.stages.base import StageReplyError
from lib.chat.stages.query_rewrite import RewriteInput, RewriteResult, parse_reply, search_lang, strip_filler
from lib.chat.stages.search import SearchInput
from lib.providers.offline import OfflineAI, OfflineSearch
from tests.support.stage_fakes import ListSearch, ScriptedAI, result


def english(question: str, *earlier: str) -> RewriteInput:
    return RewriteInput(question, question, "eng", "en", earlier_questions=earlier)


@pytest.mark.parametrize(
    ("question", "lang", "expected"),
    [
        ("001. How do I apply for EI?", "en", "How do I apply for EI?"),
        ("Q4: Hello, can you tell me how to get a PR card please?", "en", "how to get a PR card?"),
        ("12) What is the Canada child benefit?", "en", "What is the Canada child benefit?"),
        ("Bonjour, je voudrais savoir comment renouveler mon passeport svp", "fr", "comment renouveler mon passeport"),
    ],
)
def test_numbering_and_filler_are_dropped(question, lang, expected):
    assert strip_filler(question, lang) == expected


@pytest.mark.parametrize(("question_language", "page", "expected"), [
    ("eng", "fr", "en"), ("fra", "en", "fr"), ("spa", "fr", "fr"), ("spa", "en", "en")])
def test_the_search_language_is_the_questions_when_english_or_french_else_the_pages(question_language, page, expected):
    assert search_lang(question_language, page) == expected


def test_an_offline_follow_up_without_a_topic_carries_the_previous_questions_topic():
    outcome = query_rewrite.run(english("How long does it take?", "How do I renew my passport?"), OfflineAI())

    assert "passport" in outcome.query


def test_an_offline_follow_up_with_its_own_topic_keeps_it():
    outcome = query_rewrite.run(english("And what about EI sickness benefits?", "How do I renew my passport?"),
                                OfflineAI())

    assert "passport" not in outcome.query and "sickness" in outcome.query


def test_a_french_follow_up_stays_in_french_and_on_topic():
    inp = RewriteInput("x", "Combien de temps ça prend?", "fra", "fr",
                       earlier_questions=("Comment renouveler mon passeport?",))

    outcome = query_rewrite.run(inp, OfflineAI())

    assert outcome.query_lang == "fr" and "passeport" in outcome.query


def test_the_model_query_is_parsed_from_its_tag_and_the_prompt_carries_the_conversation():
    ai = ScriptedAI("<query>renew adult passport site:canada.ca</query>")

    outcome = query_rewrite.run(english("How long does it take?", "How do I renew my passport?"), ai)

    assert outcome == RewriteResult("renew adult passport site:canada.ca", "en", outcome.usage)
    assert "How do I renew my passport?" in ai.requests[0].messages[0].content
    assert "English" in ai.requests[0].system


@pytest.mark.parametrize("reply", ["renew passport", "<query></query>", "<query>a</query><query>b</query>",
                                   "Here: <query>renew</query>", "<query>line one\nline two</query>",
                                   f"<query>{'word ' * 60}</query>"])
def test_a_malformed_query_reply_raises_a_stage_reply_error(reply):
    with pytest.raises(StageReplyError):
        parse_reply(reply)


def test_three_results_are_kept_and_no_retry_runs():
    provider = ListSearch([result(f"https://www.canada.ca/en/{i}.html") for i in range(5)])

    outcome = search.run(SearchInput("renew passport"), provider, lambda q: pytest.fail("no retry expected"))

    assert len(outcome.results) == 3 and outcome.retried is False
    assert provider.calls == [("renew passport", "en", None, 3)]


def test_one_result_or_none_retries_once_with_the_simpler_query_and_keeps_the_richer_results():
    many = [result("https://www.canada.ca/en/a.html"), result("https://www.canada.ca/en/b.html")]
    provider = ListSearch({"renew adult passport online fast": [], "renew passport": many})

    outcome = search.run(SearchInput("renew adult passport online fast"), provider,
                         lambda q: RewriteResult("renew passport", "en"))

    assert outcome.retried is True and outcome.query == "renew passport"
    assert outcome.first_query == "renew adult passport online fast"
    assert len(outcome.results) == 2 and len(provider.calls) == 2


def test_a_retry_that_finds_no_more_keeps_the_first_results():
    one = [result("https://www.canada.ca/en/a.html")]
    provider = ListSearch({"first query": one, "simpler": []})

    outcome = search.run(SearchInput("first query"), provider, lambda q: RewriteResult("simpler", "en"))

    assert outcome.query == "first query" and outcome.results == tuple(one) and outcome.retried is True


def test_the_offline_simpler_query_keeps_a_few_topic_words_and_drops_site():
    outcome = query_rewrite.run_simpler("renew adult passport online site:canada.ca", "en", OfflineAI())

    assert outcome.query == "renew adult passport"


def test_the_offline_search_with_the_offline_rewrite_finds_the_passport_page():
    rewrite = query_rewrite.run(english("001. How do I renew my passport?"), OfflineAI())

    outcome = search.run(SearchInput(rewrite.query, rewrite.query_lang), OfflineSearch())

    assert "renew-adult-passport" in outcome.results[0].url
