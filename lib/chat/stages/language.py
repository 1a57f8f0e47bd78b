"""Stage 4: the question's language (ISO 639-3) and its English translation.

Detection is py3langid's naive Bayes model, which ships inside the wheel (4.6 MB,
nothing downloaded at run time). Its labels are mapped to ISO 639-3
(`lib/chat/data/iso639.json`), close variants are folded into their language first
(Egyptian Arabic into Arabic, Cantonese into Chinese, Nigerian Pidgin into English:
on a short question the model splits its belief between them), and English and
French get a prior (`ENG_FRA_PRIOR`): nearly every question this service sees is in
one of them, and a short French question ("Date limite des impôts") otherwise comes
out Walloon. On the evaluation file (tests/data/language_questions.csv) the prior
fixes short English and French questions without costing other languages; at 16 it
starts to turn short Spanish into French.

Before the model, cheap rules catch what has no language: `zxx` (obfuscated: mostly
non-letters, strings of consonants, base64-like runs) and `und` (too few letters, or
no language the model believes in). Both block.

Translation to English is one model call (the reply is `<translation>…</translation>`,
parsed strictly). The offline stage keeps the text as it is and says so
(`untranslated=True`).
"""

from __future__ import annotations

import re
import threading
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from lib.chat.stages.base import (
    NO_USAGE,
    Blocked,
    BlockedBy,
    Refused,
    StageReplyError,
    Usage,
    ask,
    page_lang,
    refused_block,
)
from lib.chat.stages.data import load
from lib.chat.stages.offline import is_offline
from lib.providers.base import AIProvider, ChatTurn, CompletionRequest

STAGE = "translation"
ENGLISH, FRENCH, OBFUSCATED, UNDETERMINED = "eng", "fra", "zxx", "und"
ENG_FRA_PRIOR = 8.0
MIN_CONFIDENCE = 0.2
MIN_LETTERS = 4
MODEL_ZXX_CONFIDENCE = 0.5
_VOWELS = set("aeiouyàâäéèêëîïôöùûüÿæœ")
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/=]{16,}")
_TRANSLATION = re.compile(r"^\s*<translation>(?P<text>.*?)</translation>\s*$", re.DOTALL)

SYSTEM_PROMPT = """\
You translate questions that people ask a Government of Canada help service into English.
Translate the user's message faithfully: keep its meaning, tone and every detail, including
names of programs, forms and places; keep any XXX exactly as it is. Do not answer the question.
Reply with the English text inside <translation></translation> tags and nothing else."""

_identifier: Any = None
_identifier_lock = threading.Lock()


@dataclass(frozen=True)
class LanguageInput:
    """The (masked) question, and the page language it was asked from."""

    question: str
    lang: str = "en"


@dataclass(frozen=True)
class Detection:
    """A language code (ISO 639-3, or zxx / und) and how sure the detector was."""

    language: str
    confidence: float


@dataclass(frozen=True)
class LanguageResult:
    """The question's language and its English text.

    `translated`: a model translated it. `untranslated`: the question is not in English
    but no model ran (the offline stage), so `english_question` is the original text.
    """

    language: str
    confidence: float
    english_question: str
    translated: bool = False
    untranslated: bool = False
    usage: Usage = NO_USAGE


def _model() -> Any:
    global _identifier
    with _identifier_lock:
        if _identifier is None:
            from py3langid.langid import MODEL_FILE, LanguageIdentifier

            _identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        return _identifier


def obfuscation(text: str) -> str | None:
    """`zxx` or `und` when the text has no language to detect, else None."""
    visible = [c for c in text if not c.isspace()]
    letters = [c for c in visible if c.isalpha()]
    if visible and not letters:
        return OBFUSCATED if len(visible) >= 3 else UNDETERMINED
    if len(letters) < MIN_LETTERS:
        return UNDETERMINED
    if len(letters) / len(visible) < 0.5:
        return OBFUSCATED
    runs = _BASE64_RUN.findall(text)
    encoded = [r for r in runs if re.search(r"\d", r) and re.search(r"[a-z]", r) and re.search(r"[A-Z]", r)]
    if encoded and sum(len(r) for r in runs) >= 0.5 * len(visible):
        return OBFUSCATED
    words = [w for w in re.findall(r"[^\W\d_]{4,}", text.lower()) if w.isascii()]
    if words and sum(1 for w in words if not set(w) & _VOWELS) / len(words) >= 0.5:
        return OBFUSCATED
    return None


def detect(text: str) -> Detection:
    """The language of a text: ISO 639-3, or `zxx` (obfuscated) / `und` (undetermined)."""
    rule = obfuscation(text)
    if rule is not None:
        return Detection(rule, 1.0)
    codes = load("iso639.json")
    scores: dict[str, float] = defaultdict(float)
    for label, probability in _model().rank(text):
        label = codes["fold"].get(label, label)
        scores[codes["iso3"].get(label, label)] += probability
    for code in (ENGLISH, FRENCH):
        scores[code] *= ENG_FRA_PRIOR
    total = sum(scores.values()) or 1.0
    best = max(scores, key=lambda code: scores[code])
    confidence = scores[best] / total
    if best == OBFUSCATED and confidence < MODEL_ZXX_CONFIDENCE:
        # The model's own "no language" class, but unsure: fall back on the best real language.
        best = max((c for c in scores if c != OBFUSCATED), key=lambda code: scores[code])
        confidence = scores[best] / total
    if confidence < MIN_CONFIDENCE:
        return Detection(UNDETERMINED, confidence)
    return Detection(best, confidence)


def build_request(inp: LanguageInput) -> CompletionRequest:
    """The model call that translates the question into English."""
    return CompletionRequest(system=SYSTEM_PROMPT, messages=[ChatTurn("user", inp.question)],
                             lang=page_lang(inp.lang))  # type: ignore[arg-type]


def parse_reply(reply: str, *, provider: str = "") -> str:
    """The English text of a translation reply. Raises `StageReplyError` when malformed."""
    match = _TRANSLATION.match(reply)
    if match is None:
        raise StageReplyError(STAGE, "expected one <translation>…</translation> and nothing else",
                              provider=provider, reply=reply)
    text = match["text"].strip()
    if not text or "<translation>" in text:
        raise StageReplyError(STAGE, "the translation is empty or nested", provider=provider, reply=reply)
    return text


def run(inp: LanguageInput, ai: AIProvider) -> LanguageResult | Blocked:
    """Stage 4: detect, block `zxx` / `und`, translate anything but English.

    Raises `StageReplyError` for a malformed translation, `UpstreamError` when the provider fails.
    """
    detection = detect(inp.question)
    if detection.language == OBFUSCATED:
        return Blocked(BlockedBy.OBFUSCATED, inp.question, STAGE, kinds=(OBFUSCATED,))
    if detection.language == UNDETERMINED:
        return Blocked(BlockedBy.UNDETERMINED, inp.question, STAGE, kinds=(UNDETERMINED,))
    if detection.language == ENGLISH:
        return LanguageResult(ENGLISH, detection.confidence, inp.question)
    if is_offline(ai):
        return LanguageResult(detection.language, detection.confidence, inp.question, untranslated=True)
    completion = ask(ai, STAGE, build_request(inp))
    if isinstance(completion, Refused):
        return refused_block(completion, inp.question)
    english = parse_reply(completion.text, provider=ai.name)
    return LanguageResult(detection.language, detection.confidence, english, translated=True,
                          usage=Usage.of(completion))
