"""The checkable facts of an answer: URLs, dates and numbers, in one comparable spelling each.

An answer that keeps its wording but changes "$160" to "$120", "10 years" to "5 years"
or one link for another has changed its meaning, whatever a text similarity says. The
rules, in this order (a span taken by one kind is not read again by the next):

- URLs: `http(s)://…` or `www.…`, compared as the citation analyzer compares links
  (no scheme, no `www.`, host lower-case, no trailing slash or fragment); trailing
  punctuation is not part of the URL.
- Dates: ISO `2025-04-30`; `April 30, 2025` / `30 April 2025` / `le 30 avril 2025`;
  `April 2025` / `avril 2025`. Spelled as ISO (`2025-04-30`, `2025-04`).
- Numbers: digits with `,` or a space as thousands separator (a `,` or space followed
  by exactly three digits), `.` or `,` as decimal mark; currency signs and `%` dropped
  (`$1,500.00`, `1 500,00 $` and `1500` are one fact: `1500`).
"""

from __future__ import annotations

import re

from lib.analyzers.citation import normalize_url
from lib.providers.offline import fold

MONTHS = {
    "january": 1, "february": 2, "march": 3, "april": 4, "may": 5, "june": 6, "july": 7, "august": 8,
    "september": 9, "october": 10, "november": 11, "december": 12,
    "janvier": 1, "fevrier": 2, "mars": 3, "avril": 4, "mai": 5, "juin": 6, "juillet": 7, "aout": 8,
    "septembre": 9, "octobre": 10, "novembre": 11, "decembre": 12,
}
_MONTH = "|".join(sorted(MONTHS, key=len, reverse=True))
_URL = re.compile(r"(?:https?://|www\.)[^\s<>\"')\]]+", re.IGNORECASE)
_DATES = (
    re.compile(r"\b(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})\b"),
    re.compile(rf"\b(?P<month>{_MONTH})\s+(?P<d>\d{{1,2}})(?:st|nd|rd|th)?,?\s+(?P<y>\d{{4}})\b"),
    re.compile(rf"\b(?P<d>\d{{1,2}})(?:er|st|nd|rd|th)?\s+(?P<month>{_MONTH})\s+(?P<y>\d{{4}})\b"),
    re.compile(rf"\b(?P<month>{_MONTH})\s+(?P<y>\d{{4}})\b"),
)
_NUMBER = re.compile(r"(?<![\w.,])\d{1,3}(?:(?:,| |\u00a0|\u202f)\d{3})+(?:[.,]\d+)?(?!\w|[.,]\d)"
                     r"|(?<![\w.,])\d+(?:[.,]\d+)?(?!\w|[.,]\d)")
_THOUSANDS = re.compile(r"(?<=\d)[, \u00a0\u202f](?=\d{3}(?:\D|$))")


def _date(match: re.Match[str]) -> str | None:
    groups = match.groupdict()
    month = MONTHS[groups["month"]] if groups.get("month") else int(groups["m"])
    if not 1 <= month <= 12:
        return None
    if groups.get("d") is None:
        return f"{groups['y']}-{month:02d}"
    day = int(groups["d"])
    return f"{groups['y']}-{month:02d}-{day:02d}" if 1 <= day <= 31 else None


def _number(text: str) -> str:
    plain = _THOUSANDS.sub("", text).replace(",", ".")
    if "." in plain:
        plain = plain.rstrip("0").rstrip(".")
    return plain.lstrip("0") or "0"


def _blank(text: str, match: re.Match[str]) -> str:
    return text[: match.start()] + " " * (match.end() - match.start()) + text[match.end():]


def facts_of(text: str) -> set[str]:
    """The URLs, dates and numbers a text states, each in its comparable spelling."""
    found: set[str] = set()
    rest = text
    for match in list(_URL.finditer(rest)):
        url = match.group().rstrip(".,;:!?")
        found.add(normalize_url(url if "://" in url else f"https://{url}"))
        rest = _blank(rest, match)
    rest = fold(rest)  # month names without accents or capitals (the dates and numbers are read on this text)
    for pattern in _DATES:
        for match in list(pattern.finditer(rest)):
            date = _date(match)
            if date:
                found.add(date)
                rest = _blank(rest, match)
    found.update(_number(match.group()) for match in _NUMBER.finditer(rest))
    return found


def changed_facts(reference: str, answer: str) -> list[str]:
    """The facts in one text but not the other: the reference's first, then the answer's, each sorted."""
    ref, new = facts_of(reference), facts_of(answer)
    return sorted(ref - new) + sorted(new - ref)
