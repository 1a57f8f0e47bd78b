"""The provider ports: what the chat pipeline asks of an AI provider and a search provider."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

# The code of the `UpstreamError` a client raises when the provider's content filter refused
# the text (Azure's `content_filter` error, OpenAI's `finish_reason: content_filter`,
# Anthropic's `stop_reason: refusal`): the pipeline's stages treat it as a refusal.
CONTENT_FILTER = "CONTENT_FILTER"


@dataclass(frozen=True)
class ChatTurn:
    """One message of the conversation sent to the AI provider."""

    role: Literal["user", "assistant"]
    content: str


@dataclass(frozen=True)
class SearchResult:
    title: str
    url: str
    snippet: str


@dataclass(frozen=True)
class CompletionRequest:
    """Everything an AI provider is given for one answer.

    `system` and `messages` are what real providers send on the wire (the search
    results are already rendered into `system`). `lang` and `search_results` are the
    same facts in structured form, for the offline provider, which composes its answer
    from them instead of a model.
    """

    system: str
    messages: list[ChatTurn]
    lang: Literal["en", "fr"]
    search_results: list[SearchResult] = field(default_factory=list)


@dataclass(frozen=True)
class Completion:
    """The provider's raw answer text (citation still inside it) and its accounting."""

    text: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0


class AIProvider(Protocol):
    name: str

    def complete(self, request: CompletionRequest) -> Completion:
        """Answer the conversation. Raises `UpstreamError` (retryable or not)."""
        ...


class SearchProvider(Protocol):
    name: str

    def search(self, query: str, lang: str, referring_url: str | None = None, limit: int = 5) -> list[SearchResult]:
        """Search for pages answering `query`. Raises `UpstreamError` (retryable or not)."""
        ...
