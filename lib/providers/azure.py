"""Azure OpenAI client: the Chat Completions wire format at a deployment's own address.

POST `{AZURE_OPENAI_ENDPOINT}/openai/deployments/{deployment}/chat/completions
?api-version={AZURE_OPENAI_API_VERSION}` with header `api-key`; the body is OpenAI's
minus `model` (the deployment picks the model); the reply is parsed as OpenAI's.
"""

from __future__ import annotations

from functools import partial
from typing import Any
from urllib.parse import quote

from lib.providers import openai
from lib.providers.base import Completion, CompletionRequest
from lib.providers.http import HttpChat, ProviderRequest, Session
from lib.settings import Settings

NAME = "azure"


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


def client(settings: Settings, session: Session) -> HttpChat:
    """The `AIProvider` for an Azure OpenAI deployment."""
    return HttpChat(NAME, settings, session, build_request,
                    partial(parse_response, fallback_model=settings.azure_openai_deployment or "unknown"))
