"""Scale scenario of the throughput benchmark: one big batch at concurrency 32, on an empty
database and on one that already holds many rows of other batches.

    .venv/bin/python -m bench.scale [--rows 5000] [--prestored 30000] [--concurrency 32] [--latency-ms 300] [--quick]
    scripts/bench --scale [--quick]

The stack is the throughput benchmark's (bench/harness.py): SecantusDB as a child
process, the route files served in this process over HTTP with the QStash dev server
delivering signed steps, the stub AI provider in its own process answering after L, and
a pymongo CommandListener counting the app's database commands (the benchmark's own
reads and the pre-stored rows are not counted). It runs a small warm-up batch in a
scratch database, then shape A (`--rows` independent rows) at `--concurrency`:
1. on an empty database;
2. on a second database holding `--prestored` finished rows of other batches, with their
   interactions and chats (bench/prestore.py: insert_many of documents shaped like real ones).
SecantusDB is restarted (same data) before each measured run, so that neither pays for
the other's retryable-write table (see bench/harness.py).

Reported for each: makespan (create request sent -> completedAt), bound (rows x L /
concurrency, or L for a single row), their ratio, DB writes per row (insert, update,
delete, findAndModify commands; a bulk write is one command), DB commands per row of all
kinds and by command, database time per row, steps and queue messages. Targets:
makespan / bound <= 1.5 on the empty database, DB writes per row <= 2, and the pre-stored
run's makespan within 15 % of the empty one's. `--quick`: 1,000 rows and 6,000 pre-stored.
Exit status: 0 when every target is met, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import uuid
from dataclasses import dataclass

from bench.harness import WRITE_COMMANDS, BatchRun, BenchStack, Upload
from bench.prestore import Prestored, prestore
from bench.shapes import csv_bytes, ideal_bound, shape_a
from bench.throughput_report import table

RATIO_TARGET = 1.5
WRITES_PER_ROW_TARGET = 2.0
PRESTORED_TOLERANCE = 0.15
WARM_UP_ROWS = 64


@dataclass(frozen=True)
class ScaleConfig:
    rows: int = 5000
    prestored: int = 30_000
    concurrency: int = 32
    latency: float = 0.3
    quick: bool = False


@dataclass
class ScaleRun:
    label: str
    stored: int  # rows of other batches in the database before the run
    run: BatchRun
    bound: float

    @property
    def ratio(self) -> float:
        return self.run.makespan / self.bound

    @property
    def writes_per_row(self) -> float:
        return sum(n for name, n in self.run.db_by_name.items() if name in WRITE_COMMANDS) / max(1, self.run.rows)

    @property
    def db_ms_per_row(self) -> float:
        return sum(self.run.db_millis.values()) / max(1, self.run.rows)


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def base_env() -> dict[str, str]:
    return {"LOG_LEVEL": "WARNING", "MAX_BATCH_ROWS": "100000", "MAX_ACTIVE_BATCHES_PER_USER": "1000",
            "CREATE_RATE_PER_MINUTE": "10000"}


def use_database(stack: BenchStack, name: str) -> None:
    """Point the app (and the benchmark's observer) at another database of the same server."""
    stack.db_name = name
    stack.env["MONGODB_DB"] = name
    stack.configure({})


def measure(stack: BenchStack, config: ScaleConfig, label: str, stored: int) -> ScaleRun:
    shape = shape_a(config.rows)
    bound = ideal_bound(shape, config.latency, config.concurrency)
    stack.restart_database()
    progress(f"{label}: {shape.rows} rows at concurrency {config.concurrency}, L = {config.latency * 1000:.0f} ms, "
             f"bound {bound:.1f} s")
    run = stack.run([Upload(csv_bytes(shape), config.concurrency, name=label)], latency=config.latency,
                    timeout=max(900.0, bound * 20))
    calls = run.stub_requests / max(1, run.rows)  # model calls per row: the pipeline makes several
    bound = ideal_bound(shape, config.latency, config.concurrency, calls)
    progress(f"{label}: makespan {run.makespan:.1f} s ({run.makespan / bound:.2f} x the bound at {calls:.2f} model "
             f"calls per row), {run.db_per_row:.2f} DB commands per row")
    return ScaleRun(label, stored, run, bound)


def run_scale(config: ScaleConfig) -> tuple[list[ScaleRun], Prestored, list[str]]:
    stack = BenchStack(base_env())
    try:
        stack.start()
        suffix = uuid.uuid4().hex[:8]
        use_database(stack, f"scale_warm_{suffix}")
        progress(f"warm-up: {WARM_UP_ROWS} rows in a scratch database")
        stack.run([Upload(csv_bytes(shape_a(WARM_UP_ROWS)), config.concurrency, name="warm-up")],
                  latency=config.latency)
        use_database(stack, f"scale_empty_{suffix}")
        empty = measure(stack, config, "empty database", 0)
        use_database(stack, f"scale_stored_{suffix}")
        progress(f"pre-storing {config.prestored:,} finished rows of other batches")
        stack.restart_database()  # an empty table of retryable writes: the seeding's inserts stay fast
        assert stack.observer is not None
        with stack.counter.uncounted():
            other = stack.observer[stack.db_name].users.insert_one({"email": "stored@example.gc.ca",
                                                                    "role": "partner", "active": True})
            stored = prestore(stack.observer[stack.db_name], config.prestored, user_id=str(other.inserted_id))
        progress(f"pre-stored {stored.rows:,} rows in {stored.batches} batches ({stored.interactions:,} interactions, "
                 f"{stored.chats:,} chats) in {stored.seconds:.1f} s")
        full = measure(stack, config, f"{config.prestored:,} rows stored", config.prestored)
        header = _header(stack, config)
    finally:
        stack.stop()
    return [empty, full], stored, header


def _header(stack: BenchStack, config: ScaleConfig) -> list[str]:
    settings = stack.settings
    load = os.getloadavg()
    return [
        f"machine: {os.cpu_count()} cores; load average at the end {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}",
        f"shape A: {config.rows:,} independent rows at concurrency {config.concurrency}; stub AI L = "
        f"{config.latency * 1000:.0f} ms (own process); search: offline",
        f"step budget {settings.step_budget_seconds:g} s (FUNCTION_MAX_DURATION {settings.function_max_duration} s);"
        f" provider ceiling {settings.provider_max_in_flight} in flight",
        "bound = rows x calls per row x L / concurrency (every model call a row makes counted); "
        "DB writes: insert, update, delete, findAndModify commands (a bulk write is one command); SecantusDB restarted before each measured run",
        "other cpu: cores used by processes outside the benchmark meanwhile (the machine is shared)",
    ]


def _per_row(run: BatchRun, shown: int = 6) -> str:
    ranked = run.db_calls.most_common()
    parts = [f"{name} {collection} {calls / run.rows:.2f}" for (name, collection), calls in ranked[:shown]]
    rest = sum(calls for _, calls in ranked[shown:])
    return ", ".join(parts + ([f"other {rest / run.rows:.2f}"] if rest else []))


def report(runs: list[ScaleRun], stored: Prestored, header: list[str], config: ScaleConfig,
           wall_seconds: float) -> bool:
    """Print the table and the targets; True when every target is met."""
    print(f"\nScale benchmark{' (--quick)' if config.quick else ''}")
    for line in header:
        print("  " + line)
    rows = []
    for r in runs:
        run = r.run
        rows.append([r.label, f"{r.stored:,}", f"{run.rows:,}", f"{run.makespan:.1f}", f"{r.bound:.1f}",
                     f"{r.ratio:.2f}", f"{r.writes_per_row:.2f}", f"{run.db_per_row:.2f}", f"{r.db_ms_per_row:.1f}",
                     str(run.steps), str(run.published), str(run.stub_max_in_flight),
                     "-" if run.other_cores is None else f"{run.other_cores:.1f}", str(run.failed)])
    headers = ["database", "stored rows", "rows", "makespan s", "bound s", "ratio", "writes/row", "DB cmds/row",
               "DB ms/row", "steps", "msgs", "in flight", "other cpu", "failed"]
    print()
    print(table(headers, rows, [False] + [True] * 13))
    print("\nDB commands per row, by command and collection")
    for r in runs:
        print(f"  {r.label}: {_per_row(r.run)}")
    print("\nWhere the app's database time went (command collection: mean ms x calls)")
    for r in runs:
        slowest = ", ".join(f"{name} {collection}: {mean:.1f} ms x {calls}"
                            for name, collection, calls, mean in r.run.slowest_commands(3))
        print(f"  {r.label}: {slowest}")
    empty, full = runs
    slower = full.run.makespan / empty.run.makespan - 1
    targets = [
        (f"makespan / bound <= {RATIO_TARGET:g} (empty database)", empty.ratio <= RATIO_TARGET and not empty.run.failed,
         f"{empty.run.makespan:.1f} s / {empty.bound:.1f} s = {empty.ratio:.2f}"),
        (f"DB writes per row <= {WRITES_PER_ROW_TARGET:g}",
         max(empty.writes_per_row, full.writes_per_row) <= WRITES_PER_ROW_TARGET,
         f"empty {empty.writes_per_row:.2f}, {full.label} {full.writes_per_row:.2f} (all commands: "
         f"{empty.run.db_per_row:.2f} / {full.run.db_per_row:.2f} per row)"),
        (f"with {stored.rows:,} rows stored, makespan within {PRESTORED_TOLERANCE:.0%} of the empty database's",
         slower <= PRESTORED_TOLERANCE and not full.run.failed,
         f"{full.run.makespan:.1f} s vs {empty.run.makespan:.1f} s ({slower:+.1%}); ratio {full.ratio:.2f} vs "
         f"{empty.ratio:.2f}"),
    ]
    print("\nTargets")
    for name, met, figure in targets:
        print(f"  [{'met' if met else 'MISSED'}] {name}: {figure}")
    failed = [r for r in runs if r.run.failed]
    for r in failed:
        print(f"  note: {r.label}: {r.run.failed} rows failed {dict(r.run.errors)}")
    met = sum(1 for _, ok, _ in targets if ok)
    print(f"\n{met} of {len(targets)} targets met; wall time {wall_seconds / 60:.1f} min; pre-storing took "
          f"{stored.seconds:.1f} s")
    return met == len(targets)


def parse_args(argv: list[str] | None) -> ScaleConfig:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 rows, 6,000 pre-stored")
    parser.add_argument("--rows", type=int, help="rows of the measured batch (default 5000)")
    parser.add_argument("--prestored", type=int, help="rows of other batches stored first (default 30000)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency-ms", type=float, default=300.0)
    args = parser.parse_args(argv)
    base = ScaleConfig(rows=1000, prestored=6000, quick=True) if args.quick else ScaleConfig()
    rows = args.rows if args.rows is not None else base.rows
    stored = args.prestored if args.prestored is not None else base.prestored
    if rows < 1 or stored < 0:
        parser.error("--rows must be at least 1 and --prestored not negative")
    if not 1 <= args.concurrency <= 32:
        parser.error("--concurrency must be from 1 to 32")
    return ScaleConfig(rows=rows, prestored=stored, concurrency=args.concurrency, latency=args.latency_ms / 1000,
                       quick=base.quick)


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that `finally` stops every child
    started = time.monotonic()
    runs, stored, header = run_scale(config)
    return 0 if report(runs, stored, header, config, time.monotonic() - started) else 1


if __name__ == "__main__":
    sys.exit(main())
