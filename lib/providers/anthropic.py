"""Anthropic Messages API client: `build_request` and `parse_response` around `http.send`.

POST `{ANTHROPIC_BASE_URL}/v1/messages` with headers `x-api-key`,
`anthropic-version: 2023-06-01` and `content-type: application/json`, body
`{"model", "max_tokens", "system", "messages"}`. The answer is the text blocks of
`content` joined; `usage.input_tokens` / `usage.output_tokens` are its accounting.
A reply with `stop_reason: refusal` (the model's safety classifiers stopped it) is the
permanent `UpstreamError` CONTENT_FILTER, which the chat stages treat as a refusal.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from lib.providers.base import Completion, CompletionRequest
from lib.providers.http import HttpChat, ProviderRequest, Session, bad_reply, content_filtered, token_count
from lib.settings import Settings

NAME = "anthropic"
API_VERSION = "2023-06-01"
# The Messages API requires a ceiling; answers are a few short paragraphs.
MAX_TOKENS = 1500
REFUSAL_STOP = "refusal"


def build_request(settings: Settings, request: CompletionRequest) -> ProviderRequest:
    """The HTTP call for one completion."""
    body: dict[str, Any] = {
        "model": settings.anthropic_model,
        "max_tokens": MAX_TOKENS,
        "messages": [{"role": turn.role, "content": turn.content} for turn in request.messages],
    }
    if request.system:
        body["system"] = request.system
    return ProviderRequest(
        method="POST",
        url=f"{settings.anthropic_base_url}/v1/messages",
        headers={
            "x-api-key": settings.anthropic_api_key or "",
            "anthropic-version": API_VERSION,
            "content-type": "application/json",
        },
        json=body,
    )


def parse_response(payload: Any, *, fallback_model: str = "unknown") -> Completion:
    """The completion in a Messages reply.

    Raises `UpstreamError` CONTENT_FILTER for a refusal, PROVIDER_BAD_REPLY for a reply without text.
    """
    if not isinstance(payload, dict):
        raise bad_reply(NAME, "the reply is not a JSON object")
    if payload.get("stop_reason") == REFUSAL_STOP:
        # Any text before the stop is a partial answer the classifiers cut short: not an answer.
        raise content_filtered(NAME, f"stop_reason: {REFUSAL_STOP}")
    content = payload.get("content")
    if not isinstance(content, list):
        raise bad_reply(NAME, "no content list")
    texts = [
        block["text"]
        for block in content
        if isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str)
    ]
    text = "".join(texts)
    if not text.strip():
        raise bad_reply(NAME, "no text block in content")
    usage = payload.get("usage") if isinstance(payload.get("usage"), dict) else {}
    model = payload.get("model")
    return Completion(
        text=text,
        model=model if isinstance(model, str) and model else fallback_model,
        input_tokens=token_count(usage.get("input_tokens")),
        output_tokens=token_count(usage.get("output_tokens")),
    )


def client(settings: Settings, session: Session) -> HttpChat:
    """The `AIProvider` for Anthropic's Messages API."""
    return HttpChat(NAME, settings, session, build_request,
                    partial(parse_response, fallback_model=settings.anthropic_model))
