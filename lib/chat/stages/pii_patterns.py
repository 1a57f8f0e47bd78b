"""Personal-information shapes of redaction stage 1: where they are in a text, and the text masked.

Rule-based and deliberately blunt, like the live assistant's first stage: any hit blocks
the question, so a shape that is sometimes innocent (a street address in a question)
still counts. Every finder returns `Hit`s (a kind and a span of the original text);
`mask` replaces the spans by `XXX`. Matching that needs case or accents folded runs on
`data.fold_chars(text)`, which keeps every character in place so spans map back one to one.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers

from lib.chat.stages.data import fold_chars, load, phrase_pattern
from lib.providers.offline import STOP_WORDS

PLACEHOLDER = "XXX"


@dataclass(frozen=True, order=True)
class Hit:
    """One flagged span of a text: [start, end) and what it is."""

    start: int
    end: int
    kind: str


def mask(text: str, hits: Iterable[Hit], placeholder: str = PLACEHOLDER) -> str:
    """`text` with every hit's span replaced by `placeholder` (overlapping spans merged)."""
    spans: list[list[int]] = []
    for hit in sorted(hits):
        if spans and hit.start <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], hit.end)
        else:
            spans.append([hit.start, hit.end])
    for start, end in reversed(spans):
        text = text[:start] + placeholder + text[end:]
    return text


_EMAIL = re.compile(
    r"[\w+-]+(?:\s*\.\s*[\w+-]+)*\s*(?:@|\(at\)|\[at\])\s*[\w-]+(?:\s*(?:\.|\(dot\)|\[dot\])\s*[\w-]+)*"
    r"\s*(?:\.|\(dot\)|\[dot\])\s*[a-z]{2,}(?![\w])",
    re.IGNORECASE,
)
# "jdoe at hotmail dot com": only with both words, so "I work at Canada.ca" is no e-mail.
_EMAIL_WORDS = re.compile(r"\b[\w.+-]+\s+at\s+[\w-]+(?:\s+dot\s+[\w-]+)*\s+dot\s+[a-z]{2,}\b", re.IGNORECASE)
_POSTAL = re.compile(
    r"(?<![A-Za-z0-9])[ABCEGHJ-NPRSTVXY]\s{0,2}\d\s{0,2}[ABCEGHJ-NPRSTV-Z]\s{0,2}-?\s{0,2}"
    r"\d\s{0,2}[ABCEGHJ-NPRSTV-Z]\s{0,2}\d(?![A-Za-z0-9])",
    re.IGNORECASE,
)
_STREET_TYPES = (
    r"street|st|avenue|ave|road|rd|boulevard|blvd|drive|dr|lane|ln|court|ct|crescent|cres|place|pl|way|terrace|"
    r"highway|hwy|parkway|pkwy|circle|cir|trail|square|sq|gate|grove|heights|close|concession|line"
)
_STREET_EN = re.compile(
    r"(?<![\w$.,])\d{1,6}[A-Za-z]?(?:-\d{1,6})?,?\s+(?P<name>(?:[\w'’.-]+\s+){1,3}?)(?:" + _STREET_TYPES + r")\b\.?",
    re.IGNORECASE,
)
_STREET_FR = re.compile(
    r"(?<![\w$.,])\d{1,6}[A-Za-z]?(?:-\d{1,6})?,?\s+(?:rue|avenue|av\.|boulevard|boul\.?|chemin|ch\.|route|rang|place|"
    r"montée|montee|côte|cote|allée|allee|impasse|promenade|croissant|terrasse|ruelle|quai|cours)\s+"
    r"(?:de\s+la\s+|de\s+l'|du\s+|des\s+|de\s+|d'|la\s+|le\s+|l')?[\w'’-]+",
    re.IGNORECASE,
)
# Words that never stand in a street's name: "3 days on the road" is not an address.
_NOT_STREET_WORDS = frozenset({
    "a", "an", "and", "at", "by", "days", "day", "for", "from", "hours", "i", "in", "is", "it", "km", "me", "miles",
    "minutes", "months", "my", "of", "off", "on", "or", "our", "per", "than", "that", "the", "their", "this", "times",
    "to", "weeks", "with", "years", "your", "was",
})
_UNIT = re.compile(
    r"\b(?:apt|apartment|appt|appart|appartement|unit|suite|ste|logement)\.?\s*(?:#|no\.?|n°|number)?\s*\d+[A-Za-z]?\b"
    r"|(?<=\s)#\s?\d{1,5}[A-Za-z]?\b",
    re.IGNORECASE,
)
_PO_BOX = re.compile(
    r"\b(?:P\.?\s?O\.?\s?Box|Post\s+Office\s+Box|Case\s+postale|C\.\s?P\.|Casier\s+postal|Rural\s+Route|R\.R\.)"
    r"\s*(?:#|no\.?)?\s*\d+\b",
    re.IGNORECASE,
)
_IPV4 = re.compile(r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\d.])")
_IPV6_CANDIDATE = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_URL = re.compile(
    r"\b(?:https?|ftp)://\S+|\bwww\.\S+|\b[\w-]+(?:\.[\w-]+)*\.(?:com|ca|org|net|gov|info|io|co|fr|uk|us|edu|biz|me|ly)"
    r"/\S*",
    re.IGNORECASE,
)
_SIN = re.compile(r"(?<![\d$-])\d{3}[- .]\d{3}[- .]\d{3}(?![\d-])(?!\s?(?:\$|dollars))")
_EXTENSION = re.compile(r"\s*(?:,\s*)?(?:poste|post|ext\.?|extension|x)\s*\d{1,6}\b", re.IGNORECASE)
_FUNCTION_WORDS = STOP_WORDS["en"] | STOP_WORDS["fr"]
_NAME_WORD = re.compile(r"[^\W\d_][\w'’-]*")


def find_emails(text: str) -> list[Hit]:
    """E-mail addresses, also spaced out ("john . doe @ x . com"), with (at)/(dot) or " at … dot "."""
    found = [*_EMAIL.finditer(text), *_EMAIL_WORDS.finditer(text)]
    return [Hit(m.start(), m.end(), "email") for m in found]


def find_phones(text: str, *, north_american: bool = True) -> list[Hit]:
    """Phone numbers: North-American ones (10 digits, +1, extensions), or all others when not."""
    hits = []
    for match in phonenumbers.PhoneNumberMatcher(text, "CA", leniency=phonenumbers.Leniency.POSSIBLE):
        nanp = match.number.country_code == 1
        if nanp and len(str(match.number.national_number)) != 10:
            continue  # 7 digits is a local number at best, and far more often an amount
        if nanp != north_american:
            continue
        end = match.end
        extension = _EXTENSION.match(text, end)
        if extension and match.number.extension is None:
            end = extension.end()
        hits.append(Hit(match.start, end, "phone" if north_american else "intl_phone"))
    return hits


def find_postal_codes(text: str) -> list[Hit]:
    """Canadian postal codes, with any spacing ("K1A 0B1", "k1a0b1", "K 1 A 0 B 1")."""
    return [Hit(m.start(), m.end(), "postal_code") for m in _POSTAL.finditer(text)]


def find_addresses(text: str) -> list[Hit]:
    """Street addresses ("123 Main Street", "45, rue de la Gauchetière"), units and PO boxes."""
    hits = [Hit(m.start(), m.end(), "address") for m in _STREET_FR.finditer(text)]
    for m in _STREET_EN.finditer(text):
        words = {w.lower().strip(".") for w in m["name"].split()}
        if not words & _NOT_STREET_WORDS:
            hits.append(Hit(m.start(), m.end(), "address"))
    hits += [Hit(m.start(), m.end(), "unit") for m in _UNIT.finditer(text)]
    hits += [Hit(m.start(), m.end(), "po_box") for m in _PO_BOX.finditer(text)]
    return hits


def find_network(text: str) -> list[Hit]:
    """IPv4 and IPv6 addresses, and URLs of any kind (not a bare domain such as canada.ca)."""
    hits = [Hit(m.start(), m.end(), "ip") for m in _IPV4.finditer(text)]
    for m in _IPV6_CANDIDATE.finditer(text):
        try:
            ipaddress.IPv6Address(m.group())
        except ValueError:
            continue
        if sum(c.isalnum() for c in m.group()) >= 2:
            hits.append(Hit(m.start(), m.end(), "ip"))
    for m in _URL.finditer(text):
        url = m.group().rstrip(".,;:!?)\"'»")
        hits.append(Hit(m.start(), m.start() + len(url), "url"))
    return hits


# Payment-card-like numbers: 13 to 19 digits, optionally grouped by spaces or dashes.
_CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")


def find_cards(text: str) -> list[Hit]:
    """Card-like numbers (13 to 19 digits, grouped or not): never a question's business."""
    return [Hit(m.start(), m.end(), "card") for m in _CARD.finditer(text)]


def find_sins(text: str) -> list[Hit]:
    """SIN-shaped numbers written 3-3-3 with spaces, dashes or dots."""
    return [Hit(m.start(), m.end(), "sin") for m in _SIN.finditer(text)]


@lru_cache(maxsize=1)
def _name_rules() -> tuple[re.Pattern[str], re.Pattern[str], frozenset[str], tuple[str, ...]]:
    names = load("names.json")
    titles = [re.escape(t.rstrip(".")) + (r"\." if t.endswith(".") else r"\.?") for t in names["titles"]]
    title = re.compile(r"(?<![\w.])(?i:" + "|".join(sorted(titles, key=len, reverse=True)) + r")\s+"
                       r"(?P<name>[A-ZÀ-ÝŒ][\w'’-]+(?:\s+[A-ZÀ-ÝŒ][\w'’-]+){0,2})")
    intro = phrase_pattern([fold_chars(p) for p in names["introductions"] + names["labels"]])
    assert intro is not None
    # An introduction in a script written without spaces (我叫王伟) is not followed by a word boundary.
    intro = re.compile(intro.pattern.removesuffix(r"(?!\w)"))
    not_names = frozenset(fold_chars(w) for w in names["not_names"])
    figures = tuple(fold_chars(f) for f in names["public_figures"])
    return title, intro, not_names, figures


def is_public_figure(text: str, start: int) -> bool:
    """Whether the name starting at `start` is a public or historical figure (not personal)."""
    folded = fold_chars(text[start : start + 60])
    return any(folded.startswith(figure) for figure in _name_rules()[3])


def find_names(text: str) -> list[Hit]:
    """Names after a title (Mr, Dr, Mme, M.…) or an introduction (my name is, je m'appelle…)."""
    title, intro, not_names, _ = _name_rules()
    hits = [Hit(m.start("name"), m.end("name"), "name") for m in title.finditer(text)
            if not is_public_figure(text, m.start("name"))]
    folded = fold_chars(text)
    for m in intro.finditer(folded):
        end, taken, lowercase_first = m.end(), 0, False
        while taken < 3:
            while end < len(text) and text[end] in " \t:：":
                end += 1
            word = _NAME_WORD.match(text, end)
            if word is None:
                break
            value = folded[word.start() : word.end()]
            latin = word.group()[:1].isascii() or "LATIN" in unicodedata.name(word.group()[0], "")
            if taken == 0 and value in not_names:
                break
            # Lower-case writers write names in lower case too, but never a function word.
            if taken > 0 and latin and not word.group()[:1].isupper() and (
                    not lowercase_first or value in not_names or value in _FUNCTION_WORDS):
                break
            if taken == 0:
                lowercase_first = not word.group()[:1].isupper()
            hits.append(Hit(word.start(), word.end(), "name"))
            end, taken = word.end(), taken + 1
    return hits


def find_dialled_international_phones(text: str) -> list[Hit]:
    """Other countries' numbers written the way they are dialled from abroad (`+44 20 7946 0958`).

    Stage 2 finds international numbers in any shape; one with its `+` prefix is
    unmistakable, so it is refused at upload too and its digits never reach the store.
    """
    return [h for h in find_phones(text, north_american=False) if text[h.start:h.end].lstrip().startswith("+")]


def find_pii(text: str) -> list[Hit]:
    """Every stage-1 personal-information hit in `text`, in no particular order."""
    return [
        *find_emails(text), *find_phones(text), *find_dialled_international_phones(text), *find_postal_codes(text),
        *find_addresses(text), *find_network(text), *find_cards(text), *find_sins(text), *find_names(text),
    ]


def kinds_of(hits: Iterable[Hit]) -> tuple[str, ...]:
    """The distinct kinds of some hits, in a stable order."""
    return tuple(sorted({h.kind for h in hits}))
