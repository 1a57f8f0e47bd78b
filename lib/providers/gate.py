"""A per-provider gate: a ceiling on calls in flight and per minute, shared by every batch
and chat message in this process, that slows down after a 429 and then recovers.

The ceiling on calls in flight adapts (AIMD, as TCP does): a 429 halves it and holds
every new call until the provider's Retry-After has passed; each success adds back a
fraction until the configured ceiling is reached again. The per-minute ceiling is a
sliding window of call start times, so no 60-second window ever holds more calls.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from lib.errors import UpstreamError

WINDOW_SECONDS = 60.0
DEFAULT_COOLDOWN_SECONDS = 1.0


@dataclass(frozen=True)
class Limits:
    max_in_flight: int
    per_minute: int | None  # None: no per-minute ceiling


@dataclass
class GateStats:
    calls: int = 0
    rate_limited: int = 0
    max_in_flight: int = 0
    waited_seconds: float = 0.0


class ProviderGate:
    def __init__(self, name: str, limits: Limits, clock: Callable[[], float] = time.monotonic):
        self.name = name
        self.limits = limits
        self.clock = clock
        self.in_flight = 0
        self.ceiling = float(limits.max_in_flight)  # adapts between 1 and max_in_flight
        self.cooldown_until = 0.0
        self.starts: deque[float] = deque()
        self.stats = GateStats()
        self._cond = threading.Condition()

    def _wait_needed(self, now: float) -> float:
        """0 when a call may start now, else how long to wait before looking again."""
        if now < self.cooldown_until:
            return self.cooldown_until - now
        if self.in_flight >= max(1, int(self.ceiling)):
            return 0.5  # woken earlier by a release
        if self.limits.per_minute is not None:
            while self.starts and self.starts[0] <= now - WINDOW_SECONDS:
                self.starts.popleft()
            if len(self.starts) >= self.limits.per_minute:
                return self.starts[0] + WINDOW_SECONDS - now
        return 0.0

    def acquire(self, timeout: float) -> None:
        """Wait for a slot. Raises a retryable `UpstreamError` PROVIDER_BUSY after `timeout` seconds."""
        started = self.clock()
        deadline = started + timeout
        with self._cond:
            while True:
                now = self.clock()
                wait = self._wait_needed(now)
                if wait <= 0:
                    break
                if now >= deadline:
                    raise UpstreamError(f"{self.name} is at its request ceiling; try later", provider=self.name,
                                        retryable=True, code="PROVIDER_BUSY")
                self._cond.wait(min(wait, deadline - now))
            self.in_flight += 1
            self.starts.append(now)
            self.stats.calls += 1
            self.stats.max_in_flight = max(self.stats.max_in_flight, self.in_flight)
            self.stats.waited_seconds += now - started

    def release(self, *, rate_limited: bool = False, retry_after: float | None = None) -> None:
        with self._cond:
            self.in_flight -= 1
            if rate_limited:
                self._slow_down(retry_after)
            else:
                # Additive increase: about one more slot per round of successful calls.
                self.ceiling = min(float(self.limits.max_in_flight), self.ceiling + 1.0 / max(1.0, self.ceiling))
            self._cond.notify_all()

    def rate_limited(self, retry_after: float | None) -> None:
        """Note a 429 seen inside a call (a transport-level retry): slow everybody down."""
        with self._cond:
            self._slow_down(retry_after)

    def _slow_down(self, retry_after: float | None) -> None:
        self.stats.rate_limited += 1
        self.ceiling = max(1.0, self.ceiling / 2)
        pause = retry_after if retry_after is not None and retry_after > 0 else DEFAULT_COOLDOWN_SECONDS
        self.cooldown_until = max(self.cooldown_until, self.clock() + pause)

    @contextmanager
    def slot(self, timeout: float) -> Iterator[None]:
        """Hold a slot for one call; a 429 from the call slows the gate down."""
        self.acquire(timeout)
        try:
            yield
        except UpstreamError as exc:
            limited = exc.code == "PROVIDER_RATE_LIMITED"
            self.release(rate_limited=limited, retry_after=exc.retry_after)
            raise
        except BaseException:
            self.release()
            raise
        self.release()
