"""The AI and search clients against the local provider stub, over real HTTP."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from lib.errors import BadRequest, UpstreamError
from lib.providers.base import ChatTurn, CompletionRequest
from lib.providers.http import build_session
from lib.providers.offline import OfflineAI, OfflineSearch
from lib.providers.registry import build_ai_provider, build_search_provider, shared_session
from lib.settings import Settings
from tests.support.provider_stub import STUB_CITATION, STUB_KEYS, Fault, ProviderStub

BASE_ENV = {
    "MONGODB_URI": "mongodb://127.0.0.1:1",
    "JWT_SECRET": "x" * 32,
    "PUBLIC_BASE_URL": "http://127.0.0.1:3000",
    "QSTASH_URL": "http://127.0.0.1:8080",
}
SYSTEM = "You answer questions about Government of Canada services."
REQUEST = CompletionRequest(
    system=SYSTEM,
    messages=[
        ChatTurn("user", "How do I renew my passport?"),
        ChatTurn("assistant", "Use the simplified renewal form."),
        ChatTurn("user", "How much does it cost?"),
    ],
    lang="en",
)
AI = ("openai", "azure", "anthropic")
SEARCH = ("google", "canadaca")
KEY_OF = {
    "openai": STUB_KEYS["OPENAI_API_KEY"],
    "azure": STUB_KEYS["AZURE_OPENAI_API_KEY"],
    "anthropic": STUB_KEYS["ANTHROPIC_API_KEY"],
    "google": STUB_KEYS["GOOGLE_SEARCH_API_KEY"],
    "canadaca": STUB_KEYS["CANADACA_SEARCH_KEY"],
}


@pytest.fixture
def stub() -> Iterator[ProviderStub]:
    with ProviderStub() as running:
        yield running


def settings_for(stub: ProviderStub, **extra: str) -> Settings:
    """Settings with every provider pointed at the stub."""
    return Settings.from_env({**BASE_ENV, **stub.env(), "PROVIDER_MAX_RETRIES": "2", **extra})


def call(provider: str, settings: Settings) -> Any:
    """One call through a client built by the registry, on a session of its own."""
    session = build_session(settings)
    if provider in AI:
        return build_ai_provider(provider, settings, session).complete(REQUEST)
    return build_search_provider(provider, settings, session).search("renew passport", "en")


def conversation(system: bool = True) -> list[dict[str, str]]:
    head = [{"role": "system", "content": SYSTEM}] if system else []
    return head + [{"role": t.role, "content": t.content} for t in REQUEST.messages]


# -- the exact request each client sends, and what it makes of the reply ---------------


def test_openai_posts_the_conversation_to_chat_completions_with_a_bearer_key(stub: ProviderStub) -> None:
    completion = call("openai", settings_for(stub))

    sent = stub.requests[-1]
    assert (sent.method, sent.path, sent.query) == ("POST", "/v1/chat/completions", {})
    assert sent.headers["authorization"] == "Bearer sk-stub-openai-key"
    assert sent.headers["content-type"] == "application/json"
    assert sent.json == {"model": "gpt-4.1-mini", "messages": conversation(), "temperature": 0.0}
    assert completion.text == f"Stub answer to: How much does it cost?\n<citation-url>{STUB_CITATION}</citation-url>"
    assert completion.model == "gpt-4.1-mini"
    assert (completion.input_tokens, completion.output_tokens) == (24, 9)  # the stub counts words


def test_azure_posts_to_its_deployment_with_the_api_version_and_an_api_key_header(stub: ProviderStub) -> None:
    completion = call("azure", settings_for(stub))

    sent = stub.requests[-1]
    assert (sent.method, sent.path) == ("POST", "/openai/deployments/stub-deployment/chat/completions")
    assert sent.query == {"api-version": "2024-10-21"}
    assert sent.headers["api-key"] == "stub-azure-key"
    assert "authorization" not in sent.headers
    assert sent.json == {"messages": conversation(), "temperature": 0.0}
    assert completion.text.startswith("Stub answer to: How much does it cost?")
    assert completion.model == "stub-deployment"
    assert (completion.input_tokens, completion.output_tokens) == (24, 9)  # the stub counts words


def test_anthropic_posts_to_messages_with_its_key_version_and_a_separate_system_prompt(stub: ProviderStub) -> None:
    completion = call("anthropic", settings_for(stub))

    sent = stub.requests[-1]
    assert (sent.method, sent.path, sent.query) == ("POST", "/v1/messages", {})
    assert sent.headers["x-api-key"] == "sk-ant-stub-key"
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.headers["content-type"] == "application/json"
    assert sent.json == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1500,
        "system": SYSTEM,
        "messages": conversation(system=False),
    }
    assert completion.text.endswith(f"<citation-url>{STUB_CITATION}</citation-url>")
    assert completion.model == "claude-sonnet-4-5"
    assert (completion.input_tokens, completion.output_tokens) == (24, 9)  # the stub counts words


def test_google_gets_custom_search_with_key_engine_query_count_and_language(stub: ProviderStub) -> None:
    settings = settings_for(stub)
    results = build_search_provider("google", settings, build_session(settings)).search("passeport", "fr", limit=4)

    sent = stub.requests[-1]
    assert (sent.method, sent.path, sent.body) == ("GET", "/customsearch/v1", b"")
    assert sent.query == {"key": "stub-google-key", "cx": "stub-cx", "q": "passeport", "num": "4", "lr": "lang_fr"}
    assert [r.url for r in results] == ["https://www.canada.ca/fr/stub-1.html", "https://www.canada.ca/fr/stub-2.html"]
    assert results[0].title == "Stub result 1 for: passeport"
    assert results[0].snippet == "Stub snippet 1 about passeport."


def test_a_google_reply_without_items_means_no_results(stub: ProviderStub) -> None:
    stub.enqueue(Fault.status(200, body={"kind": "customsearch#search", "searchInformation": {"totalResults": "0"}}))

    assert call("google", settings_for(stub)) == []


def test_canadaca_gets_search_with_query_language_rows_and_its_key_header(stub: ProviderStub) -> None:
    settings = settings_for(stub)
    results = build_search_provider("canadaca", settings, build_session(settings)).search("EI", "en", limit=3)

    sent = stub.requests[-1]
    assert (sent.method, sent.path) == ("GET", "/search")
    assert sent.query == {"q": "EI", "lang": "en", "rows": "3"}
    assert sent.headers["x-api-key"] == "stub-canadaca-key"
    assert [r.url for r in results] == ["https://www.canada.ca/en/stub-1.html", "https://www.canada.ca/en/stub-2.html"]


def test_canadaca_sends_no_key_header_when_no_key_is_set(stub: ProviderStub) -> None:
    call("canadaca", settings_for(stub, CANADACA_SEARCH_KEY=""))

    assert "x-api-key" not in stub.requests[-1].headers


# -- retries, waits and the one error each failure becomes ------------------------------


def test_a_429_with_retry_after_is_waited_out_and_then_succeeds(stub: ProviderStub) -> None:
    stub.enqueue(Fault.status(429, retry_after=1))

    started = time.monotonic()
    completion = call("openai", settings_for(stub))
    waited = time.monotonic() - started

    assert completion.text.startswith("Stub answer to:")
    assert stub.request_count == 2
    assert 0.9 <= waited < 3


def test_a_retry_after_too_long_to_wait_comes_back_as_a_retryable_rate_limit(stub: ProviderStub) -> None:
    stub.enqueue(Fault.status(429, retry_after=120))

    started = time.monotonic()
    with pytest.raises(UpstreamError) as caught:
        call("anthropic", settings_for(stub))

    assert time.monotonic() - started < 2
    assert (caught.value.code, caught.value.retryable, caught.value.retry_after) == ("PROVIDER_RATE_LIMITED", True, 120)
    assert stub.request_count == 1


def test_a_garbled_retry_after_falls_back_to_backoff_and_then_succeeds(stub: ProviderStub) -> None:
    stub.enqueue(Fault.status(503, retry_after="soon-ish"))

    assert call("google", settings_for(stub))[0].url == "https://www.canada.ca/en/stub-1.html"
    assert stub.request_count == 2


def test_repeated_500s_become_a_retryable_error_once_attempts_run_out(stub: ProviderStub) -> None:
    stub.rule(lambda request: Fault.status(500))

    with pytest.raises(UpstreamError) as caught:
        call("openai", settings_for(stub))

    assert (caught.value.code, caught.value.retryable, caught.value.provider) == ("PROVIDER_ERROR", True, "openai")
    assert "500" in caught.value.message
    assert stub.request_count == 3  # the first attempt and PROVIDER_MAX_RETRIES=2 more


def test_a_502_then_success_is_retried_transparently(stub: ProviderStub) -> None:
    stub.enqueue(Fault.status(502))

    assert len(call("canadaca", settings_for(stub))) == 2
    assert stub.request_count == 2


def test_a_read_timeout_is_retryable_and_not_retried_inside_the_call(stub: ProviderStub) -> None:
    stub.enqueue(Fault.delay(2.0))

    started = time.monotonic()
    with pytest.raises(UpstreamError) as caught:
        call("azure", settings_for(stub, PROVIDER_READ_TIMEOUT="0.3"))

    assert (caught.value.code, caught.value.retryable) == ("PROVIDER_TIMEOUT", True)
    assert time.monotonic() - started < 1.5
    assert stub.request_count == 1


def test_a_dropped_connection_is_a_retryable_unreachable_provider(stub: ProviderStub) -> None:
    stub.enqueue(Fault.disconnect())

    with pytest.raises(UpstreamError) as caught:
        call("google", settings_for(stub))

    assert (caught.value.code, caught.value.retryable) == ("PROVIDER_UNREACHABLE", True)


def test_a_refused_connection_is_a_retryable_unreachable_provider(stub: ProviderStub) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    settings = settings_for(stub, OPENAI_BASE_URL=f"http://127.0.0.1:{closed_port}/v1", PROVIDER_MAX_RETRIES="0")

    with pytest.raises(UpstreamError) as caught:
        call("openai", settings)

    assert (caught.value.code, caught.value.retryable) == ("PROVIDER_UNREACHABLE", True)


@pytest.mark.parametrize("provider", AI + SEARCH)
def test_a_200_that_is_not_json_is_a_permanent_bad_reply(stub: ProviderStub, provider: str) -> None:
    stub.enqueue(Fault.malformed())

    with pytest.raises(UpstreamError) as caught:
        call(provider, settings_for(stub))

    assert (caught.value.code, caught.value.retryable, caught.value.provider) == ("PROVIDER_BAD_REPLY", False, provider)
    assert stub.request_count == 1


@pytest.mark.parametrize("provider", AI + SEARCH)
def test_a_json_reply_of_the_wrong_shape_is_a_permanent_bad_reply(stub: ProviderStub, provider: str) -> None:
    stub.enqueue(Fault.wrong_shape())

    with pytest.raises(UpstreamError) as caught:
        call(provider, settings_for(stub))

    assert (caught.value.code, caught.value.retryable) == ("PROVIDER_BAD_REPLY", False)


@pytest.mark.parametrize("provider", AI + SEARCH)
def test_a_400_is_permanent_and_its_message_never_shows_the_api_key(stub: ProviderStub, provider: str) -> None:
    key = KEY_OF[provider]
    # A provider that echoes the key back in its error must not leak it through us.
    stub.enqueue(Fault.status(400, body={"error": {"message": f"Invalid request made with key {key}"}}))

    with pytest.raises(UpstreamError) as caught:
        call(provider, settings_for(stub))

    error = caught.value
    assert (error.code, error.retryable, error.status) == ("PROVIDER_REJECTED", False, 502)
    assert "400" in error.message and "Invalid request" in error.message
    assert key not in error.message and key not in str(error.to_body())
    assert stub.request_count == 1


# -- content filters: each provider's refusal signal is one permanent CONTENT_FILTER -------

AZURE_FILTERED_PROMPT = {"error": {
    "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.",
    "type": None, "param": "prompt", "code": "content_filter", "status": 400,
    "innererror": {"code": "ResponsibleAIPolicyViolation",
                   "content_filter_result": {"violence": {"filtered": True, "severity": "high"}}},
}}


@pytest.mark.parametrize(
    ("provider", "fault", "signal"),
    [
        ("openai", Fault.refused(), "finish_reason: content_filter"),
        ("azure", Fault.refused(on="completion"), "finish_reason: content_filter"),
        ("azure", Fault.refused(on="prompt"), "400 content_filter"),
        ("anthropic", Fault.refused(), "stop_reason: refusal"),
    ],
)
def test_a_content_filter_refusal_is_a_permanent_content_filter_error_sent_once(
    stub: ProviderStub, provider: str, fault: Fault, signal: str
) -> None:
    stub.enqueue(fault)

    with pytest.raises(UpstreamError) as caught:
        call(provider, settings_for(stub))

    error = caught.value
    assert (error.code, error.retryable, error.provider) == ("CONTENT_FILTER", False, provider)
    assert signal in error.message
    assert stub.request_count == 1


def test_an_azure_400_whose_inner_code_is_a_policy_violation_is_a_content_filter_error(stub: ProviderStub) -> None:
    body = {"error": {"message": "filtered", "code": "400", "innererror": {"code": "ResponsibleAIPolicyViolation"}}}
    stub.enqueue(Fault.status(400, body=body))

    with pytest.raises(UpstreamError) as caught:
        call("azure", settings_for(stub))

    assert (caught.value.code, caught.value.retryable) == ("CONTENT_FILTER", False)


def test_the_content_filter_error_names_the_signal_but_never_the_filtered_text(stub: ProviderStub) -> None:
    stub.enqueue(Fault.status(400, body=AZURE_FILTERED_PROMPT))

    with pytest.raises(UpstreamError) as caught:
        call("azure", settings_for(stub))

    assert caught.value.code == "CONTENT_FILTER"
    assert "How much does it cost?" not in caught.value.message


def test_a_content_filter_400_from_openai_itself_stays_a_rejected_request(stub: ProviderStub) -> None:
    # Only Azure documents this error body; from OpenAI a 400 is a request we got wrong.
    stub.enqueue(Fault.status(400, body=AZURE_FILTERED_PROMPT))

    with pytest.raises(UpstreamError) as caught:
        call("openai", settings_for(stub))

    assert caught.value.code == "PROVIDER_REJECTED"


def test_an_azure_choice_cut_by_the_filter_is_refused_even_with_partial_text(stub: ProviderStub) -> None:
    choice = {"index": 0, "message": {"role": "assistant", "content": "You can renew"}, "finish_reason": "content_filter"}
    stub.enqueue(Fault.status(200, body={"id": "x", "choices": [choice]}))

    with pytest.raises(UpstreamError) as caught:
        call("azure", settings_for(stub))

    assert caught.value.code == "CONTENT_FILTER"


def test_an_anthropic_refusal_after_some_text_is_refused_not_answered(stub: ProviderStub) -> None:
    body = {"type": "message", "content": [{"type": "text", "text": "You can renew"}], "stop_reason": "refusal"}
    stub.enqueue(Fault.status(200, body=body))

    with pytest.raises(UpstreamError) as caught:
        call("anthropic", settings_for(stub))

    assert caught.value.code == "CONTENT_FILTER"


@pytest.mark.parametrize("provider", AI)
def test_a_scripted_model_reply_arrives_as_the_completion_text(stub: ProviderStub, provider: str) -> None:
    stub.enqueue(Fault.reply("<english-answer>unclosed"))

    completion = call(provider, settings_for(stub))

    assert completion.text == "<english-answer>unclosed"
    assert completion.output_tokens == 1


@pytest.mark.parametrize("fault", [Fault.refused(), Fault.reply("ignored")])
def test_refusals_and_scripted_replies_leave_search_calls_alone(stub: ProviderStub, fault: Fault) -> None:
    stub.enqueue(fault)

    assert call("google", settings_for(stub))[0].url == "https://www.canada.ca/en/stub-1.html"


# -- the registry ------------------------------------------------------------------------


def test_the_registry_builds_offline_providers_with_no_configuration() -> None:
    settings = Settings.from_env(BASE_ENV)

    assert isinstance(build_ai_provider("offline", settings), OfflineAI)
    assert isinstance(build_search_provider("offline", settings), OfflineSearch)


@pytest.mark.parametrize(
    ("build", "name", "field"),
    [
        (build_ai_provider, "gpt-9000", "aiProvider"),
        (build_ai_provider, "anthropic", "aiProvider"),  # known, but no key is set
        (build_search_provider, "bing", "searchProvider"),
        (build_search_provider, "google", "searchProvider"),
    ],
)
def test_an_unknown_or_unconfigured_provider_is_a_bad_request(build: Any, name: str, field: str) -> None:
    with pytest.raises(BadRequest) as caught:
        build(name, Settings.from_env(BASE_ENV))

    assert caught.value.code == "UNKNOWN_PROVIDER"
    assert caught.value.details["field"] == field


def test_the_registry_shares_one_session_per_provider_and_it_reaches_the_stub(stub: ProviderStub) -> None:
    settings = settings_for(stub)

    first = build_ai_provider("openai", settings)
    second = build_ai_provider("openai", settings)

    assert first.inner.session is second.inner.session is shared_session("openai", settings)  # type: ignore[attr-defined]
    assert shared_session("anthropic", settings) is not first.inner.session  # type: ignore[attr-defined]
    assert first.gate is second.gate  # type: ignore[attr-defined]
    assert first.complete(REQUEST).text.startswith("Stub answer to:")
