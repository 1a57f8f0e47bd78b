"""How the benchmark's provider stub behaves: a fixed latency, optionally a provider-side RPM
limit answering 429 with Retry-After, optionally long answers.

`AIBehaviour` is installed as the stub's `rule` (tests/support/provider_stub.py): the stub
calls it once per request, on arrival, and replies with the `Fault` it returns after
sleeping `Fault.seconds`. The stub's own `latency` stays 0, so a 429 comes back at once,
as a real provider's does, and only accepted calls take L.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import deque

from tests.support.provider_stub import Fault, RecordedRequest, default_reply


class SlidingWindowLimit:
    """At most `limit` accepted calls in any `window` seconds, like a provider's RPM limit."""

    def __init__(self, limit: int, window: float = 60.0):
        self.limit, self.window = limit, window
        self.starts: deque[float] = deque()
        self.rejected = 0
        self.accepted = 0
        self.max_in_window = 0

    def admit(self, now: float) -> float | None:
        """None when the call is admitted, else the seconds until a slot frees (Retry-After)."""
        while self.starts and self.starts[0] <= now - self.window:
            self.starts.popleft()
        if len(self.starts) >= self.limit:
            self.rejected += 1
            return self.starts[0] + self.window - now
        self.starts.append(now)
        self.accepted += 1
        self.max_in_window = max(self.max_in_window, len(self.starts))
        return None


class AIBehaviour:
    """The stub's rule: AI calls answer after `latency` seconds (or 429 when over the limit)."""

    def __init__(self, latency: float, limit: SlidingWindowLimit | None = None, answer_chars: int = 0):
        self.latency = latency
        self.limit = limit
        self.answer_chars = answer_chars
        self._lock = threading.Lock()

    def __call__(self, request: RecordedRequest) -> Fault | None:
        if request.api not in ("openai", "azure", "anthropic"):
            return None
        if self.limit is not None:
            with self._lock:
                wait = self.limit.admit(time.monotonic())
            if wait is not None:
                return Fault.status(429, retry_after=max(1, math.ceil(wait)),
                                    body={"error": {"message": "Rate limit reached (stub RPM)", "type": "requests"}})
        if self.answer_chars and request.stage in ("answer", None):  # the other stages' replies stay short
            reply = default_reply(request)
            text = reply["choices"][0]["message"]["content"]
            filler = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * (self.answer_chars // 56 + 1))
            filler = filler[: self.answer_chars]
            # Inside the first sentence of a tagged answer, so that the reply still parses.
            padded = text.replace("<s-1>", f"<s-1>{filler} ", 1) if "<s-1>" in text else f"{filler}\n{text}"
            reply["choices"][0]["message"]["content"] = padded
            return Fault("status", 200, self.latency, None, json.dumps(reply).encode())
        return Fault.delay(self.latency)
