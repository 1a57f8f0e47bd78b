"""Fixtures for object storage tests: moto's S3 server, a bucket a test, the live app with storage.

Load them with `pytest_plugins = ["tests.support.s3_fixtures"]` in a test module.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.s3_server import PAGE_ORIGIN, S3Server


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    server = S3Server().start()
    yield server
    server.stop()


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> str:
    """A bucket of the test's own, created as the local stack creates its bucket."""
    name = f"t-{uuid.uuid4().hex[:16]}"
    s3_server.storage(name).create_bucket(cors_origins=[PAGE_ORIGIN])
    return name


@pytest.fixture
def live_s3(live: Any, s3_server: S3Server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The `live` app (route files over HTTP, QStash dev server) with object storage on moto's server."""
    from lib.services import get_services, reset_services

    for name, value in s3_server.env(s3_bucket).items():
        monkeypatch.setenv(name, value)
    reset_services()
    live.services = get_services()
    live.s3 = s3_server
    live.bucket = s3_bucket
    return live
