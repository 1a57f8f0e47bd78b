"""The provider stub answers each stage's prompt as a well-behaved model would.

Every test sends a stage's real request (its `run(...)` with a real provider client as
`ai`) over HTTP to the stub, in each AI wire format, and the stage's own strict parser
reads the reply. The stub is what the integration tests and the fault campaign run the
pipeline against, so a stage it cannot answer would fail all of them at once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import date

import pytest

from lib.chat.stages import ai_pii, answer, department, language, query_rewrite
from lib.chat.stages.base import Blocked, BlockedBy, StageReplyError
from lib.chat.stages.outcome import Answered
from lib.chat.stages.pipeline import run_pipeline
from lib.providers.base import AIProvider, ChatTurn, CompletionRequest, SearchProvider
from lib.providers.http import build_session
from lib.providers.registry import build_ai_provider, build_search_provider
from lib.settings import Settings
from tests.support.provider_stub import AI_APIS, STUB_CITATION, Fault, ProviderStub
from tests.support.stage_replies import STAGE_OPENINGS

BASE_ENV = {
    "MONGODB_URI": "mongodb://127.0.0.1:1",
    "JWT_SECRET": "x" * 32,
    "PUBLIC_BASE_URL": "http://127.0.0.1:3000",
    "QSTASH_URL": "http://127.0.0.1:8080",
    "PROVIDER_MAX_RETRIES": "0",
}
PASSPORT = "How do I renew my passport?"
PASSPORT_FR = "Comment renouveler mon passeport?"


@pytest.fixture
def stub() -> Iterator[ProviderStub]:
    with ProviderStub() as running:
        yield running


@pytest.fixture(params=AI_APIS)
def ai(request: pytest.FixtureRequest, stub: ProviderStub) -> AIProvider:
    """A real client of each AI provider, pointed at the stub."""
    settings = Settings.from_env({**BASE_ENV, **stub.env()})
    return build_ai_provider(request.param, settings, build_session(settings))


def google(stub: ProviderStub) -> SearchProvider:
    settings = Settings.from_env({**BASE_ENV, **stub.env()})
    return build_search_provider("google", settings, build_session(settings))


def stages_called(stub: ProviderStub) -> Counter[str | None]:
    return Counter(r.stage for r in stub.requests if r.api in AI_APIS)


# -- recognising the stage --------------------------------------------------------------


def test_every_stage_prompt_has_its_own_non_empty_opening_line():
    openings = [opening for opening, _ in STAGE_OPENINGS]

    assert all(len(opening) > 20 for opening in openings)
    assert not any(a != b and a.startswith(b) for a in openings for b in openings)


def test_each_stage_request_is_recorded_with_its_stage(stub: ProviderStub, ai: AIProvider):
    ai_pii.run(ai_pii.PiiInput(PASSPORT), ai)
    language.run(language.LanguageInput(PASSPORT_FR, "fr"), ai)
    query_rewrite.run(query_rewrite.RewriteInput(PASSPORT, PASSPORT), ai)
    query_rewrite.run_simpler("renew passport", "en", ai)
    department.run(department.DepartmentInput(PASSPORT), ai)
    answer.run(answer.AnswerInput(PASSPORT, PASSPORT), ai)

    assert [r.stage for r in stub.requests] == ["piStage2", "translation", "queryRewrite", "queryRewrite.simpler",
                                                "context", "answer"]


def test_a_prompt_of_no_stage_gets_the_plain_reply(stub: ProviderStub, ai: AIProvider):
    system = "You are a helpful assistant."

    completion = ai.complete(CompletionRequest(system=system, messages=[ChatTurn("user", PASSPORT)], lang="en"))

    assert stub.requests[-1].stage is None
    assert completion.text == f"Stub answer to: {PASSPORT}\n<citation-url>{STUB_CITATION}</citation-url>"


# -- each stage's reply parses with the stage's own parser --------------------------------


def test_a_question_without_the_marker_has_no_personal_information(ai: AIProvider):
    outcome = ai_pii.run(ai_pii.PiiInput(PASSPORT), ai)

    assert isinstance(outcome, ai_pii.PiiResult) and outcome.masked_text == PASSPORT


def test_the_pii_marker_is_personal_information_masked_with_xxx(ai: AIProvider):
    outcome = ai_pii.run(ai_pii.PiiInput("Can my friend PIIMARK renew his passport? Ask PIIMARK2."), ai)

    assert isinstance(outcome, Blocked) and outcome.by is BlockedBy.PI_STAGE2
    assert outcome.masked_text == "Can my friend XXX renew his passport? Ask XXX."


def test_a_french_question_is_translated_with_the_english_prefix(ai: AIProvider):
    outcome = language.run(language.LanguageInput(PASSPORT_FR, "fr"), ai)

    assert isinstance(outcome, language.LanguageResult)
    assert (outcome.language, outcome.translated) == ("fra", True)
    assert outcome.english_question == f"[en] {PASSPORT_FR}"


def test_the_query_is_the_latest_questions_words_without_filler_or_numbering(ai: AIProvider):
    inp = query_rewrite.RewriteInput("001. Hello, how do I renew my passport in 2025?", "ignored",
                                     earlier_questions=("What is EI?",), referring_url="https://www.canada.ca/en.html")

    assert query_rewrite.run(inp, ai).query == "renew passport"


def test_a_french_question_gets_a_french_query(ai: AIProvider):
    inp = query_rewrite.RewriteInput(f"[en] {PASSPORT_FR}", PASSPORT_FR, "fra", "fr")

    assert (query_rewrite.run(inp, ai).query, query_rewrite.run(inp, ai).query_lang) == ("renouveler passeport", "fr")


def test_the_simpler_query_keeps_three_words_and_drops_the_site(ai: AIProvider):
    simpler = query_rewrite.run_simpler("renew adult passport online site:canada.ca", "en", ai)

    assert simpler.query == "renew adult passport"


@pytest.mark.parametrize(("question", "key"), [
    (PASSPORT, "IRCC"),
    ("When is my T4 due?", "CRA-ARC"),
    ("How do I apply for EI?", "EDSC-ESDC"),
])
def test_the_department_is_a_key_of_the_list_for_its_topic(ai: AIProvider, question: str, key: str):
    picked = department.run(department.DepartmentInput(question), ai)

    assert (picked.department, picked.source) == (key, "model")
    assert picked.department_url == department.departments()[key].url("en")


def test_a_question_of_no_department_gets_none_and_the_referrers_department(ai: AIProvider):
    referrer = "https://www.canada.ca/en/revenue-agency.html"
    picked = department.run(department.DepartmentInput("What is the weather like?", referring_url=referrer), ai)

    assert (picked.department, picked.source) == ("CRA-ARC", "referrer")


def test_an_english_answer_is_one_tagged_sentence_with_the_stub_citation(ai: AIProvider):
    replied = answer.run(answer.AnswerInput(PASSPORT, PASSPORT, today=date(2025, 1, 2)), ai)

    parsed = replied.answer
    assert (parsed.answer_type, parsed.content, parsed.english_answer) == (
        "normal", f"Stub answer to: {PASSPORT}", f"Stub answer to: {PASSPORT}")
    assert parsed.sentences == (f"Stub answer to: {PASSPORT}",)
    assert (parsed.citation_head, parsed.citation_url, parsed.confidence) == ("Stub page", STUB_CITATION, "0.9")
    assert replied.usage.output_tokens > 0


def test_a_french_answer_has_an_answer_in_the_question_as_asked_and_one_in_english(ai: AIProvider):
    replied = answer.run(answer.AnswerInput(f"[en] {PASSPORT_FR}", PASSPORT_FR, "fra", "fr"), ai)

    assert replied.answer.content == f"Stub answer to: {PASSPORT_FR}"
    assert replied.answer.english_answer == f"Stub answer to: [en] {PASSPORT_FR}"


def test_tag_like_text_in_a_question_is_not_echoed_into_the_answers_tags(ai: AIProvider):
    question = "What does </answer> <s-9> mean on a form?"

    replied = answer.run(answer.AnswerInput(question, question), ai)

    assert replied.answer.content == "Stub answer to: What does mean on a form?"


# -- faults aimed at one stage -------------------------------------------------------------


@pytest.mark.parametrize("fault", [Fault.refused(), Fault.refused(on="completion")])
def test_a_refusal_of_the_pii_stage_blocks_as_content_filter(stub: ProviderStub, ai: AIProvider, fault: Fault):
    stub.rule(lambda r: fault if r.stage == "piStage2" else None)

    outcome = ai_pii.run(ai_pii.PiiInput(PASSPORT), ai)

    assert isinstance(outcome, Blocked) and outcome.by is BlockedBy.CONTENT_FILTER


def test_a_rule_can_send_one_stage_a_malformed_reply(stub: ProviderStub, ai: AIProvider):
    stub.rule(lambda r: Fault.reply("Sure! Renew online.") if r.stage == "answer" else None)

    assert department.run(department.DepartmentInput(PASSPORT), ai).department == "IRCC"
    with pytest.raises(StageReplyError) as caught:
        answer.run(answer.AnswerInput(PASSPORT, PASSPORT), ai)
    assert (caught.value.code, caught.value.retryable, caught.value.stage) == ("MALFORMED_STAGE_REPLY", True, "answer")


# -- the whole pipeline against the stub -----------------------------------------------------


def test_an_english_question_makes_four_model_calls_and_is_answered(stub: ProviderStub, ai: AIProvider):
    outcome = run_pipeline(PASSPORT, [], "en", None, ai, google(stub))

    assert isinstance(outcome, Answered)
    assert outcome.answer.content == f"Stub answer to: {PASSPORT}"
    assert (outcome.context.search_query, outcome.context.department) == ("renew passport", "IRCC")
    assert outcome.answer.citation_url == STUB_CITATION
    assert stages_called(stub) == {"piStage2": 1, "queryRewrite": 1, "context": 1, "answer": 1}


def test_a_spanish_question_is_translated_and_screened_again_in_english(stub: ProviderStub, ai: AIProvider):
    question = "¿Cómo puedo renovar mi pasaporte canadiense?"

    outcome = run_pipeline(question, [], "en", None, ai, google(stub))

    assert isinstance(outcome, Answered)
    assert (outcome.question.language, outcome.question.english_question) == ("spa", f"[en] {question}")
    assert outcome.answer.content == f"Stub answer to: {question}"
    assert stages_called(stub) == {"piStage2": 2, "translation": 1, "queryRewrite": 1, "context": 1, "answer": 1}


def test_a_search_with_one_result_asks_once_for_a_simpler_query(stub: ProviderStub, ai: AIProvider):
    one = {"items": [{"title": "Passports", "link": "https://www.canada.ca/en/passports.html", "snippet": "s"}]}
    stub.rule(lambda r: Fault.status(200, body=one) if r.api == "google" and len(r.question.split()) > 3 else None)

    outcome = run_pipeline("How do I renew an adult passport online from abroad?", [], "en", None, ai, google(stub))

    assert isinstance(outcome, Answered) and outcome.context.search_retried is True
    assert outcome.context.search_query == "renew adult passport"
    assert stages_called(stub)["queryRewrite.simpler"] == 1


def test_a_question_with_the_pii_marker_is_blocked_before_any_search(stub: ProviderStub, ai: AIProvider):
    outcome = run_pipeline("Can my friend PIIMARK renew his passport?", [], "en", None, ai, google(stub))

    assert isinstance(outcome, Blocked) and outcome.by is BlockedBy.PI_STAGE2
    assert outcome.masked_text == "Can my friend XXX renew his passport?"
    assert [r.api for r in stub.requests if r.api not in AI_APIS] == []
