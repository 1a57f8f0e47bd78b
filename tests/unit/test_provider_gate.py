import threading
import time

import pytest

from lib.errors import UpstreamError
from lib.providers.gate import Limits, ProviderGate


def test_calls_in_flight_never_pass_the_ceiling():
    gate = ProviderGate("stub", Limits(max_in_flight=3, per_minute=None))
    peak, current, lock = [0], [0], threading.Lock()

    def call():
        with gate.slot(timeout=5):
            with lock:
                current[0] += 1
                peak[0] = max(peak[0], current[0])
            time.sleep(0.05)
            with lock:
                current[0] -= 1

    threads = [threading.Thread(target=call) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 3 and gate.stats.max_in_flight == 3 and gate.stats.calls == 12


def test_no_more_calls_start_in_a_minute_than_the_per_minute_ceiling():
    gate = ProviderGate("stub", Limits(max_in_flight=10, per_minute=5))
    for _ in range(5):
        with gate.slot(timeout=1):
            pass
    with pytest.raises(UpstreamError) as info:
        gate.acquire(timeout=0.2)
    assert info.value.code == "PROVIDER_BUSY" and info.value.retryable


def test_a_429_halves_the_ceiling_and_holds_new_calls_for_retry_after_then_successes_recover():
    gate = ProviderGate("stub", Limits(max_in_flight=8, per_minute=None))
    with pytest.raises(UpstreamError):
        with gate.slot(timeout=1):
            raise UpstreamError("429", provider="stub", retryable=True, code="PROVIDER_RATE_LIMITED", retry_after=0.3)
    assert gate.ceiling == 4.0
    started = time.monotonic()
    with gate.slot(timeout=2):
        pass
    assert time.monotonic() - started >= 0.25
    for _ in range(40):
        with gate.slot(timeout=1):
            pass
    assert gate.ceiling == 8.0


def test_a_429_seen_inside_a_call_slows_the_gate_down_too():
    gate = ProviderGate("stub", Limits(max_in_flight=4, per_minute=None))
    gate.rate_limited(0.2)
    assert gate.ceiling == 2.0 and gate.stats.rate_limited == 1
    with pytest.raises(UpstreamError):
        gate.acquire(timeout=0.05)
