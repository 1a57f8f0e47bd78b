"""The rule-based checks of a question, run at upload (design §6: rule-based blocks are decided there).

A batch row that the short-query guard or redaction stage 1 refuses is `blocked` before
it is stored: only its masked text is kept, and it never reaches a provider. The
step's pipeline runs the same checks again (they are cheap and deterministic), so a
row that passes here is screened the same way there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lib.chat.stages import rules, short_query
from lib.chat.stages.base import Blocked


@dataclass(frozen=True)
class Screened:
    """The question as kept (masked when refused), and why it was refused (None: it goes on)."""

    text: str
    blocked_by: str | None = None
    fallback_url: str | None = None
    kinds: tuple[str, ...] = ()


def screen(question: str, lang: str, earlier_questions: Sequence[str] = ()) -> Screened:
    """Run the short-query guard and the rule-based redaction on one question of a conversation."""
    short = short_query.run(short_query.ShortQueryInput(question, lang, tuple(earlier_questions)))
    if isinstance(short, Blocked):
        return _refused(short)
    checked = rules.run(rules.RulesInput(question, lang))
    if isinstance(checked, Blocked):
        return _refused(checked)
    return Screened(text=checked.masked_text)


def _refused(block: Blocked) -> Screened:
    return Screened(text=block.masked_text, blocked_by=block.by.value, fallback_url=block.fallback_url,
                    kinds=tuple(block.kinds))
