"""The offline "model" of the stages: when the AI provider is the offline one, no prompt is sent.

The offline AI provider (`lib.providers.offline.OfflineAI`) composes answers from
search passages; it cannot follow a stage's prompt (redact this, translate that,
pick a department). So every stage that calls a model asks `is_offline(ai)` first and,
when it is, runs its own deterministic twin (`run_offline` in the same module, next to
the prompt and parser it stands in for). The choice is made per stage, not by a second
provider, so that the twin can use the stage's typed input (the search results, the
history) instead of parsing its own prompt back, and so that a reader finds a stage's
model path and offline path in one file.

Offline stages report `model="offline"` and word counts as tokens, as `OfflineAI` does,
so that batch counters and cost estimates have something to add up.
"""

from __future__ import annotations

import time

from lib.chat.stages.base import Usage
from lib.providers.base import AIProvider
from lib.providers.offline import NAME as OFFLINE_NAME

OFFLINE_MODEL = OFFLINE_NAME


def is_offline(ai: AIProvider) -> bool:
    """Whether `ai` is the offline provider, whose stages run without a model."""
    return getattr(ai, "name", None) == OFFLINE_NAME


def take_offline_time(ai: AIProvider) -> None:
    """Wait as long as the offline provider is set to take per answer (OFFLINE_AI_LATENCY_MS: tests make it slow)."""
    seconds = getattr(ai, "latency_seconds", 0.0) or 0.0
    if seconds > 0:
        time.sleep(seconds)


def offline_usage(read: str, written: str) -> Usage:
    """What an offline stage "cost": the words it read and the words it wrote."""
    return Usage(OFFLINE_MODEL, len(read.split()), len(written.split()))
