"""The provider stub's fault rule: faults at the configured rates per row, search outages.

A row of the pipeline makes several model calls (PII screening, query rewrite,
department, answer...). Each call draws its fault at the configured rate divided by
`CALLS_PER_ROW`, so that a row meets about the configured share of faults whichever
stage they hit (1 - (1 - p/4)^4 is within a few percent of p), and every stage meets them.
An AI request's fate is drawn from a generator seeded by the campaign's seed, the
request's provider, stage and question, and how many times that was asked before, so
the same request meets the same fault in every run of a seed, whatever the thread
timing. Search outages are windows of campaign time in which every search request is
answered 503.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter

from bench.campaign.plan import ProviderFaultRates, Window
from tests.support.provider_stub import Fault, RecordedRequest

SEARCH_APIS = ("google", "canadaca")
SERVER_ERRORS = (500, 502, 503, 504)
# Mostly short waits, which the app's HTTP retry sleeps through; now and then one longer
# than it will sleep inside a step, which sends the row back to the engine for a backoff.
RETRY_AFTER_SECONDS = (1, 1, 2, 6)
# How much a "read timeout" reply overshoots the app's read timeout.
TIMEOUT_OVERSHOOT_SECONDS = 0.6
# Model calls an English row makes in the pipeline (lib/chat/stages/pipeline.py).
CALLS_PER_ROW = 4


class ProviderChaos:
    """A `ProviderStub.rule`: decides each request's fault and counts what it injected."""

    def __init__(self, seed: int, rates: ProviderFaultRates, outages: list[Window], read_timeout: float,
                 latency: tuple[float, float], started: float | None = None):
        self.seed = seed
        self.rates = rates
        self.outages = outages
        self.read_timeout = read_timeout
        self.latency = latency
        self.started = time.monotonic() if started is None else started
        self.injected: Counter[str] = Counter()
        self._asked: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self, request: RecordedRequest) -> Fault | None:
        if request.api in SEARCH_APIS:
            return self._search(request)
        if request.api is None:
            return None
        key = f"{request.api}|{request.stage}|{request.question}"
        with self._lock:
            occurrence = self._asked[key]
            self._asked[key] += 1
            self.injected["ai requests"] += 1
        rng = random.Random(f"{self.seed}|{key}|{occurrence}")
        kind, fault = self._draw(rng)
        if kind:
            with self._lock:
                self.injected[kind] += 1
        return fault

    def _draw(self, rng: random.Random) -> tuple[str | None, Fault]:
        r, rates = rng.random() * CALLS_PER_ROW, self.rates
        if r < (edge := rates.server_error):
            return "ai 5xx", Fault.status(rng.choice(SERVER_ERRORS))
        if r < (edge := edge + rates.rate_limited):
            return "ai 429 retry-after", Fault.status(429, retry_after=rng.choice(RETRY_AFTER_SECONDS))
        if r < (edge := edge + rates.read_timeout):
            return "ai read timeout", Fault.delay(self.read_timeout + TIMEOUT_OVERSHOOT_SECONDS)
        if r < edge + rates.malformed:
            return "ai malformed reply", Fault.malformed()
        return None, Fault.delay(rng.uniform(*self.latency))

    def _search(self, request: RecordedRequest) -> Fault:
        moment = time.monotonic() - self.started
        with self._lock:
            self.injected["search requests"] += 1
            down = any(moment in window for window in self.outages)
            if down:
                self.injected["search outage 503"] += 1
        if down:
            return Fault.status(503, body={"error": "search is down (campaign outage)"})
        return Fault.delay(random.uniform(0.0, self.latency[0]))

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self.injected)
