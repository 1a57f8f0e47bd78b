"""The offline search and answer providers: deterministic, bilingual, cited, labelled."""

from __future__ import annotations

import re
import time
from itertools import combinations

import pytest

from lib.providers.base import ChatTurn, CompletionRequest, SearchResult
from lib.providers.offline import HOME, OfflineAI, OfflineSearch, corpus, find_page, fold, tokenize
from lib.settings import Settings

BASE_ENV = {
    "MONGODB_URI": "mongodb://127.0.0.1:1",
    "JWT_SECRET": "x" * 32,
    "PUBLIC_BASE_URL": "http://127.0.0.1:3000",
    "QSTASH_URL": "http://127.0.0.1:8080",
}
CITATION = re.compile(r"\n<citation-url>(?P<url>[^<\s]+)</citation-url>$")
PASSPORT_PAGE = (
    "https://www.canada.ca/en/immigration-refugees-citizenship/services/canadian-passports/renew-adult-passport.html"
)
EI_PAGE = "https://www.canada.ca/en/services/benefits/ei/ei-regular-benefit.html"


def ask(question: str, lang: str = "en", results: list[SearchResult] | None = None) -> str:
    """The offline answer text for a one-turn conversation."""
    request = CompletionRequest(
        system="Answer briefly.", messages=[ChatTurn("user", question)], lang=lang, search_results=results or []
    )  # type: ignore[arg-type]
    return OfflineAI().complete(request).text


def cited_url(text: str) -> str:
    match = CITATION.search(text)
    assert match, f"no final citation line in {text!r}"
    return match["url"]


def cited_page_id(text: str, lang: str = "en") -> str:
    page = find_page(cited_url(text), lang)
    assert page is not None, f"{cited_url(text)} is not a corpus page"
    return page.id


# -- the corpus ----------------------------------------------------------------------------


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_each_language_has_20_to_30_canada_ca_pages_of_2_to_4_passages(lang: str) -> None:
    pages = corpus(lang).pages

    assert 20 <= len(pages) <= 30
    for page in pages:
        assert page.url.startswith(f"https://www.canada.ca/{lang}/")
        assert 2 <= len(page.passages) <= 4 and page.title


def test_both_languages_cover_the_same_topics() -> None:
    assert [p.id for p in corpus("en").pages] == [p.id for p in corpus("fr").pages]


def test_accents_and_case_fold_away_and_stop_words_drop_out() -> None:
    assert fold("Régime ÉTÉ Œuvre") == "regime ete oeuvre"
    assert tokenize("Comment renouveler mes passeports ?", "fr") == ["renouveler", "passeport"]
    assert tokenize("How do I renew my passports?", "en") == ["renew", "passport"]


# -- the answer ----------------------------------------------------------------------------


def test_the_same_question_gets_the_same_answer_twice() -> None:
    request = CompletionRequest(system="s", messages=[ChatTurn("user", "When is the tax deadline?")], lang="en")

    assert OfflineAI().complete(request) == OfflineAI().complete(request)


@pytest.mark.parametrize(
    ("question", "lang", "topic"),
    [
        ("How do I renew my passport?", "en", "passport-renew"),
        ("How much is a passport for my 10 year old child?", "en", "passport-child"),
        ("Am I eligible for EI if I was laid off?", "en", "ei-regular"),
        ("How many weeks of maternity leave can I get?", "en", "ei-maternity-parental"),
        ("When do I have to file my income tax return?", "en", "income-tax"),
        ("Someone called saying I owe the CRA and must pay with gift cards", "en", "scams"),
        ("How do I update my address with the CRA?", "en", "change-address"),
        ("Do I need an eTA to fly to Canada?", "en", "eta"),
        ("Comment renouveler mon passeport ?", "fr", "passport-renew"),
        ("Suis-je admissible à l'assurance-emploi après une mise à pied?", "fr", "ei-regular"),
        ("Qui peut avoir le regime de soins dentaires?", "fr", "dental-care-plan"),
    ],
)
def test_a_question_is_answered_from_the_page_about_its_topic(question: str, lang: str, topic: str) -> None:
    assert cited_page_id(ask(question, lang), lang) == topic


def test_a_french_question_gets_a_french_answer_citing_a_french_page() -> None:
    text = ask("Quand vais-je recevoir le crédit pour la TPS/TVH?", "fr")

    assert text.startswith("[Réponse hors ligne] ")
    assert "juillet, octobre, janvier et avril" in text
    assert cited_url(text).startswith("https://www.canada.ca/fr/")


@pytest.mark.parametrize(("lang", "label"), [("en", "[Offline answer] "), ("fr", "[Réponse hors ligne] ")])
def test_every_answer_is_labelled_offline(lang: str, label: str) -> None:
    for question in ("passport", "SIN", "nothing at all here"):
        assert ask(question, lang).startswith(label)


def test_the_answer_text_is_one_or_two_passages_of_the_cited_page_in_page_order() -> None:
    text = ask("How do I renew my passport?")
    page = find_page(cited_url(text), "en")
    assert page is not None

    body = CITATION.sub("", text).removeprefix("[Offline answer] ")
    choices = [" ".join(combo) for n in (1, 2) for combo in combinations(page.passages, n)]
    assert body in choices


@pytest.mark.parametrize(("lang", "question"), [("en", "What is the weather on Mars?"), ("fr", "Bonjour!")])
def test_a_question_that_matches_nothing_gets_a_polite_answer_citing_the_home_page(lang: str, question: str) -> None:
    text = ask(question, lang)

    assert cited_url(text) == HOME[lang]
    assert ("could not find" in text) if lang == "en" else ("aucune page" in text)


def test_given_search_results_are_used_before_its_own_search() -> None:
    results = [SearchResult("Stub page", "https://www.canada.ca/en/stub-1.html", "Stub passage about passports.")]

    text = ask("How do I renew my passport?", results=results)

    assert text == (
        "[Offline answer] Stub passage about passports.\n"
        "<citation-url>https://www.canada.ca/en/stub-1.html</citation-url>"
    )


def test_an_english_corpus_result_is_answered_from_its_french_copy_for_a_french_request() -> None:
    results = [SearchResult("Renew your adult passport", PASSPORT_PAGE, "anything")]

    text = ask("Combien coûte le renouvellement?", "fr", results)

    assert cited_page_id(text, "fr") == "passport-renew"
    assert cited_url(text).startswith("https://www.canada.ca/fr/")


def test_token_counts_are_word_counts_of_the_input_and_the_answer() -> None:
    request = CompletionRequest(
        system="Answer briefly please.",
        messages=[
            ChatTurn("user", "renew passport"),
            ChatTurn("assistant", "ok"),
            ChatTurn("user", "cost of passport"),
        ],
        lang="en",
    )

    completion = OfflineAI().complete(request)

    assert completion.model == "offline"
    assert completion.input_tokens == 3 + 2 + 1 + 3
    assert completion.output_tokens == len(completion.text.split())


def test_the_latency_setting_slows_each_answer_down() -> None:
    ai = OfflineAI(Settings.from_env({**BASE_ENV, "OFFLINE_AI_LATENCY_MS": "200"}))
    request = CompletionRequest(system="", messages=[ChatTurn("user", "SIN")], lang="en")

    started = time.monotonic()
    ai.complete(request)

    assert time.monotonic() - started >= 0.2


# -- the search ----------------------------------------------------------------------------


def test_search_ranks_the_matching_page_first_with_its_best_passage_as_snippet() -> None:
    results = OfflineSearch().search("How much does a 10-year passport cost?", "en", limit=3)

    assert results[0].url == PASSPORT_PAGE
    assert results[0].snippet.startswith("A 10-year adult passport costs $160")
    assert len(results) == 3


def test_search_finds_nothing_for_a_question_of_stop_words_only() -> None:
    assert OfflineSearch().search("what is it?", "en") == []


@pytest.mark.parametrize(
    ("referrer", "topic"), [(PASSPORT_PAGE, "passport-renew"), (EI_PAGE + "/?utm=x", "ei-regular")]
)
def test_the_referring_page_wins_a_vague_question(referrer: str, topic: str) -> None:
    results = OfflineSearch().search("How do I apply?", "en", referring_url=referrer)

    assert find_page(results[0].url, "en").id == topic  # type: ignore[union-attr]


def test_the_referring_page_does_not_override_a_clearly_different_question() -> None:
    results = OfflineSearch().search("How do I renew my passport?", "en", referring_url=EI_PAGE)

    assert results[0].url == PASSPORT_PAGE


def test_a_referring_page_in_the_other_language_boosts_its_copy() -> None:
    results = OfflineSearch().search("Quelles sont les conditions?", "fr", referring_url=PASSPORT_PAGE)

    assert find_page(results[0].url, "fr").id == "passport-renew"  # type: ignore[union-attr]
    assert results[0].url.startswith("https://www.canada.ca/fr/")
