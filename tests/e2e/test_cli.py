"""The command-line client (`python -m lib.cli`) against the real local stack, as a subprocess.

`fast_stack` answers at once (no provider slow-down); the Ctrl-C and SIGTERM tests use
`slow_stack`, whose `openai` provider is a stub that takes 0.4 s a call, so the batch is
still running when the interrupt arrives.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import openpyxl
import pytest
import requests

from devstack.stack import free_port
from tests.e2e.conftest import ROOT, RunningStack
from tests.support.provider_stub import ProviderStub

ORIGINAL_COLUMNS = ["chatId", "REDACTEDQUESTION", "URL", "ticket"]
RESULT_COLUMNS = ["status", "answer", "citationUrl", "error", "interactionId", "responseTimeMs"]
RUN_TIMEOUT = 120  # seconds; a 10-row batch takes a few


def assert_result_columns(columns: list[str]) -> None:
    """As api.md orders them: rowNumber, the file's own columns as uploaded, then the result columns
    (no redactedQuestion: the file's REDACTEDQUESTION column holds the same masked text)."""
    assert columns[:1 + len(ORIGINAL_COLUMNS)] == ["rowNumber", *ORIGINAL_COLUMNS]
    assert set(RESULT_COLUMNS) <= set(columns)


@pytest.fixture(scope="module")
def fast_stack(stack_factory) -> RunningStack:
    """Offline providers answer at once; the `openai` provider points at a closed port, so its rows fail."""
    return stack_factory({"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": f"http://127.0.0.1:{free_port()}/v1",
                          "MAX_ATTEMPTS": "1", "PROVIDER_MAX_RETRIES": "0"})


@pytest.fixture(scope="module")
def slow_stack(stack_factory) -> Iterator[RunningStack]:
    """The `openai` provider is a stub answering every call after 0.4 s: a row takes a second or more."""
    with ProviderStub() as stub:
        stub.latency = 0.4
        yield stack_factory({**stub.env(), "PROVIDER_MAX_RETRIES": "0"})


@pytest.fixture
def conversations(samples_dir: Path) -> Path:
    return samples_dir / "conversations.csv"


def cli(*args: str | Path, cwd: Path, env: dict[str, str] | None = None,
        timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run `python -m lib.cli ARGS` in `cwd` and wait for it."""
    return subprocess.run([sys.executable, "-m", "lib.cli", *map(str, args)], cwd=cwd, env=cli_env(env),
                          capture_output=True, text=True, timeout=timeout, check=False)


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment with the repository on the path and no BATCH_SERVICE_* of the caller's leaking in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCH_SERVICE_")}
    return {**env, "PYTHONPATH": str(ROOT), **(extra or {})}


def last_progress(stderr: str) -> str:
    """The run's last progress line: the one just before the summary the CLI prints at the end."""
    lines = stderr.splitlines()
    return lines[next(i for i, line in enumerate(lines) if line.startswith("Summary:")) - 1]


def against(stack: RunningStack, user: str = "partner") -> list[str]:
    return ["--url", stack.base_url, "--token", stack.tokens[user]]


def read_input(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"), newline=""))
    rows = list(reader)
    return list(reader.fieldnames or []), rows


def assert_rows_match_input(rows: list[dict[str, str]], expected: list[dict[str, str]]) -> None:
    assert len(rows) == len(expected)
    for row, source in zip(rows, expected, strict=True):
        assert {column: row[column] for column in ORIGINAL_COLUMNS} == source
        assert row["status"] == "succeeded", row
        assert row["answer"] and row["interactionId"] and not row["error"]


def test_run_writes_results_in_input_order_with_the_original_columns_first(
    fast_stack: RunningStack, conversations: Path, tmp_path: Path
) -> None:
    done = cli("run", conversations, "--lang", "en", "--ai", "offline", "--search", "offline", *against(fast_stack),
               cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    written = tmp_path / "conversations-results.csv"
    assert done.stdout.strip() == str(written)
    columns, rows = read_csv(written)
    assert_result_columns(columns)
    assert_rows_match_input(rows, read_input(conversations))
    assert "Batch " in done.stderr and "10 rows queued" in done.stderr
    assert "10/10 rows" in last_progress(done.stderr) and "processed" in last_progress(done.stderr)


def test_run_finds_the_local_stack_through_its_info_file(
    fast_stack: RunningStack, conversations: Path, tmp_path: Path
) -> None:
    stack_file = fast_stack.stack.data_dir / "stack.json"

    done = cli("run", conversations, "--lang", "en", "--stack-file", stack_file, "--output", "out.csv", cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert_rows_match_input(read_csv(tmp_path / "out.csv")[1], read_input(conversations))


def test_xlsx_results_hold_the_same_rows_as_the_input(
    fast_stack: RunningStack, conversations: Path, tmp_path: Path
) -> None:
    done = cli("run", conversations, "--lang", "en", "--format", "xlsx", *against(fast_stack), cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    sheet = openpyxl.load_workbook(tmp_path / "conversations-results.xlsx", read_only=True).active
    header, *body = [["" if v is None else str(v) for v in row] for row in sheet.iter_rows(values_only=True)]
    assert_result_columns(header)
    assert_rows_match_input([dict(zip(header, row)) for row in body], read_input(conversations))


def test_status_and_results_commands_read_a_finished_batch_with_the_token_from_the_environment(
    fast_stack: RunningStack, conversations: Path, tmp_path: Path
) -> None:
    env = {"BATCH_SERVICE_URL": fast_stack.base_url, "BATCH_SERVICE_TOKEN": fast_stack.tokens["partner"]}
    run = cli("run", conversations, "--lang", "fr", "--format", "json", cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr
    batch_id = json.loads(Path(run.stdout.strip()).read_text())["batchId"]

    status = cli("status", batch_id, cwd=tmp_path, env=env)
    results = cli("results", batch_id, "--output", "again.csv", cwd=tmp_path, env=env)

    assert status.returncode == 0, status.stderr
    body = json.loads(status.stdout)
    assert (body["batchId"], body["status"], body["processedItems"]) == (batch_id, "processed", 10)
    assert body["pageLanguage"] == "fr"
    assert results.returncode == 0, results.stderr
    assert_rows_match_input(read_csv(tmp_path / "again.csv")[1], read_input(conversations))


def test_a_batch_whose_rows_fail_exits_1_and_still_writes_the_results(
    fast_stack: RunningStack, conversations: Path, tmp_path: Path
) -> None:
    done = cli("run", conversations, "--lang", "en", "--ai", "openai", *against(fast_stack), cwd=tmp_path)

    assert done.returncode == 1, done.stderr
    assert "completed_with_errors" in last_progress(done.stderr)
    columns, rows = read_csv(tmp_path / "conversations-results.csv")
    assert_result_columns(columns)
    assert [row["ticket"] for row in rows] == [row["ticket"] for row in read_input(conversations)]
    assert {row["status"] for row in rows} == {"failed"} and all(row["error"] for row in rows)


def test_an_empty_file_exits_2_with_the_servers_error_code(fast_stack: RunningStack, tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")

    done = cli("run", empty, "--lang", "en", *against(fast_stack), cwd=tmp_path)

    assert done.returncode == 2
    assert "HTTP 400 EMPTY_FILE" in done.stderr
    assert not (tmp_path / "empty-results.csv").exists()


def test_a_wrong_token_exits_2_with_the_401_message(
    fast_stack: RunningStack, conversations: Path, tmp_path: Path
) -> None:
    done = cli("run", conversations, "--lang", "en", "--url", fast_stack.base_url, "--token", "not-a-jwt",
               cwd=tmp_path)

    assert done.returncode == 2
    assert "HTTP 401" in done.stderr


def test_a_batch_id_of_another_user_is_not_found(fast_stack: RunningStack, conversations: Path, tmp_path: Path) -> None:
    run = cli("run", conversations, "--lang", "en", "--format", "json", *against(fast_stack), cwd=tmp_path)
    batch_id = json.loads(Path(run.stdout.strip()).read_text())["batchId"]

    done = cli("status", batch_id, *against(fast_stack, "partner2"), cwd=tmp_path)

    assert done.returncode == 2
    assert "HTTP 404 BATCH_NOT_FOUND" in done.stderr


def test_a_server_that_is_not_listening_exits_3(conversations: Path, tmp_path: Path) -> None:
    done = cli("run", conversations, "--lang", "en", "--url", f"http://127.0.0.1:{free_port()}", "--token", "t",
               cwd=tmp_path)

    assert done.returncode == 3
    assert "Cannot reach" in done.stderr


def test_a_missing_stack_file_exits_2_and_says_how_to_start_the_stack(conversations: Path, tmp_path: Path) -> None:
    done = cli("run", conversations, "--lang", "en", "--stack-file", tmp_path / "nope.json", cwd=tmp_path)

    assert done.returncode == 2
    assert "python -m devstack.stack" in done.stderr


def batch_status(stack: RunningStack, batch_id: str) -> dict:
    response = requests.get(f"{stack.base_url}/api/batch/status", params={"batchId": batch_id},
                            headers={"Authorization": f"Bearer {stack.tokens['partner']}"}, timeout=10)
    response.raise_for_status()
    return response.json()


def wait_for_a_finished_row(stack: RunningStack, batch_id: str, timeout: float = 30) -> None:
    """Until the batch has answered a row."""
    deadline = time.monotonic() + timeout
    while batch_status(stack, batch_id)["processedItems"] < 1:
        assert time.monotonic() < deadline, "no row answered in time"
        time.sleep(0.2)


def final_status(stack: RunningStack, batch_id: str, timeout: float = 30) -> str:
    """The batch's status once final (a cancel lets the row in flight finish first)."""
    deadline = time.monotonic() + timeout
    while True:
        status = batch_status(stack, batch_id)["status"]
        if status in ("processed", "completed_with_errors", "failed", "cancelled") or time.monotonic() > deadline:
            return status
        time.sleep(0.5)


@pytest.mark.parametrize(("sent", "exit_code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["ctrl-c", "sigterm"])
def test_an_interrupt_cancels_the_running_batch_writes_the_finished_rows_and_exits_128_plus_the_signal(
    slow_stack: RunningStack, conversations: Path, tmp_path: Path, sent: signal.Signals, exit_code: int
) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "lib.cli", "run", str(conversations), "--ai", "openai", "--search", "offline",
         "--concurrency", "1", *against(slow_stack)],
        cwd=tmp_path, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # A shell running the suite in the background leaves SIGINT ignored, and a child
        # inherits that: give the CLI the terminal's default, as a user's shell does.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert process.stderr is not None and process.stdout is not None
    queued = process.stderr.readline()  # "Batch <id>: 10 rows queued"
    batch_id = queued.split()[1].rstrip(":")
    wait_for_a_finished_row(slow_stack, batch_id)

    process.send_signal(sent)
    rest = process.stderr.read()
    written = process.stdout.read().strip()
    process.wait(timeout=30)

    assert process.returncode == exit_code, queued + rest
    assert f"python -m lib.cli results {batch_id}" in rest
    assert written == str(tmp_path / "conversations-results.csv")
    columns, rows = read_csv(Path(written))
    assert {*ORIGINAL_COLUMNS, "status", "answer"} <= set(columns)
    finished = [row for row in rows if row["status"] == "succeeded"]
    assert 1 <= len(finished) < 10 and all(row["answer"] for row in finished)
    assert final_status(slow_stack, batch_id) == "cancelled"


def test_a_file_the_page_would_refuse_is_refused_before_it_is_sent(tmp_path: Path) -> None:
    notes = tmp_path / "questions.txt"
    notes.write_text("Question\nHow do I renew my passport?\n")

    # A closed port: a request would end in "Cannot reach" and exit 3.
    done = cli("run", notes, "--url", f"http://127.0.0.1:{free_port()}", "--token", "t", cwd=tmp_path)

    assert done.returncode == 2
    assert "not a .csv or .xlsx file" in done.stderr and "Cannot reach" not in done.stderr
