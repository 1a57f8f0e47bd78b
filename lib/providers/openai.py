"""OpenAI Chat Completions client: `build_request` and `parse_response` around `http.send`.

Wire format: POST `{OPENAI_BASE_URL}/chat/completions` with `Authorization: Bearer <key>`
and `{"model", "messages": [system, ...turns], "temperature"}`; the reply's
`choices[0].message.content` is the answer, `usage.prompt_tokens` and
`usage.completion_tokens` its accounting. A choice whose `finish_reason` is
`content_filter` (the provider's content filter withheld the text) is the permanent
`UpstreamError` CONTENT_FILTER, which the chat stages treat as a refusal. Azure OpenAI
reuses the parser and the message list (`lib.providers.azure`).
"""

from __future__ import annotations

from functools import partial
from typing import Any

from lib.providers.base import Completion, CompletionRequest
from lib.providers.http import HttpChat, ProviderRequest, Session, bad_reply, content_filtered, token_count
from lib.settings import Settings

NAME = "openai"
CONTENT_FILTER_FINISH = "content_filter"
# Answers should be reproducible for evaluation runs, not creative.
TEMPERATURE = 0.0


def chat_messages(request: CompletionRequest) -> list[dict[str, str]]:
    """The Chat Completions message list: the system prompt, then the conversation."""
    messages = [{"role": "system", "content": request.system}] if request.system else []
    messages += [{"role": turn.role, "content": turn.content} for turn in request.messages]
    return messages


def build_request(settings: Settings, request: CompletionRequest) -> ProviderRequest:
    """The HTTP call for one completion."""
    return ProviderRequest(
        method="POST",
        url=f"{settings.openai_base_url}/chat/completions",
        headers={"Authorization": f"Bearer {settings.openai_api_key}", "Content-Type": "application/json"},
        json={"model": settings.openai_model, "messages": chat_messages(request), "temperature": TEMPERATURE},
    )


def parse_response(payload: Any, *, provider: str = NAME, fallback_model: str = "unknown") -> Completion:
    """The completion in a Chat Completions reply.

    Raises `UpstreamError` CONTENT_FILTER for a filtered choice, PROVIDER_BAD_REPLY for a
    reply without text.
    """
    if not isinstance(payload, dict):
        raise bad_reply(provider, "the reply is not a JSON object")
    choices = payload.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise bad_reply(provider, "no choices")
    if choices[0].get("finish_reason") == CONTENT_FILTER_FINISH:
        # Whatever text came with it was cut off by the filter: none of it is an answer.
        raise content_filtered(provider, f"finish_reason: {CONTENT_FILTER_FINISH}")
    message = choices[0].get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str) or not content.strip():
        # E.g. a model's own refusal (`message.refusal`, structured outputs only) has no content.
        raise bad_reply(provider, "the first choice has no text content")
    usage = payload.get("usage") if isinstance(payload.get("usage"), dict) else {}
    model = payload.get("model")
    return Completion(
        text=content,
        model=model if isinstance(model, str) and model else fallback_model,
        input_tokens=token_count(usage.get("prompt_tokens")),
        output_tokens=token_count(usage.get("completion_tokens")),
    )


def client(settings: Settings, session: Session) -> HttpChat:
    """The `AIProvider` for OpenAI (or any server speaking Chat Completions)."""
    return HttpChat(NAME, settings, session, build_request, partial(parse_response, fallback_model=settings.openai_model))
