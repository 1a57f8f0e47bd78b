"""The command-line client's pure parts: where it connects, where it writes, what it draws, how it polls."""

from __future__ import annotations

import io
import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import requests

from lib.cli import (
    MAX_POLL_FAILURES,
    ApiError,
    Client,
    ConnectionProblem,
    ProgressDisplay,
    Target,
    Terminated,
    UsageError,
    build_parser,
    choose_format,
    error_from,
    format_duration,
    format_progress,
    output_path,
    resolve_target,
    run_command,
    sigterm_as_interrupt,
    wait_until_final,
)

RUNNING = {"status": "processing", "totalItems": 10, "processedItems": 5, "failedItems": 1, "cancelledItems": 0,
           "percentComplete": 60.0, "etaSeconds": 4.2}
FINISHED = RUNNING | {"status": "completed_with_errors", "processedItems": 9, "percentComplete": 100.0, "etaSeconds": 0}
BIG = RUNNING | {"totalItems": 20_000, "processedItems": 12_345, "failedItems": 678, "cancelledItems": 90,
                 "percentComplete": 65.6, "etaSeconds": 3725}


@pytest.fixture
def stack_file(tmp_path: Path) -> Path:
    path = tmp_path / "stack.json"
    path.write_text(json.dumps({"baseUrl": "http://127.0.0.1:3000/", "tokens": {"admin": "A", "partner": "P"}}))
    return path


# ---------------------------------------------------------------- where to connect


def test_options_win_over_the_environment(stack_file: Path) -> None:
    env = {"BATCH_SERVICE_URL": "https://env.example", "BATCH_SERVICE_TOKEN": "E"}
    assert resolve_target("https://opt.example/", "O", "partner", stack_file, env) == Target("https://opt.example", "O")


def test_the_environment_is_used_when_no_option_is_given(stack_file: Path) -> None:
    env = {"BATCH_SERVICE_URL": "https://env.example", "BATCH_SERVICE_TOKEN": "E"}
    assert resolve_target(None, None, "partner", stack_file, env) == Target("https://env.example", "E")


@pytest.mark.parametrize(("user", "token"), [("partner", "P"), ("admin", "A")])
def test_without_url_and_token_the_stack_file_gives_the_users_token(stack_file: Path, user: str, token: str) -> None:
    assert resolve_target(None, None, user, stack_file, {}) == Target("http://127.0.0.1:3000", token)


@pytest.mark.parametrize(("url", "token"), [("https://x.example", None), (None, "T")])
def test_a_url_without_a_token_or_the_reverse_is_a_usage_error(stack_file: Path, url: str | None,
                                                                token: str | None) -> None:
    with pytest.raises(UsageError, match="both --url and --token"):
        resolve_target(url, token, "partner", stack_file, {})


def test_an_unknown_user_is_refused_with_the_known_ones(stack_file: Path) -> None:
    with pytest.raises(UsageError, match="known: admin, partner"):
        resolve_target(None, None, "nobody", stack_file, {})


@pytest.mark.parametrize("content", ["not json", "[]", '{"baseUrl": "x"}'])
def test_an_unreadable_stack_file_is_a_usage_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "stack.json"
    path.write_text(content)
    with pytest.raises(UsageError, match="Cannot read the stack info"):
        resolve_target(None, None, "partner", path, {})


# ---------------------------------------------------------------- where to write


@pytest.mark.parametrize(
    ("fmt", "output", "expected"),
    [(None, None, "csv"), ("xlsx", None, "xlsx"), (None, "out.json", "json"), (None, "out.XLSX", "xlsx"),
     (None, "out.txt", "csv"), ("csv", "out.xlsx", "csv")],
)
def test_the_format_comes_from_the_option_else_the_output_suffix_else_csv(fmt: str | None, output: str | None,
                                                                         expected: str) -> None:
    assert choose_format(fmt, output) == expected


def test_results_go_next_to_the_caller_named_after_the_input(tmp_path: Path) -> None:
    assert output_path(None, "conversations", "xlsx", tmp_path) == tmp_path / "conversations-results.xlsx"


def test_an_explicit_output_path_is_used_as_given(tmp_path: Path) -> None:
    assert output_path("elsewhere/out.csv", "q", "csv", tmp_path) == Path("elsewhere/out.csv")


def test_an_output_folder_gets_the_default_file_name(tmp_path: Path) -> None:
    assert output_path(str(tmp_path), "q", "csv", Path("/unused")) == tmp_path / "q-results.csv"


@pytest.mark.parametrize("stem", ["../../etc/passwd", "/abs/path", "..", "a\\b", ""])
def test_a_stem_from_a_batch_id_cannot_leave_the_working_folder(tmp_path: Path, stem: str) -> None:
    path = output_path(None, stem, "csv", tmp_path)
    assert path.parent == tmp_path and path.name.endswith("-results.csv") and "/" not in path.name


# ---------------------------------------------------------------- what it draws


@pytest.mark.parametrize(("seconds", "text"), [(None, "--:--"), (0, "0:00"), (4.6, "0:05"), (75, "1:15"),
                                               (3725, "1:02:05")])
def test_durations_read_as_clock_times(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


def test_a_running_batch_shows_its_bar_counts_and_eta() -> None:
    line = format_progress(RUNNING)
    assert line.startswith("processing")
    for part in ("[############........]", " 60.0%", "6/10 rows", "ok 5", "failed 1", "ETA 0:04"):
        assert part in line


def test_a_finished_batch_shows_no_eta_and_cancelled_rows_only_when_there_are_some() -> None:
    assert "ETA" not in format_progress(FINISHED)
    assert "cancelled" not in format_progress(FINISHED)
    assert "cancelled 3" in format_progress(RUNNING | {"cancelledItems": 3})


def test_blocked_rows_count_as_done_and_show_only_when_there_are_some() -> None:
    line = format_progress(RUNNING | {"blockedItems": 2, "percentComplete": None})
    assert "8/10 rows" in line and "blocked 2" in line and " 80.0%" in line
    assert "blocked" not in format_progress(RUNNING)


def test_an_ingesting_batch_shows_the_rows_written_so_far() -> None:
    line = format_progress({"status": "ingesting", "totalItems": 100_000, "ingestedItems": 25_000,
                            "processedItems": 0, "failedItems": 0, "percentComplete": 0.0})
    assert line.startswith("ingesting") and "25000/100000 rows written" in line and " 25.0%" in line
    assert "ETA" not in line
    assert "25000/100000 rows written" in format_progress({"status": "ingesting", "totalItems": 100_000,
                                                          "ingestedItems": 25_000}, width=40)


def test_the_percent_is_worked_out_when_the_server_does_not_give_it() -> None:
    assert " 60.0%" in format_progress(RUNNING | {"percentComplete": None})


@pytest.mark.parametrize("width", [10, 20, 30, 40, 60, 79, 120])
def test_the_line_never_outgrows_the_width(width: int) -> None:
    assert len(format_progress(BIG, width=width)) <= width
    assert len(format_progress(RUNNING, width=width)) <= width


def test_at_80_columns_a_big_batchs_line_keeps_every_count_and_the_eta() -> None:
    line = format_progress(BIG, width=79)  # the display leaves the last column free

    assert len(line) <= 79
    for part in ("13113/20000 rows", "ok 12345", "failed 678", "cancelled 90", "ETA 1:02:05"):
        assert part in line


def test_the_bar_shrinks_before_anything_else_goes() -> None:
    full = format_progress(RUNNING)
    narrower = format_progress(RUNNING, width=len(full) - 4)

    assert "[" in narrower and "60.0%" in narrower and narrower.endswith("ETA 0:04")
    assert len(narrower) == len(full) - 4


def test_without_room_for_a_bar_the_line_drops_it_and_the_percent_but_keeps_counts_and_eta() -> None:
    line = format_progress(BIG, width=78)

    assert "[" not in line and "%" not in line
    assert line.endswith("13113/20000 rows  ok 12345  failed 678  cancelled 90  ETA 1:02:05")


def test_on_a_very_narrow_terminal_rows_done_and_the_eta_are_what_stays() -> None:
    assert format_progress(BIG, width=50) == "processing 13113/20000 rows ETA 1:02:05"


def test_a_cancelling_batch_shows_no_eta() -> None:
    assert "ETA" not in format_progress(RUNNING | {"status": "cancelling"})


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_without_a_terminal_a_line_is_printed_when_progress_moves_but_not_more_than_every_few_seconds() -> None:
    out, clock = io.StringIO(), Clock()
    display = ProgressDisplay(out, tty=False, clock=clock)

    display.update(RUNNING)  # first: printed
    clock.now = 1
    display.update(RUNNING | {"processedItems": 6})  # moved, but too soon
    clock.now = 6
    display.update(RUNNING | {"processedItems": 7})  # moved, 6 s later: printed
    clock.now = 30
    display.update(RUNNING | {"processedItems": 7})  # still: waits for the heartbeat
    clock.now = 31
    display.update(FINISHED)  # final: always printed

    lines = out.getvalue().splitlines()
    assert [line.split()[0] for line in lines] == ["processing", "processing", "completed_with_errors"]
    assert "ok 7" in lines[1]


def test_without_a_terminal_a_stalled_batch_still_prints_a_heartbeat() -> None:
    out, clock = io.StringIO(), Clock()
    display = ProgressDisplay(out, tty=False, clock=clock)
    display.update(RUNNING)
    clock.now = 61
    display.update(RUNNING)
    assert len(out.getvalue().splitlines()) == 2


def test_on_a_terminal_the_line_is_redrawn_in_place_and_ended_on_close() -> None:
    out = io.StringIO()
    display = ProgressDisplay(out, tty=True)
    display.update(RUNNING | {"status": "processing", "etaSeconds": 3725})
    display.update(FINISHED)
    display.close()
    text = out.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n") and text.count("\n") == 1


# ---------------------------------------------------------------- errors and polling


def test_an_error_envelope_gives_the_code_and_message() -> None:
    body = json.dumps({"error": {"code": "EMPTY_FILE", "message": "The file is empty."}}).encode()
    error = error_from(400, body)
    assert (error.code, str(error), error.exit_code) == ("EMPTY_FILE", "HTTP 400 EMPTY_FILE: The file is empty.", 2)


def test_details_of_an_error_are_shown() -> None:
    body = json.dumps({"error": {"code": "INVALID_LANG", "message": "Bad.", "details": {"field": "lang"}}}).encode()
    assert str(error_from(400, body)).endswith('Bad. {"field": "lang"}')


def test_an_answer_that_is_not_an_envelope_still_gives_an_error_and_a_5xx_exits_3() -> None:
    error = error_from(502, b"<html>Bad gateway</html>", "Bad Gateway")
    assert (error.code, error.exit_code) == ("HTTP_502", 3)
    assert "Bad Gateway" in str(error)


class FakeSession:
    """Answers the status endpoint from a script: a dict is a 200 body, an exception is raised."""

    def __init__(self, script: list[Any]):
        self.script = script
        self.headers: dict[str, str] = {}
        self.calls = 0

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        self.calls += 1
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(step, Exception):
            raise step
        status, body = step if isinstance(step, tuple) else (200, step)
        response = requests.Response()
        response.status_code, response._content = status, json.dumps(body).encode()
        return response


def poll(script: list[Any]) -> tuple[FakeSession, Any]:
    session = FakeSession(script)
    client = Client(Target("http://api", "T"), session=session)  # type: ignore[arg-type]
    result = wait_until_final(client, "b1", ProgressDisplay(io.StringIO(), tty=False), sleep=lambda _: None)
    return session, result


def test_polling_rides_out_a_brief_outage() -> None:
    outage = requests.ConnectionError("refused")
    session, status = poll([RUNNING, outage, outage, (503, {"error": {"code": "INTERNAL", "message": "x"}}), FINISHED])
    assert status == FINISHED and session.calls == 5


def test_polling_gives_up_with_exit_3_after_a_long_outage() -> None:
    with pytest.raises(ConnectionProblem) as raised:
        poll([requests.ConnectionError("refused")])
    assert raised.value.exit_code == 3


def test_polling_counts_only_consecutive_failures() -> None:
    outage = requests.Timeout("slow")
    script: list[Any] = ([outage] * (MAX_POLL_FAILURES - 1) + [RUNNING]) * 2 + [FINISHED]
    assert poll(script)[1] == FINISHED


def test_polling_stops_at_once_on_a_client_error() -> None:
    with pytest.raises(ApiError) as raised:
        poll([(404, {"error": {"code": "BATCH_NOT_FOUND", "message": "No such batch."}})])
    assert raised.value.exit_code == 2


# ---------------------------------------------------------------- arguments


def test_polling_goes_on_while_a_cancel_lets_the_rows_in_flight_finish() -> None:
    cancelled = RUNNING | {"status": "cancelled", "cancelledItems": 4, "etaSeconds": None}
    session, status = poll([RUNNING, RUNNING | {"status": "cancelling"}, RUNNING | {"status": "cancelling"}, cancelled])

    assert status == cancelled and session.calls == 4


def test_run_defaults_to_english() -> None:
    assert build_parser().parse_args(["run", "q.csv"]).lang == "en"


def test_run_options_parse_into_the_upload_fields() -> None:
    args = build_parser().parse_args(["run", "q.csv", "--lang", "fr", "--ai", "openai", "--concurrency", "3",
                                      "--overrides", "-o", "out.xlsx", "--user", "admin"])
    assert (args.file, args.lang, args.ai, args.search, args.concurrency, args.overrides, args.output, args.user) == (
        "q.csv", "fr", "openai", None, 3, True, "out.xlsx", "admin")


# ---------------------------------------------------------------- a run, end to end against a fake API

CREATED = {"batchId": "b1", "status": "queued", "totalItems": 10, "warnings": [
    {"code": "BLANK_QUESTION", "rowNumber": 5, "message": "Row 5: the question is blank; the row was skipped."},
    "Row 6: a warning of the older, plain kind."]}
PARTIAL_CSV = b"rowNumber,status\r\n2,succeeded\r\n3,succeeded\r\n"
SUMMARY = {"batchId": "b1", "byStatus": {"succeeded": 9, "failed": 1}, "blockedByStage": {},
           "analyzers": {"refusal": {"passed": 8, "failed": 1, "passRate": 0.8889}},
           "latencyMs": {"p50": 1200, "p95": 3400, "rows": 9}, "tokens": {"input": 5000, "output": 700},
           "cost": {"estimatedUsd": 0.0031, "budgetUsd": 1.0, "unpricedModels": ["mystery"], "stopReason": None},
           "stability": {"trials": 2, "allPass": 3, "mixed": 1, "allFail": 1},
           "baseline": {"batchId": "b0", "same": 7, "drift": 2, "better": 1, "worse": 1}}


class FakeApi:
    """The batch endpoints: create answers CREATED, status follows a script (an exception in
    it is raised), cancel answers `cancelling`, results give PARTIAL_CSV; every call is recorded."""

    def __init__(self, statuses: list[Any]):
        self.statuses = statuses
        self.headers: dict[str, str] = {}
        self.calls: list[tuple[str, str]] = []
        self.created_with: dict[str, str] = {}

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        path = url.removeprefix("http://api")
        self.calls.append((method, path))
        if path == "/api/batch/status":
            step = self.statuses.pop(0)
            if isinstance(step, BaseException):
                raise step
            return self._answer(json.dumps(step).encode())
        body = {"/api/batch/create": CREATED, "/api/batch/cancel": {"batchId": "b1", "status": "cancelling"},
                "/api/batch/summary": SUMMARY}
        if path == "/api/batch/create":
            self.created_with = kwargs.get("data") or {}
        return self._answer(PARTIAL_CSV if path == "/api/batch/results" else json.dumps(body[path]).encode())

    @staticmethod
    def _answer(content: bytes) -> requests.Response:
        response = requests.Response()
        response.status_code, response._content, response._content_consumed = 200, content, True
        return response


def run(tmp_path: Path, statuses: list[Any], name: str = "questions.csv",
        extra: tuple[str, ...] = ()) -> tuple[int, FakeApi, str]:
    questions = tmp_path / name
    questions.write_text("Question\nq\n")
    api, err = FakeApi(statuses), io.StringIO()
    args = build_parser().parse_args(["run", str(questions), "-o", str(tmp_path / "out.csv"), *extra])
    code = run_command(args, Client(Target("http://api", "T"), session=api), err)  # type: ignore[arg-type]
    return code, api, err.getvalue()


def test_a_finished_run_writes_the_results_and_prints_each_warnings_message(tmp_path: Path) -> None:
    code, _api, err = run(tmp_path, [RUNNING, FINISHED])

    assert code == 1  # completed_with_errors
    assert (tmp_path / "out.csv").read_bytes() == PARTIAL_CSV
    assert "warning: Row 5: the question is blank; the row was skipped." in err
    assert "warning: Row 6: a warning of the older, plain kind." in err


@pytest.mark.parametrize(("interrupt", "exit_code"), [(KeyboardInterrupt(), 130), (Terminated(), 143)],
                         ids=["ctrl-c", "sigterm"])
def test_an_interrupt_cancels_the_batch_then_writes_the_rows_finished_so_far(
    tmp_path: Path, interrupt: BaseException, exit_code: int
) -> None:
    code, api, err = run(tmp_path, [RUNNING, interrupt])

    assert code == exit_code
    assert api.calls[-2:] == [("POST", "/api/batch/cancel"), ("GET", "/api/batch/results")]
    assert (tmp_path / "out.csv").read_bytes() == PARTIAL_CSV
    assert "Batch b1 cancelling." in err and "python -m lib.cli results b1" in err


@pytest.mark.parametrize("name", ["questions.txt", "questions.xls", "questions.xlsm", "questions"])
def test_a_file_the_page_would_refuse_is_refused_before_anything_is_sent(tmp_path: Path, name: str) -> None:
    with pytest.raises(UsageError, match=r"not a \.csv or \.xlsx file") as raised:
        run(tmp_path, [], name=name)

    assert raised.value.exit_code == 2


def test_within_a_run_sigterm_raises_terminated_and_the_old_handler_comes_back() -> None:
    before = signal.getsignal(signal.SIGTERM)

    with pytest.raises(Terminated), sigterm_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
        signal.sigtimedwait([], 1)  # let the handler run (it runs between bytecodes)

    assert signal.getsignal(signal.SIGTERM) == before


def test_a_run_sends_the_evaluation_options_and_prints_the_summary_at_the_end(tmp_path: Path) -> None:
    code, api, err = run(tmp_path, [RUNNING, FINISHED], extra=("--trials", "2", "--analyzers", "refusal,citation",
                                                               "--baseline", "b0", "--budget", "1.5"))

    assert code == 1
    assert {k: api.created_with[k] for k in ("trials", "analyzers", "baselineBatchId", "budgetUsd")} == {
        "trials": "2", "analyzers": "refusal,citation", "baselineBatchId": "b0", "budgetUsd": "1.5"}
    assert api.calls[-1] == ("GET", "/api/batch/summary")
    assert "Summary: 1 failed, 9 succeeded" in err and "p50 1200 ms, p95 3400 ms" in err
    assert "refusal: 88.9% pass (8 of 9)" in err and "2 drift, 1 better, 1 worse" in err
    assert "not priced (counted as $0): mystery" in err and "1 mixed" in err
    assert not (tmp_path / "out-summary.json").exists()


def test_with_summary_the_summary_is_written_as_json_next_to_the_results(tmp_path: Path) -> None:
    run(tmp_path, [RUNNING, FINISHED], extra=("--summary",))

    assert json.loads((tmp_path / "out-summary.json").read_text(encoding="utf-8")) == SUMMARY
