"""Redaction stage 1 (rules): word lists, scanner probes, paired tags, emoji and PII patterns.

Any hit blocks the question. The word lists are editable data
(`lib/chat/data/wordlists/<lang>.json`: profanity, threat, manipulation) and both
languages' lists apply whatever the page language, since a French question is often
asked from an English page. Matching is on folded text: lower case, no accents, and
simple leetspeak undone inside words ("sh1t", "$hit"). Personal information is masked
with `XXX` and flagged words or payloads with `###`: the masked text is the only copy
of a blocked question that is kept.

Which block wins when several checks hit: threat, then manipulation, profanity,
obfuscated (emoji), and personal information last: the stronger refusal is the one
reported, and the masked text hides every hit whichever is reported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from lib.chat.stages.base import Blocked, BlockedBy
from lib.chat.stages.data import fold_chars, load, phrase_pattern
from lib.chat.stages.pii_patterns import PLACEHOLDER, Hit, find_pii, kinds_of, mask

STAGE = "rules"
WORD_LISTS = ("en", "fr")
WORD_KINDS = ("threat", "manipulation", "profanity")
FLAG_PLACEHOLDER = "###"
_LEET = str.maketrans({"4": "a", "3": "e", "1": "i", "0": "o", "5": "s", "7": "t", "@": "a", "$": "s"})
_WORD_WITH_LEET = re.compile(r"[\w@$]+")
_TAG_PAIR = re.compile(r"<\s*([A-Za-z][\w:.-]*)(?:\s[^<>]*)?>.*?<\s*/\s*\1\s*>", re.DOTALL)
_EMOJI = re.compile(
    "[\U0001f000-\U0001faff\U00002600-\U000027bf\U0001f1e6-\U0001f1ff\u2b00-\u2bff\ufe0f\u200d\u20e3]+"
)
_PRIORITY = {
    "threat": BlockedBy.THREAT,
    "manipulation": BlockedBy.MANIPULATION,
    "probe": BlockedBy.MANIPULATION,
    "tag": BlockedBy.MANIPULATION,
    "profanity": BlockedBy.PROFANITY,
    "emoji": BlockedBy.OBFUSCATED,
}


@dataclass(frozen=True)
class RulesInput:
    """The question as typed, and the page language (kept for the record; all lists apply)."""

    question: str
    lang: str = "en"


@dataclass(frozen=True)
class RulesResult:
    """A question that passed stage 1: its text (unchanged) and no hit."""

    masked_text: str
    kinds: tuple[str, ...] = ()


def normalize(text: str) -> str:
    """The text the word lists are matched on: folded, leetspeak undone inside words; same length."""
    folded = fold_chars(text)

    def unleet(match: re.Match[str]) -> str:
        word = match.group()
        return word.translate(_LEET) if any(c.isalpha() for c in word) else word

    return _WORD_WITH_LEET.sub(unleet, folded)


@lru_cache(maxsize=1)
def _word_patterns() -> dict[str, re.Pattern[str]]:
    patterns = {}
    for kind in WORD_KINDS:
        phrases = [normalize(p) for lang in WORD_LISTS for p in load(f"wordlists/{lang}.json")[kind]]
        pattern = phrase_pattern(phrases)
        if pattern is not None:
            patterns[kind] = pattern
    return patterns


@lru_cache(maxsize=1)
def _probes() -> tuple[str, ...]:
    return tuple(fold_chars(p) for p in load("probes.json")["probes"])


def find_flagged(text: str) -> list[Hit]:
    """Word-list words, scanner probes, paired XML-like tags and emoji in `text`."""
    normalized = normalize(text)
    hits = [Hit(m.start(), m.end(), kind) for kind, pattern in _word_patterns().items()
            for m in pattern.finditer(normalized)]
    folded = fold_chars(text)
    for probe in _probes():
        start = folded.find(probe)
        while start >= 0:
            # A payload runs to the end of its token: "${jndi:ldap://x}" is masked whole.
            end = start + len(probe)
            while end < len(text) and not text[end].isspace():
                end += 1
            hits.append(Hit(start, end, "probe"))
            start = folded.find(probe, start + 1)
    hits += [Hit(m.start(), m.end(), "tag") for m in _TAG_PAIR.finditer(text)]
    hits += [Hit(m.start(), m.end(), "emoji") for m in _EMOJI.finditer(text)]
    return hits


def mask_question(text: str) -> tuple[str, tuple[str, ...]]:
    """The question with PII masked (`XXX`) and flagged words masked (`###`), and the kinds hit."""
    pii, flagged = find_pii(text), find_flagged(text)
    # Masking twice would move spans: mask the later spans first, whatever their placeholder.
    spans = sorted([(h, PLACEHOLDER) for h in pii] + [(h, FLAG_PLACEHOLDER) for h in flagged],
                   key=lambda pair: pair[0])
    merged: list[tuple[Hit, str]] = []
    for hit, placeholder in spans:
        if merged and hit.start <= merged[-1][0].end:
            last, last_placeholder = merged[-1]
            merged[-1] = (Hit(last.start, max(last.end, hit.end), last.kind), last_placeholder)
        else:
            merged.append((hit, placeholder))
    masked = text
    for hit, placeholder in reversed(merged):
        masked = mask(masked, [hit], placeholder)
    return masked, kinds_of([*pii, *flagged])


def run(inp: RulesInput) -> RulesResult | Blocked:
    """Stage 1: a `Blocked` result on any hit (with the masked text), else the question as it is."""
    masked, kinds = mask_question(inp.question)
    if not kinds:
        return RulesResult(masked_text=inp.question)
    for kind, blocked_by in _PRIORITY.items():
        if kind in kinds:
            return Blocked(blocked_by, masked, STAGE, kinds=kinds)
    return Blocked(BlockedBy.PI_STAGE1, masked, STAGE, kinds=kinds)
