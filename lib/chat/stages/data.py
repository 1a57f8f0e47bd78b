"""The stages' editable data files (lib/chat/data/), read once per process, and how text is matched on them.

Word lists, name titles, department paths and the like are data, not code, so that
the team can tune them without touching a stage. The files ship inside `lib/` because
a Vercel function bundle cannot read anything outside the project.

Word lists and phrases are matched on folded text (`fold_chars`: lower case, accents
and width folded, apostrophes unified) that keeps every character in place, so a
match's span is also the span in the original text.
"""

from __future__ import annotations

import json
import re
import unicodedata
from functools import cache
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
_APOSTROPHES = str.maketrans({"’": "'", "ʼ": "'", "`": "'", "´": "'"})


@cache
def load(name: str) -> Any:
    """The parsed JSON file `lib/chat/data/<name>` (cached; do not mutate what it returns)."""
    return json.loads((DATA_DIR / name).read_text(encoding="utf-8"))


def fold_chars(text: str) -> str:
    """Lower case, accents and width folded, apostrophes unified: same length as `text`."""
    out = []
    for ch in text.translate(_APOSTROPHES):
        low = ch.lower()[:1] or ch
        base = next((c for c in unicodedata.normalize("NFKD", low) if not unicodedata.combining(c)), low)
        out.append(base[:1])
    return "".join(out)


def phrase_pattern(phrases: list[str]) -> re.Pattern[str] | None:
    """One regex for a list of phrases of folded words; a trailing `*` allows any word ending.

    "ignore previous instructions" matches whatever the spacing; "fuck*" also matches
    "fucking". Word boundaries on both sides, so "ass" does not match "class".
    """
    parts = []
    for phrase in sorted(set(phrases), key=len, reverse=True):
        words = phrase.strip().split()
        if not words:
            continue
        pieces = [re.escape(w[:-1]) + r"\w*" if w.endswith("*") else re.escape(w) for w in words]
        parts.append(r"\s+".join(pieces))
    if not parts:
        return None
    return re.compile(r"(?<!\w)(?:" + "|".join(parts) + r")(?!\w)")
