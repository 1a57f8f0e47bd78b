"""The offline answer: the tagged answer format written from search results, with no model.

Deterministic, in the question's language (French for a French question, English
otherwise: the offline stages cannot translate), labelled `[Offline answer]` /
`[Réponse hors ligne]`. The answer type comes from phrase lists
(`lib/chat/data/answer_types.json`): a recipe or a hockey score is `not-gc`, a
driver's licence or a property tax `pt-muni`; a question no search result speaks to
gets a `clarifying-question`. A normal answer is the best passages of the best
corpus page among the results (both language versions of a topic share an id, so the
English answer and the French one come from the same page), split into at most four
sentences.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from lib.chat.stages.data import fold_chars, load, phrase_pattern
from lib.providers.base import SearchResult
from lib.providers.offline import LABEL, best_passages, corpus, find_page, tokenize

MAX_SENTENCES = 4
ANSWER_PASSAGES = 2
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-ZÀ-ÝÉÈ0-9«\"(])")
CANNED = {
    "not-gc": {
        "en": ("This question is not about a Government of Canada program or service, so I cannot answer it.",
               "Ask me about federal programs and services, such as taxes, benefits, immigration or passports."),
        "fr": (("Cette question ne porte pas sur un programme ou un service du gouvernement du Canada; je ne "
                "peux donc pas y répondre."),
               ("Posez-moi une question sur les programmes et services fédéraux, comme les impôts, les "
                "prestations, l'immigration ou les passeports.")),
    },
    "pt-muni": {
        "en": ("This is handled by your province, territory or municipality, not by the Government of Canada.",
               "Their website or service centre can tell you how it works where you live."),
        "fr": (("Cette question relève de votre province, de votre territoire ou de votre municipalité, et non "
                "du gouvernement du Canada."),
               "Leur site Web ou leur centre de services peut vous expliquer comment cela fonctionne chez vous."),
    },
    "clarifying-question": {
        "en": ("I could not find a Government of Canada page about this.",
               "Which program or service is your question about?"),
        "fr": ("Je n'ai trouvé aucune page du gouvernement du Canada à ce sujet.",
               "Sur quel programme ou service porte votre question?"),
    },
}


@lru_cache(maxsize=1)
def _type_patterns() -> tuple[tuple[str, re.Pattern[str]], ...]:
    lists = load("answer_types.json")
    out = []
    for answer_type, key in (("not-gc", "not_gc"), ("pt-muni", "pt_muni")):
        pattern = phrase_pattern([fold_chars(p) for lang in ("en", "fr") for p in lists[key][lang]])
        if pattern is not None:
            out.append((answer_type, pattern))
    return tuple(out)


def answer_type_of(*texts: str) -> str | None:
    """`not-gc` or `pt-muni` when the question matches one of the phrase lists, else None."""
    folded = fold_chars(" ".join(texts))
    for answer_type, pattern in _type_patterns():
        if pattern.search(folded):
            return answer_type
    return None


def split_sentences(text: str) -> list[str]:
    """A passage cut into sentences (at ., ! or ? followed by a capital)."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def _best_page(english_question: str, results: Sequence[SearchResult]) -> tuple[str, float] | None:
    """The topic id of the result page that shares most with the question, and that overlap."""
    c = corpus("en")
    terms = set(tokenize(english_question, "en"))
    best: tuple[str, float] | None = None
    for rank, result in enumerate(results[:3]):
        page = find_page(result.url, "en")
        if page is None:
            continue
        score = max(c.overlap(terms, p) for p in page.passages) + c.overlap(terms, page.title) - rank * 1e-6
        if best is None or score > best[1]:
            best = (page.id, score)
    return best


def _sentences_from(topic: str | None, lang: str, question: str, results: Sequence[SearchResult]) -> list[str]:
    if topic is None:
        result = results[0]
        return split_sentences(result.snippet or result.title)[:MAX_SENTENCES]
    c = corpus(lang)
    page = c.by_id[topic]
    chosen = best_passages(page.passages, set(tokenize(question, lang)), c, ANSWER_PASSAGES)
    return [s for p in chosen for s in split_sentences(p)][:MAX_SENTENCES]


def _tagged(sentences: Sequence[str], label: str) -> str:
    sentences = [f"{label} {sentences[0]}", *sentences[1:]]
    return "".join(f"<s-{i}>{s}</s-{i}>" for i, s in enumerate(sentences[:MAX_SENTENCES], start=1))


def compose(question: str, english_question: str, question_language: str, results: Sequence[SearchResult]) -> str:
    """The tagged answer (§2 format) for a question, from its search results; deterministic."""
    lang = "fr" if question_language == "fra" else "en"
    kind = answer_type_of(question, english_question) or (None if results else "clarifying-question")
    head = url = None
    if kind is not None:
        english, local = list(CANNED[kind]["en"]), list(CANNED[kind][lang])
    else:
        best = _best_page(english_question, results)
        topic = best[0] if best else None
        english = _sentences_from(topic, "en", english_question, results)
        local = _sentences_from(topic, lang, question, results) if lang == "fr" else english
        if topic is not None:
            page = corpus(lang).by_id[topic]
            head, url = page.title, page.url
        else:
            head, url = results[0].title, results[0].url
    confidence = "0.2" if kind else "0.6"
    wrap_open, wrap_close = (f"<{kind}>", f"</{kind}>") if kind else ("", "")
    parts = [
        f"<preliminary-checks>offline composer; language {question_language}; type {kind or 'normal'}"
        + "</preliminary-checks>",
        f"<english-answer>{wrap_open}{_tagged(english, LABEL['en'])}{wrap_close}</english-answer>",
    ]
    if question_language != "eng":
        parts.append(f"<answer>{wrap_open}{_tagged(local, LABEL[lang])}{wrap_close}</answer>")
    if url:
        parts.append(f"<citation-head>{head}</citation-head>")
        parts.append(f"<citation-url>{url}</citation-url>")
    parts.append(f"<confidence>{confidence}</confidence>")
    return "\n".join(parts)
