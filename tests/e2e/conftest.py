"""End-to-end fixtures: the real local stack (child processes) on free ports and a scratch folder."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Playwright, sync_playwright

from devstack.stack import Stack, free_port
from tests.support.browser import launch_chromium

ROOT = Path(__file__).resolve().parents[2]
OUTPUT_DIR = ROOT / "test-output"


class RunningStack:
    """What a test sees of a running stack."""

    def __init__(self, stack: Stack, samples_dir: Path):
        self.stack = stack
        self.samples_dir = samples_dir

    @property
    def base_url(self) -> str:
        return self.stack.base_url

    @property
    def tokens(self) -> dict[str, str]:
        return self.stack.tokens

    def signin_url(self, user: str) -> str:
        return self.stack.signin_url(user)


def start_stack(tmp: Path, app_env: dict[str, str], **kwargs) -> Stack:
    external = os.environ.get("MONGODB_URI")
    stack = Stack(
        data_dir=tmp,
        app_port=free_port(),
        qstash_port=free_port(),
        db_port=free_port(),
        mongodb_uri=external,
        db_name=f"e2e_{uuid.uuid4().hex[:10]}",
        app_env=app_env,
        sweep_interval=kwargs.pop("sweep_interval", 5),
        **kwargs,
    )
    try:
        return stack.start()
    except BaseException:
        stack.stop()
        raise


@pytest.fixture(scope="session")
def stack_factory(tmp_path_factory: pytest.TempPathFactory, samples_dir: Path) -> Iterator[Callable[..., RunningStack]]:
    """Start stacks with their own settings; every one is stopped at the end of the run."""
    started: list[Stack] = []

    def make(app_env: dict[str, str] | None = None, **kwargs) -> RunningStack:
        stack = start_stack(tmp_path_factory.mktemp("stack"), app_env or {}, **kwargs)
        started.append(stack)
        return RunningStack(stack, samples_dir)

    yield make
    for stack in started:
        stack.stop()


@pytest.fixture(scope="session")
def stack(stack_factory) -> RunningStack:
    """The stack as the browser tests use it: offline providers slowed to ~1.5 s an answer."""
    return stack_factory({"OFFLINE_AI_LATENCY_MS": "1500", "BATCH_CONCURRENCY": "4"})


@pytest.fixture(scope="session")
def output_dir() -> Path:
    OUTPUT_DIR.mkdir(exist_ok=True)
    return OUTPUT_DIR


@pytest.fixture(scope="module")
def pw() -> Iterator[Playwright]:
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="module")
def browser(pw: Playwright) -> Iterator[Browser]:
    chromium = launch_chromium(pw)
    yield chromium
    chromium.close()
