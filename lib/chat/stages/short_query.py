"""Stage 1 of the graph: a chat that opens with two words or fewer is refused.

"passport renewal" says too little to answer well; the user is sent to a canada.ca
search for those words instead. Only the first turn of a chat can be refused this way:
a short follow-up ("and for children?") has the earlier turns as context.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from lib.chat.stages.base import Blocked, BlockedBy, page_lang, search_url
from lib.chat.stages.rules import mask_question

STAGE = "shortQuery"
MAX_WORDS = 2
_TOKEN = re.compile(r"\S+")


@dataclass(frozen=True)
class ShortQueryInput:
    """The question, the page language, and the user's earlier questions in this chat (oldest first)."""

    question: str
    lang: str = "en"
    earlier_questions: tuple[str, ...] = ()


@dataclass(frozen=True)
class ShortQueryResult:
    """A question long enough to go on (or a follow-up): how many words it counted."""

    words: int


def count_words(text: str) -> int:
    """Words in a text: tokens with a letter or digit; scripts without spaces count two characters a word."""
    count = 0
    for token in _TOKEN.findall(text):
        unspaced = sum(1 for c in token if _is_unspaced_script(c))
        spaced = any(c.isalnum() and not _is_unspaced_script(c) for c in token)
        count += (unspaced + 1) // 2 + (1 if spaced else 0)
    return count


def _is_unspaced_script(char: str) -> bool:
    # Chinese, Japanese and Thai are written without spaces between words.
    name = unicodedata.name(char, "")
    return name.startswith(("CJK UNIFIED", "HIRAGANA", "KATAKANA", "THAI"))


def run(inp: ShortQueryInput) -> ShortQueryResult | Blocked:
    """Block the first turn of a chat when it has `MAX_WORDS` words or fewer (and no earlier turn is longer)."""
    words = count_words(inp.question)
    if words > MAX_WORDS or any(count_words(q) > MAX_WORDS for q in inp.earlier_questions):
        return ShortQueryResult(words)
    masked, kinds = mask_question(inp.question)
    return Blocked(BlockedBy.SHORT_QUERY, masked, STAGE, kinds=kinds,
                   fallback_url=search_url(masked, page_lang(inp.lang)))
