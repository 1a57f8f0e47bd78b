"""Redaction stage 2: the model's reply parsed strictly, blocks and refusals, and the offline rules."""

from __future__ import annotations

import pytest

from lib.chat.stages import ai_pii
from lib.chat.stages.ai_pii import PiiInput, PiiResult, parse_reply
from lib.chat.stages.base import MALFORMED_STAGE_REPLY, Blocked, BlockedBy, StageReplyError
from lib.errors import UpstreamError
from lib.providers.offline import OfflineAI
from tests.support.stage_fakes import ScriptedAI, content_filter_error

QUESTION = "My passport number is AB123456, is it valid?"


@pytest.mark.parametrize("reply", ["null", " NULL \n", "Null"])
def test_null_in_any_case_means_no_personal_information(reply):
    assert parse_reply(reply, QUESTION) is None


def test_a_reply_with_xxx_is_the_redacted_question():
    assert parse_reply("My passport number is XXX, is it valid?", QUESTION) == "My passport number is XXX, is it valid?"


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("", "empty"),
        ("My passport number is AB123456, is it valid?", "neither null"),
        ("Yes, passports are valid for ten years. XXX", "not a copy"),
        ("XXX " + "very long " * 40, "not a copy"),
    ],
)
def test_a_malformed_reply_raises_a_retryable_stage_reply_error(reply, reason):
    with pytest.raises(StageReplyError) as caught:
        parse_reply(reply, QUESTION)

    assert reason in caught.value.reason
    assert caught.value.retryable is True
    assert caught.value.code == MALFORMED_STAGE_REPLY
    assert isinstance(caught.value, UpstreamError)


def test_a_model_that_finds_personal_information_blocks_as_pi_stage2_with_its_redacted_text():
    ai = ScriptedAI("My passport number is XXX, is it valid?")

    outcome = ai_pii.run(PiiInput(QUESTION), ai)

    assert isinstance(outcome, Blocked)
    assert outcome.by is BlockedBy.PI_STAGE2
    assert outcome.masked_text == "My passport number is XXX, is it valid?"
    assert outcome.usage.model == "fake-model"
    assert ai.requests[0].messages[-1].content == QUESTION


def test_a_model_that_finds_nothing_lets_the_question_through_with_its_usage():
    outcome = ai_pii.run(PiiInput("How do I renew my passport?"), ScriptedAI("null"))

    assert isinstance(outcome, PiiResult)
    assert outcome.masked_text == "How do I renew my passport?"
    assert outcome.usage.input_tokens == 10


@pytest.mark.parametrize("refusal", [content_filter_error(), "<refused/>"])
def test_a_content_filter_refusal_blocks_as_content_filter_with_the_rules_mask(refusal):
    outcome = ai_pii.run(PiiInput(QUESTION), ScriptedAI(refusal))

    assert isinstance(outcome, Blocked)
    assert outcome.by is BlockedBy.CONTENT_FILTER
    assert "AB123456" not in outcome.masked_text


def test_other_provider_errors_are_failures_not_blocks():
    error = UpstreamError("down", provider="scripted", retryable=True, code="PROVIDER_ERROR")

    with pytest.raises(UpstreamError):
        ai_pii.run(PiiInput(QUESTION), ScriptedAI(error))


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("My passport number is AB123456", "identifier"),
        ("Our BN 123456789RC0001 got a notice", "business_number"),
        ("my SIN is 046454286 still valid?", "sin"),
        ("call my sister at +44 20 7946 0958", "intl_phone"),
        ("My friend Иван Петров wants to visit", "name"),
        ("My name is محمد علي and I need a permit", "name"),
        ("我叫王伟，我想申请护照", "name"),
        ("my application number is 12345678", "identifier"),
        ("My UCI 1234-5678 shows nothing", "identifier"),
        ("tracking 1Z999AA10123456784 says delivered", "identifier"),
        ("visa V123456789 was refused", "identifier"),
        ("card 4111 1111 1111 1111 was charged", "card"),
        ("I live in Seattle WA 98101 now", "zip_code"),
        ("My husband Jean-Marc Dubois died last year", "name"),
    ],
)
def test_the_offline_stage_blocks_every_kind_the_model_is_asked_to_find(question, kind):
    outcome = ai_pii.run(PiiInput(question), OfflineAI())

    assert isinstance(outcome, Blocked)
    assert outcome.by is BlockedBy.PI_STAGE2
    assert kind in outcome.kinds
    assert "XXX" in outcome.masked_text


@pytest.mark.parametrize(
    "question",
    [
        "What is form T2125?", "Where do I send IMM 5257?", "Is RC4288 the right form?", "Do I need form IMM5257E?",
        "I earned $45,000 in 2023", "Can I claim 12000 dollars?", "001. How do I apply?",
        "John A. Macdonald was the first prime minister", "What did Pierre Trudeau do?",
        "Contact the Canada Revenue Agency", "Is policy 2023-2024 still in force?", "COVID-19 benefits",
        "I need form T1-2023", "How much CCB for 2 children under 6?",
    ],
)
def test_the_offline_stage_leaves_form_numbers_amounts_numbering_and_public_figures_alone(question):
    outcome = ai_pii.run(PiiInput(question), OfflineAI())

    assert outcome == PiiResult(question, outcome.usage)
    assert outcome.usage.model == "offline"
