import json
from pathlib import Path

import pytest

from lib.errors import ConfigError
from lib.settings import DEV_QSTASH_TOKEN, Settings, parse_provider_limits

BASE = {
    "MONGODB_URI": "mongodb://127.0.0.1:27017",
    "JWT_SECRET": "s" * 32,
    "PUBLIC_BASE_URL": "http://127.0.0.1:3000",
    "QSTASH_URL": "http://127.0.0.1:8080",
}


def test_the_local_defaults_need_no_keys():
    settings = Settings.from_env(BASE)
    assert settings.qstash_token == DEV_QSTASH_TOKEN
    assert settings.configured_ai_providers() == ("offline",)
    assert settings.process_step_url == "http://127.0.0.1:3000/api/batch/process-step"


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"MONGODB_URI": None}, "MONGODB_URI"),
        ({"MONGODB_URI": "postgres://x"}, "MONGODB_URI"),
        ({"JWT_SECRET": "short"}, "JWT_SECRET"),
        ({"PUBLIC_BASE_URL": "not a url"}, "PUBLIC_BASE_URL"),
        ({"BATCH_CONCURRENCY": "33"}, "BATCH_CONCURRENCY"),
        ({"BATCH_CONCURRENCY": "four"}, "BATCH_CONCURRENCY"),
        ({"MAX_ATTEMPTS": "0"}, "MAX_ATTEMPTS"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({"DEFAULT_AI_PROVIDER": "openai"}, "DEFAULT_AI_PROVIDER"),
        ({"QSTASH_URL": None}, "QSTASH_TOKEN"),
        ({"OPENAI_BASE_URL": "ftp://x"}, "OPENAI_BASE_URL"),
    ],
)
def test_a_missing_or_malformed_variable_fails_with_its_name(change, named):
    env = {**BASE, **change}
    env = {k: v for k, v in env.items() if v is not None}
    with pytest.raises(ConfigError, match=named):
        Settings.from_env(env)


def test_the_public_url_falls_back_to_the_vercel_deployment_host():
    env = {k: v for k, v in BASE.items() if k != "PUBLIC_BASE_URL"}
    settings = Settings.from_env({**env, "VERCEL_URL": "ai-answers-batch.vercel.app"})
    assert settings.public_base_url == "https://ai-answers-batch.vercel.app"


def test_a_provider_is_configured_only_when_it_has_what_it_needs():
    settings = Settings.from_env({**BASE, "OPENAI_API_KEY": "k", "AZURE_OPENAI_ENDPOINT": "https://x.openai.azure.com",
                                  "GOOGLE_SEARCH_API_KEY": "g"})
    assert settings.configured_ai_providers() == ("offline", "openai")
    assert settings.configured_search_providers() == ("offline",)


def test_the_step_budget_and_lease_follow_the_function_max_duration_in_vercel_json():
    vercel = json.loads((Path(__file__).resolve().parents[2] / "vercel.json").read_text())
    max_duration = vercel["functions"]["api/batch/process-step.py"]["maxDuration"]
    settings = Settings.from_env(BASE)
    assert settings.function_max_duration == max_duration
    assert settings.step_budget_seconds < max_duration < settings.step_lease_seconds


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("openai=16/600", {"openai": (16, 600)}),
        ("openai=16/600, google=8", {"openai": (16, 600), "google": (8, None)}),
        ("", {}),
    ],
)
def test_provider_limits_are_read_from_a_short_spec(spec, expected):
    assert parse_provider_limits(spec, None) == expected


@pytest.mark.parametrize("spec", ["openai", "openai=x", "openai=0", "=3", "openai=3/0", "openai=2/x"])
def test_a_malformed_provider_limits_spec_is_refused(spec):
    with pytest.raises(ValueError, match="openai|=3"):
        parse_provider_limits(spec, None)


def test_a_provider_without_its_own_limits_gets_the_defaults():
    settings = Settings.from_env({**BASE, "PROVIDER_LIMITS": "openai=4/60", "PROVIDER_MAX_IN_FLIGHT": "9"})
    assert settings.provider_limits("openai") == (4, 60)
    assert settings.provider_limits("anthropic")[0] == 9
