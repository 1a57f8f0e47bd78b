"""The chat pipeline against SecantusDB and the provider stub over HTTP."""

from __future__ import annotations

import json

import pytest
from bson import ObjectId

from lib.errors import BadRequest, NotFound, UnprocessableEntity, UpstreamError
from lib.services import Services
from tests.support.provider_stub import Fault, ProviderStub

PII = {
    "email": "marie.tremblay@example.com",
    "sin": "046 454 286",
    "phone": "613-555-0147",
    "postal": "K2P 1L4",
}
QUESTION_WITH_PII = (
    f"My email is {PII['email']}, SIN {PII['sin']}, phone {PII['phone']}, I live at {PII['postal']}. "
    "How do I renew my passport?"
)


def ask(services: Services, user, message: str, *, chat_id: str | None = None, lang: str = "en",
        override_user_id: str | None = None, interaction_id: str | None = None):
    return services.chat.process_message(
        chat_id=chat_id, user_message=message, lang=lang, selected_ai="openai", selected_search="google",
        referring_url="https://www.canada.ca/en/services.html", user=user, override_user_id=override_user_id,
        interaction_id=interaction_id,
    )


def ai_requests(stub: ProviderStub) -> list:
    return [r for r in stub.requests if r.api in ("openai", "azure", "anthropic")]


def search_requests(stub: ProviderStub) -> list:
    return [r for r in stub.requests if r.api in ("google", "canadaca")]


def every_stored_document(services: Services) -> str:
    dump = []
    for name in services.store.db.list_collection_names():
        dump.extend(services.store.db[name].find())
    return json.dumps(dump, default=str)


def test_personal_information_blocks_the_question_before_any_provider_and_nothing_is_stored(
        services, users, stub: ProviderStub):
    with pytest.raises(UnprocessableEntity) as info:
        ask(services, users["partner"], QUESTION_WITH_PII)

    assert info.value.code == "BLOCKED" and info.value.details["blockedBy"] == "piStage1"
    assert stub.requests == []  # neither the AI nor the search provider saw it
    stored = every_stored_document(services)
    for value in PII.values():
        assert value not in stored
    assert services.store.interactions.count_documents({}) == 0


def test_personal_information_only_a_model_finds_blocks_as_pi_stage_2(services, users, stub: ProviderStub):
    with pytest.raises(UnprocessableEntity) as info:
        ask(services, users["partner"], "How do I help my neighbour PIIMARK with her pension?")

    assert info.value.details["blockedBy"] == "piStage2"
    assert search_requests(stub) == []
    assert "PIIMARK" not in every_stored_document(services)


def test_the_answer_and_its_citation_come_back_and_are_stored(services, users, stub: ProviderStub):
    result = ask(services, users["partner"], "How do I renew my passport?")

    assert result.answer == "Stub answer to: How do I renew my passport?"
    assert result.fields["answerType"] == "normal" and result.fields["questionLanguage"] == "eng"
    assert result.citation_url == "https://www.canada.ca/en/stub.html"
    stored = services.store.interactions.find_one({"_id": ObjectId(result.interaction_id)})
    assert stored["answer"]["citationUrl"] == result.citation_url
    assert stored["search"]["provider"] == "google" and len(stored["search"]["results"]) == 2
    assert stored["referringUrl"] == "https://www.canada.ca/en/services.html"
    assert stored["chatId"] == result.chat_id
    assert services.store.chats.find_one({"_id": result.chat_id})["userId"] == users["partner"].id


def test_turn_two_of_a_chat_sends_turn_one_as_history(services, users, stub: ProviderStub):
    first = ask(services, users["partner"], "How do I apply for EI?")
    ask(services, users["partner"], "How long does it take?", chat_id=first.chat_id)

    messages = ai_requests(stub)[-1].json["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[1]["content"] == "How do I apply for EI?"
    assert messages[2]["content"].startswith("Stub answer to: How do I apply for EI?")
    assert messages[3]["content"] == "How long does it take?"


def test_overrides_apply_only_for_the_override_users_own_enabled_overrides(services, users, stub: ProviderStub):
    partner, partner2 = users["partner"], users["partner2"]
    services.users.set_override(partner.id, "tone", "PARTNER-TONE")
    services.users.set_override(partner.id, "style", "PARTNER-DISABLED", enabled=False)
    services.users.set_override(partner2.id, "tone", "PARTNER2-TONE")

    ask(services, partner, "What is the GST credit?", override_user_id=partner.id)
    with_overrides = ai_requests(stub)[-1].json["messages"][0]["content"]
    ask(services, partner, "What is the GST credit?")
    without = ai_requests(stub)[-1].json["messages"][0]["content"]

    assert "PARTNER-TONE" in with_overrides
    assert "PARTNER-DISABLED" not in with_overrides and "PARTNER2-TONE" not in with_overrides
    assert "PARTNER-TONE" not in without


def test_the_same_interaction_id_twice_yields_one_interaction_and_one_provider_call(services, users, stub):
    interaction_id = str(ObjectId())
    first = ask(services, users["partner"], "Where is my T4?", interaction_id=interaction_id)
    second = ask(services, users["partner"], "Where is my T4?", chat_id=first.chat_id, interaction_id=interaction_id)

    assert first.interaction_id == second.interaction_id == interaction_id
    assert second.created is False and second.answer == first.answer
    assert services.store.interactions.count_documents({"chatId": first.chat_id}) == 1
    assert [r.stage for r in ai_requests(stub)].count("answer") == 1


def test_a_new_chat_gets_an_unguessable_id_from_the_server(services, users):
    first = ask(services, users["partner"], "How do I apply for EI?")
    second = ask(services, users["partner"], "How do I apply for EI?")

    assert first.chat_id != second.chat_id
    assert len(first.chat_id) == 32 and int(first.chat_id, 16) >= 0
    assert services.store.chats.find_one({"_id": first.chat_id})["userId"] == users["partner"].id


def test_a_chat_id_the_server_never_issued_is_not_found_and_creates_nothing(services, users, stub):
    with pytest.raises(NotFound) as info:
        ask(services, users["partner"], "How do I apply for EI?", chat_id="chosen-by-the-client")

    assert info.value.code == "CHAT_NOT_FOUND"
    assert services.store.chats.count_documents({}) == 0 and services.store.interactions.count_documents({}) == 0
    assert ai_requests(stub) == []


def test_a_french_question_is_answered_in_french_whatever_the_page_language(services, users, stub: ProviderStub):
    result = ask(services, users["partner"], "Comment renouveler mon passeport?", lang="en")

    answer_call = next(r for r in ai_requests(stub) if r.stage == "answer")
    assert "Output language: French" in answer_call.json["messages"][0]["content"]
    assert search_requests(stub)[-1].query["lr"] == "lang_fr"
    assert result.fields["questionLanguage"] == "fra" and result.fields["englishQuestion"]


def test_somebody_elses_chat_cannot_be_continued(services, users):
    first = ask(services, users["partner"], "How do I apply for EI?")
    with pytest.raises(NotFound):
        ask(services, users["partner2"], "And then?", chat_id=first.chat_id)


@pytest.mark.parametrize(("message", "code"), [("", "EMPTY_MESSAGE"), ("   ", "EMPTY_MESSAGE"), ("x" * 4001, "MESSAGE_TOO_LONG")])
def test_an_empty_or_too_long_message_is_refused_before_any_provider_call(services, users, stub, message, code):
    with pytest.raises(BadRequest) as info:
        ask(services, users["partner"], message)
    assert info.value.code == code
    assert stub.requests == []


def test_a_provider_failure_is_reported_as_retryable_and_nothing_is_stored(services, users, stub: ProviderStub):
    stub.enqueue(Fault.status(503), Fault.status(503))  # the client's own retry sees the second one
    with pytest.raises(UpstreamError) as info:
        ask(services, users["partner"], "How do I apply for EI?")
    assert info.value.retryable is True
    assert services.store.interactions.count_documents({}) == 0
