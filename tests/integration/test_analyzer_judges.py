"""The analyzers' judges over real HTTP: the real provider clients against the provider stub.

Every AI wire format (OpenAI, Azure, Anthropic) carries the judge prompts; the stub
recognises them and answers with a well-formed verdict unless a test scripts a fault
(a malformed reply, a refusal, a provider error). A judge that fails marks its own
error cell; the row's other analyzers are still filled in.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from lib.analyzers import (
    ANALYZER_NAMES,
    References,
    RowResult,
    columns_for,
    expert_scorer,
    passed,
    run_analyzers,
    similar_answer,
)
from lib.analyzers.judge import JUDGE_MALFORMED, JUDGE_REFUSED
from lib.chat.stages.base import REFUSAL_MARKER
from lib.providers.base import AIProvider
from lib.providers.http import build_session
from lib.providers.registry import build_ai_provider
from lib.settings import Settings
from tests.support.provider_stub import AI_APIS, Fault, ProviderStub, model_text

BASE_ENV = {
    "MONGODB_URI": "mongodb://127.0.0.1:1",
    "JWT_SECRET": "x" * 32,
    "PUBLIC_BASE_URL": "http://127.0.0.1:3000",
    "QSTASH_URL": "http://127.0.0.1:8080",
    "PROVIDER_MAX_RETRIES": "0",
}
JUDGES = (similar_answer.STAGE, expert_scorer.STAGE)
QUESTION = "How do I renew my passport?"
ANSWER = "You can renew your passport online. The fee is 160 dollars."
REFERENCE = "You can renew your passport online. The fee is 160 dollars."
CITED = "https://www.canada.ca/en/immigration-refugees-citizenship/services/canadian-passports.html"
ROW = RowResult("succeeded", QUESTION, "en", answer=ANSWER, answer_type="normal", citation_url=CITED)
REFS = References(reference_answer=REFERENCE, expected_citation=CITED, expected_outcome="answer")


def client(stub: ProviderStub, api: str) -> AIProvider:
    """A real client of `api`, built by the registry and pointed at the stub."""
    settings = Settings.from_env({**BASE_ENV, **stub.env()})
    return build_ai_provider(api, settings, build_session(settings))


@pytest.fixture(params=AI_APIS)
def ai(request: pytest.FixtureRequest, stub: ProviderStub) -> AIProvider:
    return client(stub, request.param)


def judge_calls(stub: ProviderStub) -> list[Any]:
    return [r for r in stub.requests if r.stage in JUDGES]


def words(text: Any) -> int:
    if isinstance(text, list):  # Anthropic content blocks
        text = "".join(block.get("text", "") for block in text)
    return len((text or "").split())


def stub_tokens(request: Any, reply: str | None = None) -> dict[str, int]:
    """The tokens the stub bills for one request, counted here from what it received and sent."""
    body = request.json
    prompt = words(body.get("system")) + sum(words(m.get("content")) for m in body["messages"])
    return {"input": prompt, "output": len((model_text(request) if reply is None else reply).split())}


def test_both_judges_give_well_formed_verdicts_in_every_wire_format(stub: ProviderStub, ai: AIProvider) -> None:
    analysis = run_analyzers(ANALYZER_NAMES, ROW, REFS, ai)

    assert list(analysis.columns) == columns_for(ANALYZER_NAMES)
    assert analysis.columns["similarity.label"] == "same-meaning"
    assert analysis.columns["similarity.score"] == 1.0
    assert analysis.columns["similarity.winner"] is None  # not against a baseline
    assert analysis.columns["expert.verdict"] == "pass"
    assert analysis.columns["expert.ideasFound"] == ["You can renew your passport online.",
                                                     "The fee is 160 dollars."]
    assert analysis.columns["expert.score"] == 1.0
    assert [passed(name, analysis.columns) for name in ANALYZER_NAMES] == [True, True, True, True]
    assert [r.stage for r in stub.requests] == list(JUDGES)  # rules made no request


def test_the_judges_tokens_and_model_are_what_the_provider_billed(stub: ProviderStub, ai: AIProvider) -> None:
    analysis = run_analyzers(("similar-answer", "expert-scorer"), ROW, REFS, ai)

    similar, expert = judge_calls(stub)
    assert analysis.usage == {"analyzer.similar-answer": stub_tokens(similar),
                              "analyzer.expert-scorer": stub_tokens(expert)}
    assert analysis.usage["analyzer.similar-answer"]["input"] > 100  # the prompt and the material
    model = {"openai": "gpt-4.1-mini", "azure": "stub-deployment", "anthropic": "claude-sonnet-4-5"}[ai.name]
    assert analysis.models == {"similar-answer": model, "expert-scorer": model}


def test_the_judge_is_sent_our_prompt_with_the_question_reference_and_answer(stub: ProviderStub) -> None:
    run_analyzers(("expert-scorer",), RowResult("succeeded", QUESTION, "fr", answer="<b>Oui</b>",
                                                answer_type="pt-muni"), REFS, client(stub, "openai"))

    sent = stub.requests[-1].json
    assert sent["messages"][0] == {"role": "system", "content": expert_scorer.SYSTEM_PROMPT}
    user = sent["messages"][1]["content"]
    assert f"<question>\n{QUESTION}\n</question>" in user
    assert f"<reference-answer>\n{REFERENCE}\n</reference-answer>" in user
    assert "<answer-type>\npt-muni\n</answer-type>" in user
    assert "<new-answer>\n‹b›Oui‹/b›\n</new-answer>" in user  # an answer cannot close the tag it sits in


@pytest.mark.parametrize("reply", [
    "The two answers mean the same thing.",
    json.dumps({"label": "same-meaning", "score": 0.9, "changedFacts": [], "winner": None, "notes": "extra"}),
    json.dumps({"label": "same-meaning", "score": 0.9, "changedFacts": []}),
    "{'label': 'same-meaning'}",
])
def test_a_malformed_verdict_marks_the_similarity_cell_and_the_other_analyzers_still_fill(
        stub: ProviderStub, ai: AIProvider, reply: str) -> None:
    stub.rule(lambda r: Fault.reply(reply) if r.stage == similar_answer.STAGE else None)

    analysis = run_analyzers(ANALYZER_NAMES, ROW, REFS, ai)

    similarity = {k: v for k, v in analysis.columns.items() if k.startswith("similarity.")}
    assert similarity == {**dict.fromkeys(similar_answer.COLUMNS), "similarity.error": JUDGE_MALFORMED}
    assert passed("similar-answer", analysis.columns) is None
    assert analysis.columns["expert.verdict"] == "pass"
    assert (analysis.columns["refusal.match"], analysis.columns["citation.matchesExpected"]) == (True, True)
    # The malformed reply was billed all the same.
    assert analysis.usage["analyzer.similar-answer"] == stub_tokens(judge_calls(stub)[0], reply)


@pytest.mark.parametrize("on", ["prompt", "completion"])
def test_a_provider_refusal_marks_the_expert_cell_as_refused(stub: ProviderStub, ai: AIProvider, on: str) -> None:
    stub.rule(lambda r: Fault.refused(on) if r.stage == expert_scorer.STAGE else None)

    analysis = run_analyzers(ANALYZER_NAMES, ROW, REFS, ai)

    assert analysis.columns["expert.error"] == JUDGE_REFUSED
    assert analysis.columns["expert.verdict"] is None and analysis.columns["expert.ideasFound"] is None
    assert analysis.columns["similarity.label"] == "same-meaning"
    assert analysis.columns["refusal.detected"] is False


def test_a_model_that_answers_with_the_refusal_marker_is_a_refused_judge(stub: ProviderStub) -> None:
    stub.enqueue(Fault.reply(REFUSAL_MARKER))

    analysis = run_analyzers(("similar-answer",), ROW, REFS, client(stub, "anthropic"))

    assert analysis.columns["similarity.error"] == JUDGE_REFUSED


@pytest.mark.parametrize(("fault", "code"), [
    (Fault.status(500), "PROVIDER_ERROR"),
    (Fault.status(429, retry_after=0), "PROVIDER_RATE_LIMITED"),
    (Fault.malformed(), "PROVIDER_BAD_REPLY"),
    (Fault.disconnect(), "PROVIDER_UNREACHABLE"),
])
def test_a_provider_error_marks_the_judges_cell_with_its_code_and_never_raises(
        stub: ProviderStub, ai: AIProvider, fault: Fault, code: str) -> None:
    stub.rule(lambda r: fault if r.stage == similar_answer.STAGE else None)

    analysis = run_analyzers(ANALYZER_NAMES, ROW, REFS, ai)

    assert analysis.columns["similarity.error"] == code
    assert analysis.columns["similarity.label"] is None
    assert analysis.columns["expert.verdict"] == "pass"
    assert analysis.columns["citation.wellFormed"] is True
    assert "analyzer.similar-answer" not in analysis.usage
    assert "analyzer.expert-scorer" in analysis.usage


def test_against_a_baseline_the_judge_names_the_winner_and_otherwise_its_winner_is_dropped(
        stub: ProviderStub) -> None:
    ai = client(stub, "openai")
    drifted = RowResult("succeeded", QUESTION, "en", answer="Mail form PPTC 054 to Gatineau.", answer_type="normal")

    baseline = run_analyzers(("similar-answer",), drifted, References(baseline_answer=REFERENCE), ai)
    assert "the baseline" in stub.requests[-1].json["messages"][1]["content"]
    stub.enqueue(Fault.reply(json.dumps({"label": "meaning-drift", "score": 0.2, "changedFacts": ["the fee"],
                                         "winner": "new"})))
    reference = run_analyzers(("similar-answer",), drifted, References(reference_answer=REFERENCE), ai)

    assert (baseline.columns["similarity.label"], baseline.columns["similarity.winner"]) == ("meaning-drift", "new")
    assert reference.columns["similarity.changedFacts"] == ["the fee"]
    assert reference.columns["similarity.winner"] is None


def test_no_judge_is_asked_without_a_reference_or_without_an_answer(stub: ProviderStub) -> None:
    ai = client(stub, "azure")
    blocked = RowResult("blocked", "my name is XXX", "en", blocked_by="piStage1")

    nothing = run_analyzers(ANALYZER_NAMES, ROW, References(), ai)
    lost = run_analyzers(ANALYZER_NAMES, blocked, References(reference_answer=REFERENCE, expected_outcome="block"), ai)

    assert stub.request_count == 0
    assert nothing.columns["similarity.label"] is None and nothing.columns["expert.verdict"] is None
    assert nothing.usage == {} and nothing.models == {}
    assert (lost.columns["refusal.match"], lost.columns["similarity.label"], lost.columns["expert.verdict"]) == (
        True, "meaning-drift", "fail")
    assert lost.usage == {}
