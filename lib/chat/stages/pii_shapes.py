"""Personal-information shapes of redaction stage 2, found without a model (the offline stage).

What the AI PII agent is asked to find (ai-answers.md §1 row 3), as deterministic rules:
names after introductions and titles in any script, non-Latin names standing in a
Latin-script question, identifiers (passport, account, reference, tracking, visa,
business numbers: letters and digits, or digits after a word that announces them),
unformatted SINs, card numbers, international phone numbers, addresses, postal and
ZIP codes. What it must leave alone: form numbers (T2125, IMM 5257, RC4288), dollar
amounts, years, question numbers ("001."), department names, public figures.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from lib.chat.stages.data import fold_chars, load
from lib.chat.stages.pii_patterns import (
    Hit,
    find_addresses,
    find_names,
    find_phones,
    find_postal_codes,
    is_public_figure,
)

_BUSINESS_NUMBER = re.compile(r"(?<![\w])\d{9}\s?(?:R[A-Z])\s?\d{4}(?![\w])", re.IGNORECASE)
_NINE_DIGITS = re.compile(r"(?<![\w$.,-])\d{9}(?![\w-])(?!\s?(?:\$|dollars))")
_CARD = re.compile(r"(?<![\w$.,-])\d{4}(?:[ -]?\d{4}){2}[ -]?\d{1,7}(?![\w-])")
_ALNUM_TOKEN = re.compile(r"(?<![\w$-])[A-Za-z0-9](?:[A-Za-z0-9-]{3,22})[A-Za-z0-9](?![\w-])")
_YEAR_RANGE = re.compile(r"^(?:19|20)\d\d(?:\s*[-–/]\s*(?:19|20)?\d\d)?$")
_ZIP = re.compile(r"\b\d{5}-\d{4}\b|(?i:\bzip(?:\s*code)?)\s*:?\s*\d{5}\b")
_MONEY_AFTER = re.compile(r"\s?(?:\$|dollars?\b|cad\b|k\b)")
_MIN_ID_DIGITS = 5
_CAPITALISED = re.compile(r"[A-ZÀ-ÝŒ][\w'’-]+(?:\s+[A-ZÀ-ÝŒ][\w'’-]+){0,2}")


@lru_cache(maxsize=1)
def _rules() -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    shapes = load("pii_shapes.json")
    forms = re.compile("|".join(f"(?:{p})" for p in shapes["form_numbers"]), re.IGNORECASE)
    words = sorted({fold_chars(w) for w in shapes["id_keywords"]}, key=len, reverse=True)
    keyword = re.compile(
        r"(?<!\w)(?:" + "|".join(re.escape(w) for w in words) + r")(?!\w)"
        r"(?:\s*(?:number|num|nbr|no\.|n°|nº|#|id|code))?\s*(?:is|est|de|:|#)?\s*:?\s*"
        r"(?P<id>[a-z0-9][a-z0-9 -]{3,24}[a-z0-9])"
    )
    states = re.compile(r"\b(?:" + "|".join(shapes["us_states"]) + r")\s+\d{5}(?:-\d{4})?\b")
    return forms, keyword, states


def _is_form_number(value: str) -> bool:
    return _rules()[0].fullmatch(value.strip()) is not None


def _digits(value: str) -> int:
    return sum(c.isdigit() for c in value)


def find_identifiers(text: str) -> list[Hit]:
    """Account, reference, passport, visa, tracking and business numbers; unformatted SINs; cards."""
    hits = [Hit(m.start(), m.end(), "business_number") for m in _BUSINESS_NUMBER.finditer(text)]
    hits += [Hit(m.start(), m.end(), "sin") for m in _NINE_DIGITS.finditer(text)]
    hits += [Hit(m.start(), m.end(), "card") for m in _CARD.finditer(text) if _digits(m.group()) >= 13]
    for m in _ALNUM_TOKEN.finditer(text):
        token = m.group()
        if any(c.isalpha() for c in token) and _digits(token) >= _MIN_ID_DIGITS and not _is_form_number(token):
            hits.append(Hit(m.start(), m.end(), "identifier"))
    folded = fold_chars(text)
    for m in _rules()[1].finditer(folded):
        value = m["id"]
        # The identifier ends at its last digit-bearing word: "file 1234567 please" stops before "please".
        words = value.split(" ")
        while words and not any(c.isdigit() for c in words[-1]):
            words.pop()
        value = " ".join(words)
        digits = _digits(value)
        if digits < 4 or (digits < _MIN_ID_DIGITS and not any(c.isalpha() for c in value)):
            continue
        if _is_form_number(value) or _YEAR_RANGE.match(value) or _MONEY_AFTER.match(folded, m.start("id") + len(value)):
            continue
        hits.append(Hit(m.start("id"), m.start("id") + len(value), "identifier"))
    return hits


def find_zip_codes(text: str) -> list[Hit]:
    """US ZIP codes: after a state abbreviation, as ZIP+4, or after the word ZIP."""
    found = [Hit(m.start(), m.end(), "zip_code") for m in _ZIP.finditer(text)]
    return found + [Hit(m.start(), m.end(), "zip_code") for m in _rules()[2].finditer(text)]


def _script(char: str) -> str:
    name = unicodedata.name(char, "")
    return "LATIN" if char.isascii() or name.startswith("LATIN") else (name.split(" ")[0] or "OTHER")


def find_foreign_script_names(text: str) -> list[Hit]:
    """Runs of non-Latin letters in a mostly Latin-script question: a name written in its own script."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return []
    latin = sum(1 for c in letters if _script(c) == "LATIN")
    if latin / len(letters) < 0.6:
        return []  # a question written in that script: its names are found after introductions only
    hits, start = [], None
    for i, char in enumerate(text + " "):
        foreign = char.isalpha() and _script(char) != "LATIN"
        if foreign and start is None:
            start = i
        elif not foreign and start is not None:
            if i - start >= 2:
                hits.append(Hit(start, i, "name"))
            start = None
    return _merge_adjacent(hits, text)


def _merge_adjacent(hits: list[Hit], text: str) -> list[Hit]:
    # "Иван Петров" is one name, not two hits.
    merged: list[Hit] = []
    for hit in hits:
        if merged and text[merged[-1].end : hit.start].strip() == "":
            merged[-1] = Hit(merged[-1].start, hit.end, hit.kind)
        else:
            merged.append(hit)
    return merged


@lru_cache(maxsize=1)
def _relation() -> re.Pattern[str]:
    words = sorted({fold_chars(w) for w in load("names.json")["relations"]}, key=len, reverse=True)
    return re.compile(r"(?<!\w)(?:my|our|mon|ma|mes|notre)\s+(?:" + "|".join(re.escape(w) for w in words) + r")\s+")


def find_relatives(text: str) -> list[Hit]:
    """Capitalised names right after a relation ("my husband Jean-Marc Dubois", "ma fille Léa")."""
    hits = []
    folded = fold_chars(text)
    for m in _relation().finditer(folded):
        name = _CAPITALISED.match(text, m.end())
        if name and not is_public_figure(text, m.end()):
            hits.append(Hit(name.start(), name.end(), "name"))
    return hits


def find_stage2_pii(text: str) -> list[Hit]:
    """Every personal-information hit that redaction stage 2 looks for, without a model."""
    return [
        *find_names(text), *find_relatives(text), *find_foreign_script_names(text), *find_identifiers(text),
        *find_phones(text, north_american=False), *find_phones(text), *find_addresses(text),
        *find_postal_codes(text), *find_zip_codes(text),
    ]
