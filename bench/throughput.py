"""Throughput benchmark of the batch engine against a stub AI provider with a fixed latency.

    .venv/bin/python -m bench.throughput [--latency-ms 300] [--quick] [--shapes A,B,C] [--concurrency 1,4,16]
                                         [--no-db-restart] [--trials 3 --analyzers similar-answer,expert-scorer]

Starts its own local stack (SecantusDB child process, the route files served in this
process over HTTP, the QStash dev server delivering signed steps) and a stub AI
provider in a child process (OpenAI wire format, answering after L ms), runs batches
and prints a table, then each target with met / missed and, for a miss, why.

Measured for each shape (A: 600 independent rows; B: 100 conversations x 6 turns; C: 300
independent rows and 50 conversations x 6 turns, interleaved) at each concurrency:
makespan (create request sent -> the batch's completedAt), the ideal bound
max(longest conversation x L, rows x L / concurrency) and makespan / bound, the speed-up
over concurrency 1 in the same run, database round trips per row (a pymongo
CommandListener; the benchmark's own reads are not counted), queue messages published
and steps per batch, and the most AI requests the stub saw in flight. Then: round trips
per row at 100 and 2,000 rows; a 10,000-row export as CSV and XLSX and a ~4 MB upload,
each in a fresh process (time and peak resident memory); the provider ceiling with two
batches at once; a stub that rate-limits at a fixed RPM, without and with a matching
PROVIDER_LIMITS.

SecantusDB is restarted (same port, same data) before each measured batch: its table of
retryable writes slows every write down as it fills (see bench/harness.py);
`--no-db-restart` keeps one server process for the whole run, to see that effect.

`--quick` runs the same phases small (about two minutes): 48-row shapes, 100 and 500 rows
for the round-trip check, and the RPM phase on a 10-second window, without the matched run.

`--trials N` and/or `--analyzers LIST` make it an evaluation run: only the shapes phase, each
file run N times (each trial its own items and chats) with the analyzers inside each row's
claim, every file row carrying a `referenceAnswer` so that each judge asks its model on every
answered row. The bound then counts every model call: T = L x (the pipeline's stage calls + one
per judge analyzer) over the items the engine schedules (rows x trials, a conversation's trials
in chats of their own); the calls per row are the stub's own count, split by stage.
Exit status: 0 when every target is met, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.harness import BatchRun, BenchStack, Upload
from bench.shapes import (
    SHAPES,
    Shape,
    csv_bytes,
    ideal_bound,
    judge_calls,
    list_schedule_makespan,
    rate_limited_makespan,
    shape_a,
    shape_b,
    with_trials,
)
from bench.throughput_report import print_report
from lib.analyzers import parse_analyzers
from lib.errors import BadRequest

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Config:
    latency: float
    quick: bool
    shapes: tuple[str, ...]
    concurrency: tuple[int, ...]
    shape_rows: int
    size_rows: tuple[int, ...]  # round trips per row at these batch sizes
    size_latency: float
    size_concurrency: int
    pair_rows: int  # rows of each of the two batches run at once
    in_flight_cap: int
    rpm: int
    rpm_window: float
    rpm_rows: int
    rpm_matched: bool
    export_rows: int
    upload_bytes: int
    answer_chars: int
    restart_db: bool
    trials: int = 1  # an evaluation run (with analyzers): only the shapes phase
    analyzers: str = ""

    @property
    def evaluation(self) -> bool:
        return self.trials > 1 or bool(self.analyzers)


def parse_args(argv: list[str] | None) -> Config:
    parser = argparse.ArgumentParser(prog="python -m bench.throughput", description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=300.0, help="stub AI latency L (default 300)")
    parser.add_argument("--quick", action="store_true", help="a small version (about two minutes)")
    parser.add_argument("--shapes", default="A,B,C")
    parser.add_argument("--concurrency", default="1,4,16")
    parser.add_argument("--no-db-restart", action="store_true",
                        help="keep one SecantusDB process for the whole run (see its retryable-write table grow)")
    parser.add_argument("--trials", type=int, default=1, help="evaluation run: each question N times (1-8)")
    parser.add_argument("--analyzers", default="", help="evaluation run: analyzers, e.g. similar-answer,expert-scorer")
    args = parser.parse_args(argv)
    if not 1 <= args.trials <= 8:
        parser.error("--trials must be from 1 to 8")
    try:
        analyzers = ",".join(parse_analyzers(args.analyzers))
    except BadRequest as exc:
        parser.error(f"--analyzers: {exc.message}")
    shapes = tuple(s.strip().upper() for s in args.shapes.split(",") if s.strip())
    if not shapes or any(s not in SHAPES for s in shapes):
        parser.error("--shapes takes a comma-separated list of A, B, C")
    try:
        concurrency = tuple(sorted({int(c) for c in args.concurrency.split(",") if c.strip()}))
    except ValueError:
        parser.error("--concurrency takes a comma-separated list of whole numbers")
    if not concurrency or not all(1 <= c <= 32 for c in concurrency):
        parser.error("--concurrency values must be from 1 to 32")
    latency = args.latency_ms / 1000
    if args.quick:
        return Config(latency=latency, quick=True, shapes=shapes, concurrency=concurrency, shape_rows=48,
                      size_rows=(100, 500), size_latency=latency, size_concurrency=16, pair_rows=48,
                      in_flight_cap=8, rpm=240, rpm_window=10.0, rpm_rows=72, rpm_matched=False,
                      export_rows=10_000, upload_bytes=4_000_000, answer_chars=1500,
                      restart_db=not args.no_db_restart, trials=args.trials, analyzers=analyzers)
    return Config(latency=latency, quick=False, shapes=shapes, concurrency=concurrency, shape_rows=600,
                  size_rows=(100, 2000), size_latency=latency, size_concurrency=16, pair_rows=200,
                  in_flight_cap=8, rpm=240, rpm_window=60.0, rpm_rows=480, rpm_matched=True,
                  export_rows=10_000, upload_bytes=4_000_000, answer_chars=1500,
                  restart_db=not args.no_db_restart, trials=args.trials, analyzers=analyzers)


# --- results ----------------------------------------------------------------------------


@dataclass
class ShapeRun:
    shape: Shape
    concurrency: int
    latency: float
    run: BatchRun
    trials: int = 1
    analyzers: str = ""

    @property
    def items(self) -> Shape:
        """What the engine schedules: the file's conversations, each once per trial."""
        return with_trials(self.shape, self.trials)

    @property
    def calls_per_row(self) -> float:
        """Model calls a row (an item) made, from the stub's own count (every call is answered after L)."""
        return self.run.stub_requests / max(1, self.run.rows)

    @property
    def judge_calls_per_row(self) -> float:
        """Of those, the analyzers' judges' (the stub names each call's stage)."""
        return self.run.judge_requests / max(1, self.run.rows)

    @property
    def expected_judge_calls(self) -> int:
        """One call per judge analyzer on every answered row (each row has a reference)."""
        return judge_calls(self.analyzers)

    @property
    def bound(self) -> float:
        return ideal_bound(self.items, self.latency, self.concurrency, self.calls_per_row)

    @property
    def floor(self) -> float:
        """Whole conversations in file order on `concurrency` workers, with zero overhead."""
        return list_schedule_makespan(self.items, self.latency * self.calls_per_row, self.concurrency)

    @property
    def ratio(self) -> float:
        return self.run.makespan / self.bound


@dataclass
class LimitRun:
    kind: str  # "pair" | "rpm" | "rpm-matched"
    label: str
    run: BatchRun
    bound: float
    gate: dict[str, Any]
    settings: str
    note: str = ""


@dataclass
class MemoryRun:
    label: str
    rows: int
    result: Any  # bench.memory.MemoryResult
    note: str = ""


@dataclass
class Results:
    config: Config
    step_budget: float
    header: list[str] = field(default_factory=list)
    shapes: list[ShapeRun] = field(default_factory=list)
    sizes: list[ShapeRun] = field(default_factory=list)
    limits: list[LimitRun] = field(default_factory=list)
    memory: list[MemoryRun] = field(default_factory=list)
    wall_seconds: float = 0.0
    db_restarts: int = 0


# --- phases -----------------------------------------------------------------------------


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_shape(stack: BenchStack, shape: Shape, concurrency: int, latency: float, trials: int = 1,
              analyzers: str = "") -> ShapeRun:
    items = with_trials(shape, trials)
    expected = ideal_bound(items, latency, concurrency, 1 + judge_calls(analyzers))
    what = f"{shape.rows} rows" + (f" x {trials} trials" if trials > 1 else "") + \
        (f", analyzers {analyzers}" if analyzers else "")
    progress(f"shape {shape.name} ({what}) at concurrency {concurrency}: bound {expected:.1f} s at "
             f"{1 + judge_calls(analyzers)} call(s) a row (the report counts them all)")
    upload = Upload(csv_bytes(shape, references=bool(analyzers)), concurrency, name=f"{shape.name}-c{concurrency}",
                    trials=trials, analyzers=analyzers)
    run = stack.run([upload], latency=latency, timeout=max(600.0, expected * 5))
    return ShapeRun(shape, concurrency, latency, run, trials, analyzers)


def phase_shapes(stack: BenchStack, config: Config, results: Results) -> None:
    for name in config.shapes:
        shape = SHAPES[name](config.shape_rows)
        for concurrency in config.concurrency:
            results.shapes.append(run_shape(stack, shape, concurrency, config.latency, config.trials,
                                            config.analyzers))


def phase_sizes(stack: BenchStack, config: Config, results: Results) -> None:
    for rows in config.size_rows:
        for make in (shape_a, shape_b):
            results.sizes.append(run_shape(stack, make(rows), config.size_concurrency, config.size_latency))


def phase_in_flight_ceiling(stack: BenchStack, config: Config, results: Results) -> None:
    cap = config.in_flight_cap
    spec = f"openai={cap}"
    stack.configure({"PROVIDER_LIMITS": spec})
    try:
        shape = shape_a(config.pair_rows)
        progress(f"two batches of {shape.rows} rows at concurrency 16 each, PROVIDER_LIMITS={spec}")
        run = stack.run([Upload(csv_bytes(shape), 16, name="pair-1"), Upload(csv_bytes(shape), 16, name="pair-2")],
                        latency=config.latency)
        gate = stack.gate_stats()
        overlap = _overlap(stack, run.batch_ids)
        results.limits.append(LimitRun(
            "pair", "two batches at once", run, bound=run.rows * config.latency / cap,
            gate={"maxInFlight": gate.max_in_flight, "rateLimited": gate.rate_limited, "calls": gate.calls},
            settings=f"PROVIDER_LIMITS={spec}", note=f"batches ran together for {overlap:.1f} s",
        ))
    finally:
        stack.configure({})


def phase_rpm(stack: BenchStack, config: Config, results: Results) -> None:
    per_window = max(1, round(config.rpm * config.rpm_window / 60))
    shape = shape_a(config.rpm_rows)
    bound = rate_limited_makespan(shape.rows, config.latency, 16, per_window, config.rpm_window)
    window = f"{per_window} per {config.rpm_window:g} s" if config.rpm_window != 60 else f"{config.rpm}/min"
    runs = [("rpm", "provider RPM, engine unaware", {})]
    if config.rpm_matched:
        matched = {"PROVIDER_LIMITS": f"openai=16/{config.rpm}"}
        runs.append(("rpm-matched", "provider RPM, PROVIDER_LIMITS matched", matched))
    for kind, label, overrides in runs:
        stack.configure(overrides)
        try:
            progress(f"{label}: {shape.rows} rows at concurrency 16, stub limit {window}")
            run = stack.run([Upload(csv_bytes(shape), 16, name="rpm")], latency=config.latency,
                            rpm=per_window, window=config.rpm_window, timeout=max(900.0, bound * 5))
            gate = stack.gate_stats()
            results.limits.append(LimitRun(
                kind, label, run, bound=bound,
                gate={"maxInFlight": gate.max_in_flight, "rateLimited": gate.rate_limited, "calls": gate.calls,
                      "waitedSeconds": gate.waited_seconds},
                settings=" ".join(f"{k}={v}" for k, v in overrides.items()) or "no PROVIDER_LIMITS (32 in flight)",
                note=f"stub limit {window}",
            ))
        finally:
            stack.configure({})


def phase_memory(stack: BenchStack, config: Config, results: Results) -> None:
    from bench.memory import measure_download, measure_upload
    from devstack.qstash_server import QStashDevServer

    env = {**os.environ, "LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}
    token = stack.app.tokens["partner"]
    progress(f"export: seeding a finished {config.export_rows}-row batch")
    content = csv_bytes(shape_a(config.export_rows), extra_columns=3, filler="a note kept with the row ")
    batch_id, rows = stack.seed_finished_batch(content, config.answer_chars)
    for fmt in ("csv", "xlsx"):
        progress(f"export: {rows} rows as {fmt.upper()} from a fresh instance")
        result = measure_download(env, token, batch_id, fmt)
        results.memory.append(MemoryRun(f"export {fmt.upper()}", rows, result,
                                        note=f"{config.answer_chars}-character answers"))
    # The upload's step goes to a queue that never delivers: only create is measured.
    held = QStashDevServer(port=0)
    held.set_faults({"paused": True})
    held.start()
    try:
        content, rows = sized_csv(config.upload_bytes)
        progress(f"upload: {len(content) / 1e6:.1f} MB CSV, {rows} rows, to a fresh instance")
        upload_env = {**env, "QSTASH_URL": held.url}
        result = measure_upload(upload_env, token, content, "big.csv",
                                {"batchName": "upload", "lang": "en", "aiProvider": "openai",
                                 "searchProvider": "offline"})
        results.memory.append(MemoryRun("upload CSV", rows, result, note=f"{len(content):,} bytes"))
    finally:
        held.stop()


def sized_csv(target_bytes: int) -> tuple[bytes, int]:
    """A CSV of about `target_bytes` with ~200-byte rows (question, chatId, URL and three notes)."""
    rows = max(1, target_bytes // 200)
    probe = csv_bytes(shape_a(rows), extra_columns=3)
    pad = max(0, (target_bytes - len(probe)) // (rows * 3))
    content = csv_bytes(shape_a(rows), extra_columns=3, filler="x" * pad)
    return content, rows


def _overlap(stack: BenchStack, batch_ids: list[str]) -> float:
    docs = [stack.batch_doc(b, {"startedAt": 1, "completedAt": 1}) or {} for b in batch_ids]
    start = max(d["startedAt"] for d in docs)
    end = min(d["completedAt"] for d in docs)
    return max(0.0, (end - start).total_seconds())


# --- main -------------------------------------------------------------------------------


def base_env() -> dict[str, str]:
    return {
        "LOG_LEVEL": "WARNING",
        "MAX_BATCH_ROWS": "20000",  # the ~20,000-row upload
        "MAX_ACTIVE_BATCHES_PER_USER": "1000",
        "CREATE_RATE_PER_MINUTE": "10000",
    }


def header(config: Config, stack: BenchStack) -> list[str]:
    settings = stack.settings
    load = os.getloadavg()
    return [
        (f"machine: {os.cpu_count()} cores; load average at start {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}"
         " (other processes on the machine compete for the same cores)"),
        (f"stub AI latency L = {config.latency * 1000:.0f} ms (OpenAI wire format, own process); search provider:"
         " offline (in-process corpus, no HTTP), so the stub's counters see AI calls only"),
        (f"step budget = FUNCTION_MAX_DURATION {settings.function_max_duration} s - STEP_SAFETY_SECONDS"
         f" {settings.step_safety_seconds:g} s = {settings.step_budget_seconds:g} s;"
         f" MAX_ATTEMPTS {settings.max_attempts}; provider ceiling outside the limits phase:"
         f" {settings.provider_max_in_flight} in flight, no RPM"),
        ("DB round trips: every command the app sent from the create request to the end of its last step"
         " (handshakes, createIndexes excluded); the benchmark polls through its own uncounted client;"
         " DB ms/row: the time the app waited on them"),
        ("one database for the whole run: later batches meet the chats and interactions of earlier ones,"
         " as a deployment's database does; "
         + ("SecantusDB restarted (same data) before a batch once 2,000 writes have filled its table of"
            " retryable writes (bench/harness.py)" if config.restart_db
            else "one SecantusDB process throughout (--no-db-restart)")),
        ("other cpu: cores used by processes outside the benchmark during the run"
         " (the machine is shared; the benchmark itself needs about all of its cores at concurrency 16)"),
        ("makespan: create request sent -> the batch's completedAt;"
         " bound = max(longest conversation x T, rows x T / concurrency), T = L x model calls per row"),
        *([(f"evaluation run: trials {config.trials}, analyzers {config.analyzers or 'none'}; rows = items"
           " (file rows x trials, each trial of a conversation its own chat); model calls per row = the"
           " pipeline's stage calls + the judges', all counted by the stub; only the shapes phase runs")]
          if config.evaluation else []),
    ]


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that `finally` stops every child
    started = time.monotonic()
    progress("starting the stack (SecantusDB, QStash dev server, app, provider stub)")
    stack = BenchStack(base_env(), restart_db=config.restart_db)
    try:
        stack.start()
        results = Results(config, step_budget=stack.settings.step_budget_seconds)
        results.header = header(config, stack)
        phase_shapes(stack, config, results)
        if not config.evaluation:
            phase_sizes(stack, config, results)
            phase_in_flight_ceiling(stack, config, results)
            phase_rpm(stack, config, results)
            phase_memory(stack, config, results)
        results.db_restarts = stack.restarts
    finally:
        stack.stop()
    results.wall_seconds = time.monotonic() - started
    return 0 if print_report(results) else 1


if __name__ == "__main__":
    sys.exit(main())
