"""Redaction stage 2: a model finds the personal information that the rules missed.

One model call per question. The model replies with the question where every piece of
personal information is `XXX`, or the single word `null` when there is none; anything
else is a malformed reply (`StageReplyError`, retryable). Any personal information
blocks the question (`piStage2`), and a content-filter refusal blocks it as
`contentFilter`. With the offline provider the same decision comes from deterministic
rules (`pii_shapes.find_stage2_pii`) instead of a model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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
from lib.chat.stages.offline import is_offline, offline_usage
from lib.chat.stages.pii_patterns import PLACEHOLDER, kinds_of, mask
from lib.chat.stages.pii_shapes import find_stage2_pii
from lib.providers.base import AIProvider, ChatTurn, CompletionRequest

STAGE = "piStage2"
NONE_REPLY = "null"
# A redacted copy may lose words (a name of three words becomes one XXX) but never gains many.
_MAX_NEW_WORD_SHARE = 0.2
_WORD = re.compile(r"\w+")

SYSTEM_PROMPT = """\
You screen questions sent to a Government of Canada help service for personal information.

Personal information means anything that identifies a private individual:
- the name of a private person, in any writing system (Latin, Cyrillic, Arabic, Chinese...);
- account, client, file, case, reference, application, tracking, confirmation, visa, permit
  or passport numbers, business numbers, and social insurance numbers written without spaces;
- street addresses, postal codes, ZIP codes and phone numbers from any country.

It does not include: names of buildings, events, places, departments, agencies or programs;
deceased public figures, prime ministers, governors general and other historical people;
First Nations, Inuit and Métis communities; form or guide numbers (T2125, IMM 5257, RC4288);
dollar amounts, dates and years; question numbers such as "001."; a document named without its
number ("my passport number"); names asked about for history or genealogy.

Reply with the user's question copied exactly, each piece of personal information replaced by
XXX, and nothing else. If the question holds no personal information, reply with the single
word null. Do not answer the question, explain, or add quotation marks."""


@dataclass(frozen=True)
class PiiInput:
    """The question after stage 1 (already clear of the rule-based shapes), and the page language."""

    question: str
    lang: str = "en"


@dataclass(frozen=True)
class PiiResult:
    """A question with no personal information: its text, unchanged, and what the check cost."""

    masked_text: str
    usage: Usage = NO_USAGE


def build_request(inp: PiiInput) -> CompletionRequest:
    """The model call: the screening instructions and the question as the only user turn."""
    return CompletionRequest(system=SYSTEM_PROMPT, messages=[ChatTurn("user", inp.question)],
                             lang=page_lang(inp.lang))  # type: ignore[arg-type]


def parse_reply(reply: str, question: str, *, provider: str = "") -> str | None:
    """The redacted question, or None when the model found nothing. Raises `StageReplyError`."""
    text = reply.strip()
    if text.lower() == NONE_REPLY:
        return None
    if not text:
        raise StageReplyError(STAGE, "the reply is empty", provider=provider)
    if PLACEHOLDER not in text:
        raise StageReplyError(STAGE, "the reply is neither null nor the question with XXX in it",
                              provider=provider, reply=text)
    asked = {w.lower() for w in _WORD.findall(question)}
    written = [w.lower() for w in _WORD.findall(text) if w != PLACEHOLDER]
    new = [w for w in written if w not in asked]
    if len(text) > 2 * len(question) + 40 or (written and len(new) / len(written) > _MAX_NEW_WORD_SHARE):
        raise StageReplyError(STAGE, "the reply is not a copy of the question", provider=provider, reply=text)
    return text


def run_offline(inp: PiiInput) -> PiiResult | Blocked:
    """The deterministic stage 2: the rules of `pii_shapes` in place of the model."""
    hits = find_stage2_pii(inp.question)
    usage = offline_usage(inp.question, NONE_REPLY if not hits else inp.question)
    if not hits:
        return PiiResult(inp.question, usage)
    return Blocked(BlockedBy.PI_STAGE2, mask(inp.question, hits), STAGE, kinds=kinds_of(hits), usage=usage)


def run(inp: PiiInput, ai: AIProvider) -> PiiResult | Blocked:
    """Stage 2: `Blocked` (piStage2 or contentFilter) when the question holds personal information.

    Raises `StageReplyError` for a malformed reply, `UpstreamError` when the provider fails.
    """
    if is_offline(ai):
        return run_offline(inp)
    completion = ask(ai, STAGE, build_request(inp))
    if isinstance(completion, Refused):
        # The filter may have refused because of what the rules cannot see: keep the rules' mask at least.
        return refused_block(completion, mask(inp.question, find_stage2_pii(inp.question)))
    usage = Usage.of(completion)
    redacted = parse_reply(completion.text, inp.question, provider=ai.name)
    if redacted is None:
        return PiiResult(inp.question, usage)
    return Blocked(BlockedBy.PI_STAGE2, redacted, STAGE, kinds=("ai_pii",), usage=usage)
