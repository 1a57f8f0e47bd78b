"""Shared fixtures: a real MongoDB-wire server for the whole run, one database per test.

Set MONGODB_URI to run against a real MongoDB instead of the SecantusDB child process.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.database import DatabaseServer

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT.parent / "shared" / "samples"


@pytest.fixture(scope="session")
def database_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DatabaseServer]:
    server = DatabaseServer(os.environ.get("MONGODB_URI"), tmp_path_factory.mktemp("secantus"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def mongodb_uri(database_server: DatabaseServer) -> str:
    return database_server.uri


@pytest.fixture
def db_name() -> str:
    return f"test_{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    return SAMPLES
