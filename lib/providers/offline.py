"""Offline providers: search and answers from a small bundled corpus, with no network and no key.

They let the whole stack (and every test above the provider clients) run anywhere.
Both are deterministic: the same question gives the same results and the same answer.

- The corpus is `corpus/en.json` and `corpus/fr.json`: the same ~26 public-service
  topics in each language (`{"lang", "pages": [{"id", "url", "title", "passages"}]}`,
  a topic's `id` shared by both languages). The passages are short plain-language
  summaries written for this service, not copies of the pages; the URLs follow
  canada.ca's layout but were not checked against the live site.
- `OfflineSearch` ranks pages with BM25 over title (counted twice) and passages, after
  accent folding, stop words and plural stripping; the page the user came from gets a
  nudge (`REFERRER_BOOST_*`), so a vague question asked on a page is about that page.
- `OfflineAI` answers from the best passages of the search results it is given (or of
  its own search when it is given none), labelled `[Offline answer]` /
  `[Réponse hors ligne]`, and ends with the project's `<citation-url>` line.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from lib.providers.base import Completion, CompletionRequest, SearchResult
from lib.settings import Settings

NAME = "offline"
CORPUS_DIR = Path(__file__).with_name("corpus")
LANGS = ("en", "fr")
K1, B = 1.2, 0.75  # the usual BM25 constants
TITLE_WEIGHT = 2
# The referring page gains max(FLOOR, SHARE x best score). A vague question ("how do I
# apply?") scores 1-2 on many pages, so the floor makes it a question about the page the
# user is on; a specific one scores 5+, and the page that answers it keeps first place.
REFERRER_BOOST_FLOOR = 1.5
REFERRER_BOOST_SHARE = 0.2
ANSWER_PASSAGES = 2
LABEL = {"en": "[Offline answer]", "fr": "[Réponse hors ligne]"}
HOME = {"en": "https://www.canada.ca/en.html", "fr": "https://www.canada.ca/fr.html"}
NO_MATCH = {
    "en": "I could not find a Government of Canada page that answers this question. "
    "Try asking about a specific service or program, or search Canada.ca.",
    "fr": "Je n'ai trouvé aucune page du gouvernement du Canada qui réponde à cette question. "
    "Essayez de poser une question sur un service ou un programme précis, ou faites une recherche sur Canada.ca.",
}
STOP_WORDS = {
    "en": frozenset(
        "a about after all also am an and any are as at be been being but by can could did do does doing for "
        "from get got had has have having he her his how i if in into is it its just me more most must my "
        "need needs no not of off on or our out over please she should so some than that the their them then "
        "there these they this those to too up us was we were what when where which who whom why will with "
        "would yes you your".split()
    ),
    "fr": frozenset(
        "a ai alors au aussi aux avec avez avoir avons bonjour c ca car ce cela ces cet cette chez combien "
        "comment d dans de des dois doit donc dont du elle elles en entre es est et etc ete etes etre faire "
        "fait faut il ils j je l la le les leur leurs lui m ma mais me merci mes moi mon n ne ni nos notre "
        "nous on ont ou par pas peut peux plus pour pourquoi pouvez puis qu quand que quel quelle quelles "
        "quels qui quoi s sa sans se ses si son sont suis sur svp t ta te tes toi ton tres tu un une vos "
        "votre vous y".split()
    ),
}


@dataclass(frozen=True)
class Page:
    """One corpus page: a topic in one language."""

    id: str
    lang: str
    url: str
    title: str
    passages: tuple[str, ...]


def fold(text: str) -> str:
    """Lower-case and strip accents, so "Régime" and "regime" are one word."""
    text = text.lower().replace("œ", "oe").replace("æ", "ae")
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def tokenize(text: str, lang: str) -> list[str]:
    """The index terms of a text: folded words minus stop words, plurals stripped."""
    stop = STOP_WORDS["fr" if lang == "fr" else "en"]
    return [_stem(word, lang) for word in re.findall(r"[a-z0-9]+", fold(text)) if word not in stop]


def _stem(word: str, lang: str) -> str:
    # Plurals only: enough to match "passports" with "passport" without a real stemmer.
    if len(word) <= 3 or word.isdigit():
        return word
    if lang == "fr":
        if word.endswith("aux"):
            return word[:-3] + "al"
        return word[:-1] if word.endswith(("s", "x")) and not word.endswith("ss") else word
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("sses", "xes", "ches", "shes")):
        return word[:-2]
    return word[:-1] if word.endswith("s") and not word.endswith(("ss", "us", "is")) else word


def normalize_url(url: str) -> str:
    """A URL reduced to host and path, for comparing a referring URL with corpus pages."""
    parts = urlsplit(url.strip())
    return f"{parts.netloc.lower().removeprefix('www.')}{parts.path.rstrip('/')}"


class Corpus:
    """One language's pages and their BM25 statistics."""

    def __init__(self, lang: str, pages: list[Page]):
        self.lang = lang
        self.pages = pages
        self.by_id = {p.id: p for p in pages}
        self.ids_by_url = {normalize_url(p.url): p.id for p in pages}
        self.terms = [
            Counter(tokenize(p.title, lang) * TITLE_WEIGHT + tokenize(" ".join(p.passages), lang)) for p in pages
        ]
        self.lengths = [sum(c.values()) for c in self.terms]
        self.avg_length = sum(self.lengths) / max(1, len(pages))
        df = Counter(term for counts in self.terms for term in counts)
        n = len(pages)
        self.idf = {term: math.log(1 + (n - k + 0.5) / (k + 0.5)) for term, k in df.items()}
        self.max_idf = math.log(1 + (n + 0.5) / 0.5)

    def weight(self, term: str) -> float:
        """How telling a term is; a word the corpus never uses counts as the rarest."""
        return self.idf.get(term, self.max_idf)

    def score(self, query_terms: set[str], i: int) -> float:
        """BM25 score of page `i` for a set of query terms."""
        counts, norm = self.terms[i], K1 * (1 - B + B * self.lengths[i] / self.avg_length)
        return sum(self.idf[t] * counts[t] * (K1 + 1) / (counts[t] + norm) for t in query_terms if t in counts)

    def overlap(self, query_terms: set[str], text: str) -> float:
        """Sum of the weights of the query terms a text contains."""
        return sum(self.weight(t) for t in query_terms & set(tokenize(text, self.lang)))


_corpora: dict[str, Corpus] = {}
_corpora_lock = threading.Lock()


def corpus(lang: str) -> Corpus:
    """The corpus of a language (en for anything but fr), loaded once per process."""
    lang = "fr" if lang == "fr" else "en"
    with _corpora_lock:
        if lang not in _corpora:
            data = json.loads((CORPUS_DIR / f"{lang}.json").read_text(encoding="utf-8"))
            pages = [Page(p["id"], lang, p["url"], p["title"], tuple(p["passages"])) for p in data["pages"]]
            _corpora[lang] = Corpus(lang, pages)
        return _corpora[lang]


def find_page(url: str, lang: str) -> Page | None:
    """The corpus page in `lang` for a URL of either language's copy of the topic, if any."""
    wanted = normalize_url(url)
    for other in LANGS:
        topic = corpus(other).ids_by_url.get(wanted)
        if topic is not None:
            return corpus(lang).by_id.get(topic)
    return None


def best_passages(page_passages: tuple[str, ...], query_terms: set[str], c: Corpus, count: int) -> list[str]:
    """The `count` passages that share most with the query, kept in page order."""
    scored = sorted(range(len(page_passages)), key=lambda i: (-c.overlap(query_terms, page_passages[i]), i))
    chosen = [i for i in scored[:count] if i == scored[0] or c.overlap(query_terms, page_passages[i]) > 0]
    return [page_passages[i] for i in sorted(chosen)]


class OfflineSearch:
    """A `SearchProvider` over the bundled corpus."""

    name = NAME

    def __init__(self, settings: Settings | None = None):
        self.settings = settings

    def search(self, query: str, lang: str, referring_url: str | None = None, limit: int = 5) -> list[SearchResult]:
        """The corpus pages that best match `query`, best first; never raises."""
        c = corpus(lang)
        terms = set(tokenize(query, c.lang))
        scores = [c.score(terms, i) for i in range(len(c.pages))]
        referrer = find_page(referring_url, c.lang) if referring_url else None
        if referrer is not None:
            i = c.pages.index(referrer)
            scores[i] += max(REFERRER_BOOST_FLOOR, REFERRER_BOOST_SHARE * max(scores))
        ranked = sorted((i for i, s in enumerate(scores) if s > 0), key=lambda i: (-scores[i], i))
        results = []
        for i in ranked[: max(0, limit)]:
            page = c.pages[i]
            snippet = best_passages(page.passages, terms, c, 1)[0]
            results.append(SearchResult(title=page.title, url=page.url, snippet=snippet))
        return results


class OfflineAI:
    """An `AIProvider` that composes answers from search passages instead of a model."""

    name = NAME

    def __init__(self, settings: Settings | None = None):
        self.latency_seconds = (settings.offline_ai_latency_ms if settings else 0) / 1000

    def complete(self, request: CompletionRequest) -> Completion:
        """Answer the last user message from the given search results; never raises."""
        if self.latency_seconds:
            time.sleep(self.latency_seconds)  # lets tests make answers slow on purpose
        lang = "fr" if request.lang == "fr" else "en"
        question = next((t.content for t in reversed(request.messages) if t.role == "user"), "")
        results = request.search_results or OfflineSearch().search(question, lang, limit=3)
        text = compose_answer(question, lang, results)
        words_in = len(request.system.split()) + sum(len(t.content.split()) for t in request.messages)
        return Completion(text=text, model=NAME, input_tokens=words_in, output_tokens=len(text.split()))


def compose_answer(question: str, lang: str, results: list[SearchResult]) -> str:
    """The offline answer: the best passages of the best result, then its citation line."""
    c = corpus(lang)
    terms = set(tokenize(question, lang))
    best: tuple[float, str, list[str]] | None = None
    for rank, result in enumerate(results[:3]):
        page = find_page(result.url, lang)
        url, passages = (page.url, page.passages) if page else (result.url, (result.snippet or result.title,))
        passages = tuple(p for p in passages if p.strip())
        if not passages:
            continue
        chosen = best_passages(passages, terms, c, ANSWER_PASSAGES)
        # Search order breaks ties: the provider's ranking is the better judge of a draw.
        score = max(c.overlap(terms, p) for p in chosen) - rank * 1e-6
        if best is None or score > best[0]:
            best = (score, url, chosen)
    if best is None:
        return f"{LABEL[lang]} {NO_MATCH[lang]}\n<citation-url>{HOME[lang]}</citation-url>"
    _, url, chosen = best
    return f"{LABEL[lang]} {' '.join(chosen)}\n<citation-url>{url}</citation-url>"
