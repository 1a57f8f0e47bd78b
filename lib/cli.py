"""Command-line client for headless batch runs, against the local stack or a deployment.

    python -m lib.cli run questions.csv --lang en                  # the local stack
    python -m lib.cli run questions.csv --lang fr --url URL --token JWT

A client of the HTTP API (api.md), not part of the service: the one module outside the
provider clients that imports `requests`. Exit codes: 0 every row succeeded; 1 the batch
ended completed_with_errors, failed or cancelled (results still written); 2 usage or
HTTP 4xx; 3 the API could not be reached or failed (5xx); 130 interrupted (Ctrl-C), 143
terminated (SIGTERM): either cancels the batch and writes the rows finished so far.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

import requests

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_STACK_FILE = ROOT / ".local" / "stack.json"
FORMATS = ("csv", "xlsx", "json")
UPLOAD_TYPES = {".csv": "text/csv", ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
FINAL_STATUSES = ("processed", "completed_with_errors", "failed", "cancelled")
# Not final: `cancelling` (no row starts; rows in flight finish), `queued`, `processing`.
RUNNING_STATUSES = ("queued", "processing")  # the statuses an ETA means something in
POLL_SECONDS = 1.0
PLAIN_EVERY_SECONDS = 5.0  # without a terminal: a line at most this often while counts move...
PLAIN_HEARTBEAT_SECONDS = 60.0  # ...and at least this often while they do not (CI logs stay alive)
MAX_POLL_FAILURES = 30  # consecutive failed polls (about 30 s) before giving up
TIMEOUT = (10, 120)  # connect, read (seconds)
BAR_WIDTH = 20
MIN_BAR_WIDTH = 5  # narrower than this, the bar goes: the counts and the ETA matter more
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM


class CliError(Exception):
    """A failure reported as one line on stderr; `exit_code` is the process's exit code."""

    exit_code = 2


class UsageError(CliError):
    """Bad arguments, an unreadable input, or missing connection details (exit 2)."""


class ConnectionProblem(CliError):
    """The API could not be reached, timed out, or answered something that is not the API (exit 3)."""

    exit_code = 3


class Terminated(BaseException):
    """SIGTERM arrived: unwinds like KeyboardInterrupt (which `except Exception` does not catch)."""


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within: SIGTERM raises Terminated in the main thread, so a CI timeout is handled like Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return

    def terminate(signum: int, frame: object) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class ApiError(CliError):
    """An error envelope from the API: 4xx exits 2, 5xx exits 3."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"HTTP {status} {code}: {message}")
        self.status, self.code = status, code
        self.exit_code = 2 if status < 500 else 3


def error_from(status: int, body: bytes, reason: str = "") -> ApiError:
    """The ApiError for a non-2xx answer, from the envelope when there is one."""
    try:
        error = json.loads(body)["error"]
        message = str(error["message"])
        if error.get("details"):
            message += f" {json.dumps(error['details'], ensure_ascii=False)}"
        return ApiError(status, str(error["code"]), message)
    except (ValueError, KeyError, TypeError):
        return ApiError(status, f"HTTP_{status}", reason or body[:200].decode("utf-8", "replace"))


@dataclass(frozen=True)
class Target:
    base_url: str
    token: str


def resolve_target(url: str | None, token: str | None, user: str, stack_file: Path, env: Mapping[str, str]) -> Target:
    """URL and token from the options, else the environment, else the local stack's info file."""
    url, token = url or env.get("BATCH_SERVICE_URL"), token or env.get("BATCH_SERVICE_TOKEN")
    if url and token:
        return Target(url.rstrip("/"), token)
    if url or token:
        raise UsageError("Give both --url and --token (or BATCH_SERVICE_URL and BATCH_SERVICE_TOKEN), "
                         "or neither to use the local stack.")
    try:
        info = json.loads(stack_file.read_text(encoding="utf-8"))
        tokens, base_url = info["tokens"], info["baseUrl"]
    except FileNotFoundError as exc:
        raise UsageError(f"No local stack info at {stack_file}. Start the stack (python -m devstack.stack) "
                         "or give --url and --token.") from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"Cannot read the stack info in {stack_file}: {exc!r}") from exc
    if not isinstance(tokens, dict) or user not in tokens:
        known = ", ".join(tokens) if isinstance(tokens, dict) else "none"
        raise UsageError(f"No user {user!r} in {stack_file} (known: {known}).")
    return Target(str(base_url).rstrip("/"), str(tokens[user]))


def choose_format(fmt: str | None, output: str | None) -> str:
    """The results format: --format, else the --output suffix when it names one, else csv."""
    suffix = Path(output).suffix.lower().lstrip(".") if output else ""
    return fmt or (suffix if suffix in FORMATS else "csv")


def output_path(explicit: str | None, stem: str, fmt: str, cwd: Path) -> Path:
    """Where results go: --output as given (a folder gets the default name), else `<stem>-results.<fmt>` in cwd."""
    default_name = f"{re.sub(r'[^\w.-]+', '_', stem).strip('.') or 'batch'}-results.{fmt}"
    if explicit:
        path = Path(explicit)
        return path / default_name if path.is_dir() else path
    return cwd / default_name


def format_duration(seconds: float | None) -> str:
    """Seconds as `m:ss` or `h:mm:ss`; `--:--` when unknown."""
    if seconds is None:
        return "--:--"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_progress(status: Mapping[str, Any], width: int = 200) -> str:
    """One progress line: state, bar, percent, rows done of total, ok / failed, ETA; at most `width` long.

    When the line does not fit, the bar shrinks, then goes, then the percent, then the
    spacing; on a very narrow terminal the ok / failed counts go last: rows done and ETA stay.
    """
    total = int(status.get("totalItems") or 0)
    ok, failed = int(status.get("processedItems") or 0), int(status.get("failedItems") or 0)
    blocked, cancelled = int(status.get("blockedItems") or 0), int(status.get("cancelledItems") or 0)
    done = ok + blocked + failed + cancelled
    state = str(status.get("status", "?"))
    if state == "ingesting":  # a big upload's rows are still being written: that is the progress to show
        done = int(status.get("ingestedItems") or 0)
        percent = 100.0 if total == 0 else 100.0 * done / total
        counts, eta = [f"{done}/{total} rows written"], []
    else:
        percent = status.get("percentComplete")
        percent = float(percent) if percent is not None else (100.0 if total == 0 else 100.0 * done / total)
        outcomes = [f"ok {ok}"] + ([f"blocked {blocked}"] if blocked else []) + [f"failed {failed}"] \
            + ([f"cancelled {cancelled}"] if cancelled else [])
        eta = [f"ETA {format_duration(status.get('etaSeconds'))}"] if state in RUNNING_STATUSES else []
        counts = [f"{done}/{total} rows", *outcomes, *eta]
    candidates = [
        *("  ".join([f"{state:<10}", _bar(percent, bar), f"{percent:5.1f}%", *counts])
          for bar in range(BAR_WIDTH, MIN_BAR_WIDTH - 1, -1)),
        "  ".join([f"{state:<10}", f"{percent:5.1f}%", *counts]),
        "  ".join([state, *counts]),
        " ".join([state, *counts]),
        " ".join([state, counts[0], *eta]),
    ]
    return next((line for line in candidates if len(line) <= width), candidates[-1][:width])


def _bar(percent: float, width: int) -> str:
    filled = round(width * min(max(percent, 0.0), 100.0) / 100)
    return f"[{'#' * filled}{'.' * (width - filled)}]"


class ProgressDisplay:
    """On a terminal, redraws one line; elsewhere prints a plain line now and then."""

    def __init__(self, stream: TextIO, tty: bool, clock: Callable[[], float] = time.monotonic):
        self.stream, self.tty, self.clock = stream, tty, clock
        self._drawn = 0  # characters on the terminal line
        self._last: tuple[float, str, tuple[Any, ...]] | None = None  # (time, state, counts) of the last line

    def update(self, status: Mapping[str, Any]) -> None:
        """Show the batch's status."""
        if self.tty:
            line = format_progress(status, max(20, shutil.get_terminal_size().columns - 1))
            self.stream.write("\r" + line + " " * max(0, self._drawn - len(line)))
            self._drawn = len(line)
        else:
            now, state = self.clock(), str(status.get("status"))
            counts = tuple(status.get(k) for k in ("processedItems", "blockedItems", "failedItems", "cancelledItems",
                                                   "ingestedItems"))
            if self._last is not None and state == self._last[1] and state not in FINAL_STATUSES:
                wait = PLAIN_EVERY_SECONDS if counts != self._last[2] else PLAIN_HEARTBEAT_SECONDS
                if now - self._last[0] < wait:
                    return
            self.stream.write(format_progress(status) + "\n")
            self._last = (now, state, counts)
        self.stream.flush()

    def close(self) -> None:
        """End the terminal line so that what follows starts on its own."""
        if self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = 0


class Client:
    """The batch endpoints over one requests.Session; every failure comes out as a CliError."""

    def __init__(self, target: Target, session: requests.Session | None = None):
        self.base_url = target.base_url
        self.session = session or requests.Session()
        self.session.headers["Authorization"] = f"Bearer {target.token}"
        self.options: dict[str, Any] | None = None  # GET /api/batch/options, once needed

    def _send(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            response = self.session.request(method, self.base_url + path, timeout=TIMEOUT, **kwargs)
        except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                requests.exceptions.InvalidSchema) as exc:
            raise UsageError(f"Invalid URL {self.base_url!r}: {exc}") from exc
        except requests.RequestException as exc:
            raise ConnectionProblem(f"Cannot reach {self.base_url}: {exc}") from exc
        if response.status_code >= 400:
            raise error_from(response.status_code, response.content, response.reason or "")
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self._send(method, path, **kwargs)
        try:
            return response.json()
        except ValueError as exc:
            raise ConnectionProblem(f"{self.base_url} did not answer JSON; is it the AI Answers API?") from exc

    def create(self, file: Path, fields: dict[str, str]) -> dict[str, Any]:
        """Upload the file as a new batch; the 202 body. A file past the request cap goes straight to storage."""
        upload_id = upload_direct(self, file)
        if upload_id is not None:
            form = {**fields, "uploadId": upload_id}
            return self._json("POST", "/api/batch/create", files={k: (None, v) for k, v in form.items()})
        try:
            with file.open("rb") as handle:
                upload = (file.name, handle, UPLOAD_TYPES.get(file.suffix.lower(), "application/octet-stream"))
                return self._json("POST", "/api/batch/create", data=fields, files={"file": upload})
        except OSError as exc:
            raise UsageError(f"Cannot read {file}: {exc.strerror or exc}") from exc

    def status(self, batch_id: str) -> dict[str, Any]:
        """The batch's status body."""
        return self._json("GET", "/api/batch/status", params={"batchId": batch_id})

    def summary(self, batch_id: str) -> dict[str, Any]:
        """The batch's evaluation summary (counts, pass rates, latency, tokens, cost, stability, drift)."""
        return self._json("GET", "/api/batch/summary", params={"batchId": batch_id})

    def cancel(self, batch_id: str) -> dict[str, Any]:
        """Ask the server to cancel the batch."""
        return self._json("POST", "/api/batch/cancel", json={"batchId": batch_id})

    def download(self, batch_id: str, fmt: str, dest: Path, rows: int | None = None) -> None:
        """Write the results to `dest`, through a `.part` file so a failure leaves no half file.

        `rows`, when known: a batch past the deployment's export-link size comes by link from storage.
        """
        link = results_link(self, batch_id, fmt, rows) if rows is not None else None
        if link is not None:  # a big batch's export, from storage (no token sent there)
            response = _storage_request("GET", link, stream=True)
        else:
            response = self._send("GET", "/api/batch/results", params={"batchId": batch_id, "format": fmt},
                                  stream=True)
        part = dest.with_name(dest.name + ".part")
        try:
            with part.open("wb") as out:
                for chunk in response.iter_content(64 * 1024):
                    out.write(chunk)
            os.replace(part, dest)
        except requests.RequestException as exc:
            raise ConnectionProblem(f"The results download from {self.base_url} broke off: {exc}") from exc
        except OSError as exc:
            raise UsageError(f"Cannot write {dest}: {exc.strerror or exc}") from exc
        finally:
            part.unlink(missing_ok=True)


# --- object storage: big files up by a presigned form, big results down by a link -------------------

REQUEST_CAP_BYTES = 4_718_592  # Vercel's 4.5 MB: a file past it (with its form) goes straight to storage
REQUEST_OVERHEAD_BYTES = 64 * 1024  # the form fields and multipart framing around the file
LINK_FLOOR_ROWS = 500  # results of fewer rows always fit a response: no need to ask the deployment


def _options(client: Client) -> dict[str, Any]:
    """The deployment's options (limits, storage), asked once per client."""
    if client.options is None:
        client.options = client._json("GET", "/api/batch/options")
    return client.options


def upload_direct(client: Client, file: Path) -> str | None:
    """Post a file past the request cap straight to object storage; its uploadId (None: send it to create)."""
    try:
        size = file.stat().st_size
    except OSError as exc:
        raise UsageError(f"Cannot read {file}: {exc.strerror or exc}") from exc
    if size + REQUEST_OVERHEAD_BYTES <= REQUEST_CAP_BYTES:
        return None
    options = _options(client)
    limits = options.get("limits") or {}
    if size + REQUEST_OVERHEAD_BYTES <= int(limits.get("maxUploadBytes") or 0) or not options.get("directUploads"):
        return None  # it fits this deployment's cap, or there is no storage (create then says 413)
    content_type = UPLOAD_TYPES[file.suffix.lower()]
    form = client._json("POST", "/api/batch/upload-url", json={"fileName": file.name, "size": size,
                                                               "contentType": content_type})
    try:
        with file.open("rb") as handle:
            _storage_request("POST", form["url"], data=form["fields"], files={"file": (file.name, handle, content_type)})
    except OSError as exc:
        raise UsageError(f"Cannot read {file}: {exc.strerror or exc}") from exc
    return str(form["uploadId"])


def results_link(client: Client, batch_id: str, fmt: str, rows: int) -> str | None:
    """A link to the results in storage when the batch is past the deployment's export-link size, else None."""
    if rows <= LINK_FLOOR_ROWS:
        return None
    options = _options(client)
    if not options.get("exportLinks") or rows <= int((options.get("limits") or {}).get("exportLinkRows") or rows):
        return None
    linked = client._json("GET", "/api/batch/results", params={"batchId": batch_id, "format": fmt, "delivery": "url"})
    return str(linked["url"])


def _storage_request(method: str, url: str, **kwargs: Any) -> requests.Response:
    """A request to object storage: plain requests, never the API's token; S3's XML errors as CliErrors."""
    try:
        response = requests.request(method, url, timeout=TIMEOUT, **kwargs)
    except requests.RequestException as exc:
        raise ConnectionProblem(f"Cannot reach the file storage: {exc}") from exc
    if response.status_code >= 400:
        code = re.search(rb"<Code>([^<]{1,64})</Code>", response.content[:2000])
        message = re.search(rb"<Message>([^<]{1,300})</Message>", response.content[:2000])
        raise ApiError(response.status_code, code.group(1).decode() if code else f"HTTP_{response.status_code}",
                       message.group(1).decode() if message else "the file storage refused the request")
    return response


def wait_until_final(client: Client, batch_id: str, display: ProgressDisplay,
                     sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Poll the status until the batch is final, riding out brief outages; the final status."""
    failures = 0
    try:
        while True:
            try:
                status = client.status(batch_id)
                failures = 0
            except CliError as exc:
                failures += 1
                if exc.exit_code != 3 or failures >= MAX_POLL_FAILURES:
                    raise
                sleep(POLL_SECONDS)
                continue
            display.update(status)
            if status.get("status") in FINAL_STATUSES:
                return status
            sleep(POLL_SECONDS)
    finally:
        display.close()


def run_command(args: argparse.Namespace, client: Client, err: TextIO) -> int:
    """Upload, follow, download; 0 when every row succeeded, 1 otherwise, 130 on Ctrl-C, 143 on SIGTERM."""
    file = check_upload(Path(args.file))
    fmt = choose_format(args.format, args.output)
    dest = output_path(args.output, file.stem, fmt, Path.cwd())
    if not dest.parent.is_dir():
        raise UsageError(f"No folder {dest.parent} to write the results to.")
    fields = {"batchName": (args.name or file.stem)[:200], "lang": args.lang,
              "applyOverrides": "true" if args.overrides else "false"}
    for name, value in (("aiProvider", args.ai), ("searchProvider", args.search), ("concurrency", args.concurrency),
                        ("trials", args.trials), ("analyzers", args.analyzers), ("baselineBatchId", args.baseline),
                        ("budgetUsd", args.budget)):
        if value is not None:
            fields[name] = str(value)
    created = client.create(file, fields)
    batch_id = str(created["batchId"])
    try:  # from here on, Ctrl-C or SIGTERM cancels the batch
        print(f"Batch {batch_id}: {created.get('totalItems')} rows queued", file=err)
        for warning in created.get("warnings") or []:
            print(f"warning: {warning_text(warning)}", file=err)
        status = wait_until_final(client, batch_id, ProgressDisplay(err, err.isatty()))
    except (KeyboardInterrupt, Terminated) as interrupt:
        cancel_and_save(client, batch_id, fmt, dest, err)
        return EXIT_TERMINATED if isinstance(interrupt, Terminated) else EXIT_INTERRUPTED
    client.download(batch_id, fmt, dest, rows=int(status.get("totalItems") or 0))
    print(dest)
    report_summary(client, batch_id, dest if args.summary else None, err)
    return 0 if status["status"] == "processed" else 1


def summary_path(results: Path) -> Path:
    """Where `--summary` writes the summary: next to the results file."""
    return results.with_name(f"{results.stem}-summary.json")


def report_summary(client: Client, batch_id: str, results: Path | None, err: TextIO) -> None:
    """Print the batch's summary; with `results`, also write it as JSON next to that file."""
    try:
        summary = client.summary(batch_id)
    except CliError as exc:  # the results are written: a summary that cannot be read is only a warning
        print(f"warning: no summary: {exc}", file=err)
        return
    for line in format_summary(summary):
        print(line, file=err)
    if results is not None:
        path = summary_path(results)
        try:
            path.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"Cannot write {path}: {exc.strerror or exc}") from exc
        print(path)


def format_summary(summary: Mapping[str, Any]) -> list[str]:
    """The summary as a few lines for a terminal."""
    counts = ", ".join(f"{n} {s}" for s, n in sorted((summary.get("byStatus") or {}).items()))
    lines = [f"Summary: {counts or 'no rows'}"]
    blocked = summary.get("blockedByStage") or {}
    if blocked:
        lines.append("  blocked by: " + ", ".join(f"{s} {n}" for s, n in sorted(blocked.items())))
    latency = summary.get("latencyMs") or {}
    if latency.get("p50") is not None:
        lines.append(f"  latency: p50 {latency['p50']} ms, p95 {latency['p95']} ms")
    for name, rate in (summary.get("analyzers") or {}).items():
        shown = "n/a" if rate.get("passRate") is None else f"{100 * rate['passRate']:.1f}%"
        lines.append(f"  {name}: {shown} pass ({rate.get('passed', 0)} of {rate.get('passed', 0) + rate.get('failed', 0)})")
    block = summary.get("blockDetection")
    if block:
        lines.append(f"  block detection: precision {block.get('precision')}, recall {block.get('recall')}")
    tokens, cost = summary.get("tokens") or {}, summary.get("cost") or {}
    budget = f" of ${cost['budgetUsd']:.2f} budget" if cost.get("budgetUsd") else ""
    lines.append(f"  tokens: {tokens.get('input', 0)} in, {tokens.get('output', 0)} out; "
                 f"cost ${float(cost.get('estimatedUsd') or 0):.4f}{budget}")
    if cost.get("unpricedModels"):
        lines.append(f"  not priced (counted as $0): {', '.join(cost['unpricedModels'])}")
    if cost.get("stopReason"):
        lines.append(f"  stopped: {cost['stopReason']}")
    stability = summary.get("stability") or {}
    if (stability.get("trials") or 1) > 1:
        lines.append(f"  stability over {stability['trials']} trials: {stability.get('allPass', 0)} all pass, "
                     f"{stability.get('mixed', 0)} mixed, {stability.get('allFail', 0)} all fail")
    baseline = summary.get("baseline")
    if baseline:
        lines.append(f"  against {baseline.get('batchId')}: {baseline.get('same', 0)} same, {baseline.get('drift', 0)} "
                     f"drift, {baseline.get('better', 0)} better, {baseline.get('worse', 0)} worse")
    return lines


def check_upload(file: Path) -> Path:
    """The file, when it exists and is of a type the service takes (.csv or .xlsx, as on the page)."""
    if file.suffix.lower() not in UPLOAD_TYPES:
        raise UsageError(f"{file.name} is not a .csv or .xlsx file. Save the questions as CSV (UTF-8) "
                         "or as an Excel workbook (.xlsx) and run again.")
    if not file.is_file():
        raise UsageError(f"No such file: {file}")
    return file


def warning_text(warning: object) -> str:
    """An upload warning as one line: its message (warnings are {"code", "message", ...} or text)."""
    if isinstance(warning, Mapping) and "message" in warning:
        return str(warning["message"])
    return str(warning)


def cancel_and_save(client: Client, batch_id: str, fmt: str, dest: Path, err: TextIO) -> None:
    """After an interrupt: cancel the batch on the server, then write the rows finished so far."""
    print(f"Interrupted: cancelling batch {batch_id}", file=err)
    try:
        print(f"Batch {batch_id} {client.cancel(batch_id).get('status', 'cancelled')}.", file=err)
    except CliError as exc:  # 409: it ended meanwhile, and its results are whole
        print(f"Could not cancel: {exc}", file=err)
    try:
        client.download(batch_id, fmt, dest)
    except CliError as exc:
        print(f"Could not write the results: {exc}", file=err)
    else:
        print(dest)
        print(f"Rows finished so far are in {dest}.", file=err)
    print(f"Rows in flight still finish on the server; all of them: python -m lib.cli results {batch_id}", file=err)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: `run`, `status`, `results` and `cancel`."""
    common = argparse.ArgumentParser(add_help=False)
    where = common.add_argument_group("where to connect (default: the local stack's .local/stack.json)")
    where.add_argument("--url", help="API base URL (or BATCH_SERVICE_URL)")
    where.add_argument("--token", help="bearer token (or BATCH_SERVICE_TOKEN)")
    where.add_argument("--user", default="partner", help="local stack user whose token to use (default: partner)")
    where.add_argument("--stack-file", type=Path, default=DEFAULT_STACK_FILE, help="local stack info file")
    parser = argparse.ArgumentParser(prog="python -m lib.cli", description="Run AI Answers batches from the shell.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser("run", parents=[common], help="upload a file, follow it, write the results")
    run.add_argument("file", help="questions file (.csv or .xlsx)")
    run.add_argument("--lang", default="en", choices=("en", "fr"), help="page language of the questions (default: en)")
    run.add_argument("--ai", help="AI provider (default: the server's)")
    run.add_argument("--search", help="search provider (default: the server's)")
    run.add_argument("--name", help="batch name (default: the file's name)")
    run.add_argument("--overrides", action="store_true", help="apply your prompt overrides")
    run.add_argument("--concurrency", type=int, help="rows in flight at once, 1-32 (default: the server's)")
    evaluation = run.add_argument_group("evaluation run")
    evaluation.add_argument("--trials", type=int, help="run each question this many times, 1-8, each in its own chat")
    evaluation.add_argument("--analyzers", help="comma list: refusal, citation, similar-answer, expert-scorer")
    evaluation.add_argument("--baseline", metavar="BATCH_ID",
                            help="an earlier batch of yours with the same questions: its answers are the reference")
    evaluation.add_argument("--budget", type=float, metavar="USD", help="stop starting rows once the cost reaches it")
    evaluation.add_argument("--summary", action="store_true",
                            help="also write the summary as JSON next to the results (<results>-summary.json)")
    results = commands.add_parser("results", parents=[common], help="download a batch's results (also while it runs)")
    for sub in (run, results):
        sub.add_argument("--format", choices=FORMATS, help="results format (default: from --output, else csv)")
        sub.add_argument("--output", "-o", help="results path (default: ./<input name>-results.<format>)")
    results.add_argument("batch_id")
    commands.add_parser("status", parents=[common], help="print a batch's status as JSON").add_argument("batch_id")
    commands.add_parser("cancel", parents=[common], help="cancel a running batch").add_argument("batch_id")
    return parser


def main(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Parse, connect, run one command; the exit code."""
    args = build_parser().parse_args(argv)
    err = sys.stderr
    try:
        target = resolve_target(args.url, args.token, args.user, args.stack_file, os.environ if env is None else env)
        host = urlsplit(target.base_url).hostname or ""
        if target.base_url.startswith("http://") and host not in ("localhost", "127.0.0.1", "::1"):
            print(f"warning: sending the token to {host} over plain HTTP", file=err)
        client = Client(target)
        if args.command == "run":
            with sigterm_as_interrupt():
                return run_command(args, client, err)
        if args.command == "status":
            print(json.dumps(client.status(args.batch_id), indent=2, ensure_ascii=False))
        elif args.command == "cancel":
            cancelled = client.cancel(args.batch_id)
            print(f"Batch {cancelled['batchId']} {cancelled.get('status', 'cancelled')}", file=err)
        else:
            fmt = choose_format(args.format, args.output)
            dest = output_path(args.output, args.batch_id, fmt, Path.cwd())
            client.download(args.batch_id, fmt, dest, rows=int(client.status(args.batch_id).get("totalItems") or 0))
            print(dest)
        return 0
    except CliError as exc:
        print(f"error: {exc}", file=err)
        return exc.exit_code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Terminated:  # a second SIGTERM while the first one's cleanup ran
        return EXIT_TERMINATED


if __name__ == "__main__":
    sys.exit(main())
