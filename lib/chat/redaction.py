"""Personal information is masked before a question goes to a provider or the store.

Patterns are deliberately broad: a masked non-PII number costs little, a leaked SIN or
card number costs a lot. Each kind has its own placeholder so the answer still makes
sense, and re-redacting redacted text changes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
# Card-like: 13 to 19 digits, optionally grouped by spaces or dashes.
_CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
# SIN-like: nine digits, optionally as 3-3-3 with spaces or dashes.
_SIN = re.compile(r"(?<![\d-])\d{3}[ -]?\d{3}[ -]?\d{3}(?![\d-])")
# North American phone numbers: optional +1, area code with or without parentheses.
_PHONE = re.compile(r"(?<![\d])(?:\+?1[ .\-]?)?(?:\(\d{3}\)|\d{3})[ .\-]?\d{3}[ .\-]\d{4}(?![\d])")
# Canadian postal codes: A1A 1A1 (letters D F I O Q U never appear; W Z not first).
_POSTAL = re.compile(r"\b[ABCEGHJ-NPRSTVXY]\d[ABCEGHJ-NPRSTV-Z][ -]?\d[ABCEGHJ-NPRSTV-Z]\d\b", re.IGNORECASE)

# Order matters: longer number shapes first so a card is not half-eaten as a SIN.
_RULES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("email", _EMAIL, "[EMAIL]"),
    ("card", _CARD, "[CARD NUMBER]"),
    ("phone", _PHONE, "[PHONE]"),
    ("sin", _SIN, "[SIN]"),
    ("postal_code", _POSTAL, "[POSTAL CODE]"),
)


@dataclass(frozen=True)
class Redaction:
    text: str
    redacted: bool
    kinds: tuple[str, ...]


def redact(text: str) -> Redaction:
    """Mask e-mails, card numbers, phone numbers, SIN-like numbers and postal codes."""
    kinds: list[str] = []
    for kind, pattern, placeholder in _RULES:
        text, count = pattern.subn(placeholder, text)
        if count:
            kinds.append(kind)
    return Redaction(text=text, redacted=bool(kinds), kinds=tuple(kinds))
