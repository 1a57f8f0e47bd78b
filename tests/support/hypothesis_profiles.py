"""Hypothesis settings for the fuzz tests: a short derandomized run by default, a long
random campaign on demand.

    HYPOTHESIS_PROFILE=campaign .venv/bin/pytest tests/integration/test_fuzz_*.py

Each fuzz test states how many examples it runs in the default profile; the campaign
runs `CAMPAIGN_FACTOR` times as many, with fresh random data every time (a failure is
saved in Hypothesis's example database and replayed first on the next run). The
profiles are applied per test, never loaded globally, so other Hypothesis tests keep
their own settings.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

PROFILE_VARIABLE = "HYPOTHESIS_PROFILE"
CAMPAIGN_FACTOR = 25

_COMMON = {
    "deadline": None,  # examples do real HTTP and database work; their times vary
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                              HealthCheck.data_too_large, HealthCheck.large_base_example],
    "print_blob": True,
}

# Derandomized: the same examples on every CI run, so a red build is a change in the code.
settings.register_profile("fuzz-default", derandomize=True, database=None, **_COMMON)
settings.register_profile("fuzz-campaign", derandomize=False, **_COMMON)


def profile_name() -> str:
    """`default` or `campaign`, from HYPOTHESIS_PROFILE (anything else is an error)."""
    name = os.environ.get(PROFILE_VARIABLE, "default") or "default"
    if name not in ("default", "campaign"):
        raise ValueError(f"{PROFILE_VARIABLE} must be 'default' or 'campaign', not {name!r}")
    return name


def fuzz_settings(examples: int) -> settings:
    """Settings for a fuzz test that runs `examples` examples in the default profile."""
    name = profile_name()
    factor = CAMPAIGN_FACTOR if name == "campaign" else 1
    return settings(settings.get_profile(f"fuzz-{name}"), max_examples=examples * factor)
