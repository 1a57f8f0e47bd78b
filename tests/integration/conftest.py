"""Integration fixtures: real settings, real SecantusDB, provider stub over HTTP, services wired."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lib.auth import issue_token
from lib.models import Role
from lib.services import Services, build_services, reset_services
from lib.settings import Settings
from tests.support.live_app import LiveApp
from tests.support.provider_stub import ProviderStub
from tests.support.recording_queue import RecordingQueue

JWT_SECRET = "integration-secret-" + "x" * 20


@pytest.fixture
def stub() -> Iterator[ProviderStub]:
    with ProviderStub() as server:
        yield server


@pytest.fixture
def env(mongodb_uri: str, db_name: str, stub: ProviderStub) -> dict[str, str]:
    return {
        "MONGODB_URI": mongodb_uri,
        "MONGODB_DB": db_name,
        "JWT_SECRET": JWT_SECRET,
        "PUBLIC_BASE_URL": "http://testserver",
        "QSTASH_URL": "http://127.0.0.1:9",  # nothing listens: tests that publish pass their own queue
        "PROVIDER_MAX_RETRIES": "1",
        "PROVIDER_READ_TIMEOUT": "5",
        **stub.env(),
    }


@pytest.fixture
def queue() -> RecordingQueue:
    return RecordingQueue()


@pytest.fixture
def services(env: dict[str, str], queue: RecordingQueue) -> Services:
    return build_services(Settings.from_env(env), queue=queue)


@pytest.fixture
def installed(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Services]:
    """The process-wide services that the route endpoints use, built from `env`."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    reset_services()
    from lib.services import get_services

    yield get_services()
    reset_services()


@pytest.fixture
def users(services: Services) -> dict[str, object]:
    return {
        "admin": services.users.upsert("admin@example.gc.ca", Role.ADMIN),
        "partner": services.users.upsert("partner@example.gc.ca", Role.PARTNER),
        "partner2": services.users.upsert("partner2@example.gc.ca", Role.PARTNER),
        "user": services.users.upsert("user@example.gc.ca", Role.USER),
    }


def bearer(user_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(user_id, JWT_SECRET)}"}


@pytest.fixture
def live(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveApp]:
    """The route files served over HTTP in-process, fed by the QStash dev server."""
    app = LiveApp().start()
    for name, value in {**env, **app.env(), "FUNCTION_MAX_DURATION": "20", "STEP_SAFETY_SECONDS": "5",
                        "MAX_BATCH_ROWS": "100"}.items():
        monkeypatch.setenv(name, value)
    reset_services()
    from lib.services import get_services

    services = get_services()
    for name, role in (("admin", Role.ADMIN), ("partner", Role.PARTNER), ("partner2", Role.PARTNER),
                       ("user", Role.USER)):
        user = services.users.upsert(f"{name}@example.gc.ca", role)
        app.tokens[name] = issue_token(user.id, JWT_SECRET)
    app.services = services  # type: ignore[attr-defined]
    yield app
    app.stop()
    reset_services()
