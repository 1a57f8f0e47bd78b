"""System prompts (English and French), search context, and the answer format.

The model is asked to end its answer with one line `<citation-url>URL</citation-url>`;
`parse_answer` takes that line back out.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from lib.models import PromptOverride
from lib.providers.base import SearchResult

CITATION_TAG = re.compile(r"<citation-url>\s*(.*?)\s*</citation-url>", re.IGNORECASE | re.DOTALL)
SYSTEM_OVERRIDE_KEY = "systemPrompt"

_BASE = {
    "en": (
        "You are AI Answers, an assistant that answers questions about Government of Canada "
        "services. Answer in English, in plain language, in at most four short paragraphs. Use "
        "only the search results below and pages on canada.ca or gc.ca; if they do not answer "
        "the question, say so and point to the most relevant page. Never ask for or repeat "
        "personal information. End your answer with exactly one line of the form "
        "<citation-url>URL</citation-url> naming the single page that best supports it."
    ),
    "fr": (
        "Vous êtes Réponses IA, un assistant qui répond aux questions sur les services du "
        "gouvernement du Canada. Répondez en français, en langage clair, en au plus quatre "
        "courts paragraphes. Utilisez seulement les résultats de recherche ci-dessous et des "
        "pages de canada.ca ou gc.ca; s'ils ne répondent pas à la question, dites-le et "
        "indiquez la page la plus pertinente. Ne demandez ni ne répétez jamais de "
        "renseignements personnels. Terminez votre réponse par exactement une ligne de la "
        "forme <citation-url>URL</citation-url> qui nomme la page qui l'appuie le mieux."
    ),
}
_REFERRER = {
    "en": "The user asked from this page: {url}",
    "fr": "L'utilisateur a posé la question à partir de cette page : {url}",
}
_NO_RESULTS = {"en": "(no search results)", "fr": "(aucun résultat de recherche)"}


@dataclass(frozen=True)
class ParsedAnswer:
    text: str
    citation_url: str | None


def build_system_prompt(
    lang: str,
    results: Sequence[SearchResult],
    referring_url: str | None,
    overrides: Sequence[PromptOverride] = (),
) -> str:
    """The system prompt: base instructions (or the user's override), extras, context."""
    base = _BASE["fr" if lang == "fr" else "en"]
    extras: list[str] = []
    for override in overrides:
        if override.key == SYSTEM_OVERRIDE_KEY:
            base = override.text
        else:
            extras.append(f"[{override.key}] {override.text}")
    parts = [base, *extras]
    if referring_url:
        parts.append(_REFERRER["fr" if lang == "fr" else "en"].format(url=referring_url))
    parts.append(render_search_results(results, lang))
    return "\n\n".join(parts)


def render_search_results(results: Sequence[SearchResult], lang: str) -> str:
    if not results:
        return f"<search_results>{_NO_RESULTS['fr' if lang == 'fr' else 'en']}</search_results>"
    lines = ["<search_results>"]
    for result in results:
        lines.append(
            f"<result><url>{result.url}</url><title>{result.title}</title><snippet>{result.snippet}</snippet></result>"
        )
    lines.append("</search_results>")
    return "\n".join(lines)


def parse_answer(text: str) -> ParsedAnswer:
    """Split the model's reply into the answer and its citation URL (the last tag wins)."""
    matches = CITATION_TAG.findall(text)
    citation = matches[-1].strip() if matches else None
    if citation and not citation.lower().startswith(("https://", "http://")):
        citation = None
    answer = CITATION_TAG.sub("", text).strip()
    return ParsedAnswer(text=answer, citation_url=citation or None)
