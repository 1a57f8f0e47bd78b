"""Azure OpenAI client: the Chat Completions wire format at a deployment's own address.

POST `{AZURE_OPENAI_ENDPOINT}/openai/deployments/{deployment}/chat/completions
?api-version={AZURE_OPENAI_API_VERSION}` with header `api-key`; the body is OpenAI's
minus `model` (the deployment picks the model); the reply is parsed as OpenAI's.

Azure's content filter speaks twice: a filtered completion is a 200 whose choice has
`finish_reason: content_filter` (OpenAI's parser), a filtered prompt is a 400 whose
error has `code: content_filter` (inner code `ResponsibleAIPolicyViolation`), read by
`parse_error`. Both are the permanent `UpstreamError` CONTENT_FILTER.
"""

from __future__ import annotations

from functools import partial
from typing import Any
from urllib.parse import quote

from lib.errors import UpstreamError
from lib.providers import openai
from lib.providers.base import Completion, CompletionRequest
from lib.providers.http import HttpChat, ProviderRequest, Session, content_filtered
from lib.settings import Settings

NAME = "azure"
FILTER_CODES = frozenset({"content_filter", "ResponsibleAIPolicyViolation"})


def build_request(settings: Settings, request: CompletionRequest) -> ProviderRequest:
    """The HTTP call for one completion."""
    deployment = quote(settings.azure_openai_deployment or "", safe="")
    return ProviderRequest(
        method="POST",
        url=f"{settings.azure_openai_endpoint}/openai/deployments/{deployment}/chat/completions",
        headers={"api-key": settings.azure_openai_api_key or "", "Content-Type": "application/json"},
        json={"messages": openai.chat_messages(request), "temperature": openai.TEMPERATURE},
        params={"api-version": settings.azure_openai_api_version},
    )


def parse_response(payload: Any, *, fallback_model: str = "unknown") -> Completion:
    """The completion in an Azure reply. Raises `UpstreamError` PROVIDER_BAD_REPLY."""
    return openai.parse_response(payload, provider=NAME, fallback_model=fallback_model)


def parse_error(status: int, payload: Any) -> UpstreamError | None:
    """CONTENT_FILTER for the 400 of a filtered prompt; None for any other error reply."""
    if status != 400 or not isinstance(payload, dict) or not isinstance(payload.get("error"), dict):
        return None
    error = payload["error"]
    inner = error.get("innererror") if isinstance(error.get("innererror"), dict) else {}
    for code in (error.get("code"), inner.get("code")):
        if isinstance(code, str) and code in FILTER_CODES:
            return content_filtered(NAME, f"400 {code}")
    return None


def client(settings: Settings, session: Session) -> HttpChat:
    """The `AIProvider` for an Azure OpenAI deployment."""
    return HttpChat(NAME, settings, session, build_request,
                    partial(parse_response, fallback_model=settings.azure_openai_deployment or "unknown"),
                    parse_error)
