"""The throughput benchmark's printout: plain-text tables, then every target with met / missed."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench.shapes import queue_message_target

if TYPE_CHECKING:
    from bench.harness import BatchRun
    from bench.throughput import Results, ShapeRun

RATIO_TARGET = 1.3
DB_PER_ROW_TARGET = 5.0
MEMORY_TARGET_MB = 300.0
MATCHED_429_TOLERANCE = 2  # "~0": a gate set exactly at the provider's limit can race its window edge


@dataclass(frozen=True)
class Target:
    name: str
    met: bool | None  # None: reported, no target
    figure: str
    why: str = ""


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool] | None = None) -> str:
    """An aligned plain-text table; numeric columns (right=True) are right-aligned."""
    right = right or [False] * len(headers)
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(str(c).rjust(w) if r else str(c).ljust(w) for c, w, r in zip(cells, widths, right)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def _s(seconds: float) -> str:
    return f"{seconds:.1f}" if seconds >= 10 else f"{seconds:.2f}"


def _speedups(runs: Sequence[ShapeRun]) -> dict[tuple[str, int], float | None]:
    base = {r.shape.name: r.run.makespan for r in runs if r.concurrency == 1}
    return {(r.shape.name, r.concurrency): (base[r.shape.name] / r.run.makespan if r.shape.name in base else None)
            for r in runs}


def shape_table(results: Results) -> str:
    speedups = _speedups(results.shapes)
    rows = []
    for r in results.shapes:
        run = r.run
        speedup = speedups[(r.shape.name, r.concurrency)]
        rows.append([
            r.shape.name, str(r.concurrency), str(run.rows), _s(run.makespan), _s(r.bound), f"{r.ratio:.2f}",
            f"{r.floor / r.bound:.2f}", "-" if speedup is None else f"{speedup:.2f}x", f"{run.db_per_row:.2f}",
            f"{_db_ms_per_row(run):.0f}",
            str(run.published), str(queue_message_target(run.makespan, results.step_budget)), str(run.steps),
            str(run.stub_max_in_flight), _other(run), f"{run.failed}" + (f" {dict(run.errors)}" if run.errors else ""),
        ])
    headers = ["shape", "conc", "rows", "makespan s", "bound s", "ratio", "floor", "speed-up", "DB/row",
               "DB ms/row", "msgs", "msg cap", "steps", "in flight", "other cpu", "failed"]
    return table(headers, rows, [False] + [True] * 14 + [False])


def evaluation_table(results: Results) -> str:
    """Each evaluation run's model calls per row, split into the pipeline's and the judges', and its bound."""
    rows = []
    for r in results.shapes:
        run = r.run
        rows.append([
            r.shape.name, str(r.trials), r.analyzers or "-", str(run.rows), str(r.concurrency), _s(run.makespan),
            f"{r.calls_per_row:.2f}", f"{r.calls_per_row - r.judge_calls_per_row:.2f}",
            f"{r.judge_calls_per_row:.2f}", str(r.expected_judge_calls), _s(r.bound), f"{r.ratio:.2f}",
            str(run.failed),
        ])
    headers = ["shape", "trials", "analyzers", "items", "conc", "makespan s", "calls/row", "pipeline", "judges",
               "judges expected", "bound s", "ratio", "failed"]
    return table(headers, rows, [False, True, False] + [True] * 10)


def _judge_target(results: Results) -> Target | None:
    """Every judge call counted: one per judge analyzer on every answered row, as the stub saw them."""
    runs = [r for r in results.shapes if r.analyzers]
    if not runs:
        return None
    off = [r for r in runs if r.run.judge_requests != r.expected_judge_calls * r.run.processed]
    figure = "; ".join(f"{r.shape.name} c={r.concurrency}: {r.run.judge_requests} judge calls for "
                       f"{r.run.processed} answered rows x {r.expected_judge_calls}" for r in runs)
    return Target("judge calls = judge analyzers x answered rows (each in the bound)", not off, figure,
                  "; ".join(f"{r.shape.name} c={r.concurrency}: by stage {dict(r.run.stub_by_stage)}" for r in off))


def _other(run: BatchRun) -> str:
    return "-" if run.other_cores is None else f"{run.other_cores:.1f}"


def _db_ms_per_row(run: BatchRun) -> float:
    return sum(run.db_millis.values()) / max(1, run.rows)


def _per_row_by_command(run: BatchRun, shown: int = 4) -> str:
    """Round trips per row by command and collection, largest first; the rest summed as `other`."""
    ranked = run.db_calls.most_common()
    parts = [f"{name} {collection} {calls / run.rows:.2f}" for (name, collection), calls in ranked[:shown]]
    rest = sum(calls for _, calls in ranked[shown:])
    return ", ".join(parts + ([f"other {rest / run.rows:.2f}"] if rest else []))


def _slowest(run: BatchRun) -> str:
    return ", ".join(f"{name} {collection} {mean:.1f} ms x {calls}" for name, collection, calls, mean
                     in run.slowest_commands(2))


def size_table(results: Results) -> str:
    rows = []
    for r in results.sizes:
        run = r.run
        by_name = _per_row_by_command(run)
        rows.append([f"{r.shape.name} ({r.shape.description})", str(run.rows), str(r.concurrency), _s(run.makespan),
                     f"{r.ratio:.2f}", f"{run.db_per_row:.2f}", f"{_db_ms_per_row(run):.0f}", str(run.published),
                     str(run.steps), _other(run), by_name])
    headers = ["shape", "rows", "conc", "makespan s", "ratio", "DB/row", "DB ms/row", "msgs", "steps", "other cpu",
               "per row, by command"]
    return table(headers, rows, [False] + [True] * 9 + [False])


def limits_table(results: Results) -> str:
    rows = []
    for r in results.limits:
        run = r.run
        rate = run.rows / run.makespan * 60
        rows.append([r.label, r.settings, str(run.rows), _s(run.makespan), _s(r.bound),
                     f"{run.makespan / r.bound:.2f}", str(run.stub_max_in_flight), str(run.stub_rate_limited),
                     str(r.gate["rateLimited"]), f"{rate:.0f}", f"{run.processed}/{run.failed}", _other(run), r.note])
    headers = ["scenario", "settings", "rows", "makespan s", "bound s", "ratio", "in flight", "429s",
               "gate slow-downs", "rows/min", "ok/failed", "other cpu", "note"]
    return table(headers, rows, [False, False] + [True] * 10 + [False])


def memory_table(results: Results) -> str:
    rows = []
    for m in results.memory:
        res = m.result
        rows.append([m.label, f"{m.rows:,}", f"{res.bytes / 1e6:.1f} MB", _s(res.seconds), _s(res.first_byte_seconds),
                     f"{res.baseline_mb:.0f}", f"{res.peak_mb:.0f}", f"{res.peak_mb - res.baseline_mb:.0f}",
                     str(res.status), m.note])
    headers = ["what", "rows", "size", "time s", "first byte s", "RSS before MB", "peak MB", "peak - before",
               "HTTP", "note"]
    return table(headers, rows, [False, True, True, True, True, True, True, True, True, False])


def _ratio_target(results: Results, shape: str, concurrency: int = 16) -> Target | None:
    run = next((r for r in results.shapes if r.shape.name == shape and r.concurrency == concurrency), None)
    if run is None:
        return None
    bound_note = ""
    if shape == "B":
        per_row = run.latency * run.calls_per_row  # T: every model call of a row answered after L
        bound_note = (f" (bound = max({run.items.longest} x T = {run.items.longest * per_row:.1f} s, rows x T / c = "
                      f"{run.items.rows * per_row / concurrency:.2f} s) = {run.bound:.2f} s, T = L x "
                      f"{run.calls_per_row:.2f} calls: the longest "
                      f"conversation is the bound only once concurrency >= conversations)")
    figure = f"{run.run.makespan:.2f} s / {run.bound:.2f} s = {run.ratio:.2f}{bound_note}"
    met = run.ratio <= RATIO_TARGET and run.run.failed == 0
    why = ""
    if not met:
        overhead_ms = run.latency * (run.run.makespan / run.floor - 1) * 1000
        why = (f"whole conversations in file order cannot finish before {run.floor:.2f} s "
               f"({run.floor / run.bound:.2f} x the bound); the rest is ~{overhead_ms:.0f} ms of overhead per row on "
               f"a worker, of which the database {_db_ms_per_row(run.run):.0f} ms (slowest in all: "
               f"{_slowest(run.run)}; the {_cores()} cores are shared by the app, SecantusDB and the stub"
               + (f", and other processes took {run.run.other_cores:.1f} cores meanwhile"
                  if run.run.other_cores and run.run.other_cores >= 0.2 else "") + ")")
        if run.run.failed:
            why += f"; {run.run.failed} rows failed"
    return Target(f"shape {shape}, concurrency {concurrency}: makespan / bound <= {RATIO_TARGET}", met, figure, why)


def _cores() -> int:
    return os.cpu_count() or 1


def targets(results: Results) -> list[Target]:
    found: list[Target] = []
    for shape in ("A", "C", "B"):
        target = _ratio_target(results, shape)
        if target is not None:
            found.append(target)
    judged = _judge_target(results)
    if judged is not None:
        found.append(judged)
    measured = results.shapes + results.sizes
    if measured:
        worst = max(measured, key=lambda r: r.run.db_per_row)
        sized = ", ".join(f"{r.shape.name} {r.run.rows}: {r.run.db_per_row:.2f}" for r in results.sizes)
        met = worst.run.db_per_row <= DB_PER_ROW_TARGET
        why = "" if met else (f"shape {worst.shape.name} at {worst.run.rows} rows, per row: "
                              f"{_per_row_by_command(worst.run)}")
        found.append(Target(f"DB round trips per row <= {DB_PER_ROW_TARGET:g} at any size", met,
                            f"{sized}; worst of all runs {worst.run.db_per_row:.2f} ({worst.shape.name}, "
                            f"{worst.run.rows} rows, c={worst.concurrency})", why))
        over = [r for r in measured if r.run.published > queue_message_target(r.run.makespan, results.step_budget)]
        most = max(measured, key=lambda r: r.run.published)
        figure = (f"every run within ceil(makespan / {results.step_budget:g} s) + 1; most: {most.run.published} "
                  f"messages for {most.run.makespan:.0f} s ({most.shape.name}, c={most.concurrency}, "
                  f"cap {queue_message_target(most.run.makespan, results.step_budget)})")
        why = "; ".join(f"{r.shape.name} c={r.concurrency}: {r.run.published} > "
                        f"{queue_message_target(r.run.makespan, results.step_budget)} "
                        f"({r.run.steps} steps, {r.run.deliveries} deliveries)" for r in over)
        found.append(Target("queue messages per batch <= ceil(makespan / step budget) + 1", not over,
                            figure if not over else f"{len(over)} runs over", why))
    for m in results.memory:
        res = m.result
        figure = (f"{res.seconds:.2f} s, peak {res.peak_mb:.0f} MB ({res.peak_mb - res.baseline_mb:+.0f} MB over the "
                  f"warmed-up instance's {res.baseline_mb:.0f} MB), {m.rows:,} rows, {res.bytes / 1e6:.1f} MB")
        if not res.peak_reset:
            figure += " (peak since process start: clear_refs unavailable)"
        if m.label.startswith("export"):
            ok = res.status == 200 and res.peak_mb < MEMORY_TARGET_MB
            why = "" if ok else (f"HTTP {res.status}" if res.status != 200 else
                                 f"peak {res.peak_mb:.0f} MB >= {MEMORY_TARGET_MB:.0f} MB")
            found.append(Target(f"{m.label} of {m.rows:,} rows streamed, peak < {MEMORY_TARGET_MB:.0f} MB", ok,
                                figure + f"; first byte after {res.first_byte_seconds:.2f} s", why))
        else:
            ok = res.status == 202
            found.append(Target(f"{m.label} of {res.bytes / 1e6:.1f} MB: time to 202 and peak (reported)",
                                None if ok else False, figure, "" if ok else f"HTTP {res.status}: {res.body}"))
    for r in results.limits:
        run = r.run
        if r.kind == "pair":
            cap = int(r.settings.split("=")[-1].split("/")[0])
            ok = run.stub_max_in_flight <= cap and run.failed == 0
            found.append(Target(f"provider ceiling of {cap} in flight holds with two batches at once (stub)", ok,
                                f"stub saw at most {run.stub_max_in_flight} in flight ({r.note}; gate "
                                f"{r.gate['maxInFlight']}); {run.makespan:.1f} s vs {r.bound:.1f} s at {cap} in flight",
                                "; ".join(reason for reason in (
                                    f"the stub saw {run.stub_max_in_flight} > {cap} in flight"
                                    if run.stub_max_in_flight > cap else "",
                                    f"{run.failed} rows failed {dict(run.errors)}" if run.failed else "") if reason)))
        elif r.kind == "rpm":
            ok = run.failed == 0 and run.processed == run.rows and run.stub_rate_limited > 0
            why = ""
            if not ok:
                why = (f"{run.failed} rows failed {dict(run.errors)}" if run.failed else
                       "the stub never answered 429: the scenario did not reach the limit")
            found.append(Target("on 429 the engine slows down (Retry-After) and recovers: no failed row", ok,
                                f"{run.stub_rate_limited} 429s, {run.processed}/{run.rows} rows ok, makespan "
                                f"{run.makespan:.1f} s vs {r.bound:.1f} s best possible under the limit "
                                f"({run.makespan / r.bound:.2f}); {run.rows / run.makespan * 60:.0f} rows/min, "
                                f"most calls in one window {run.stub_max_in_window} ({r.note})", why))
        else:
            ok = run.failed == 0 and run.stub_rate_limited <= MATCHED_429_TOLERANCE
            why = ""
            if not ok:
                why = f"{run.stub_rate_limited} 429s, {run.failed} failed"
            found.append(Target("with PROVIDER_LIMITS matching the provider's RPM: ~0 429s", ok,
                                f"{run.stub_rate_limited} 429s ({r.settings}), {run.processed}/{run.rows} rows ok, "
                                f"makespan {run.makespan:.1f} s vs {r.bound:.1f} s ({run.makespan / r.bound:.2f})",
                                why))
    return found


def print_report(results: Results) -> bool:
    """Print everything; True when every target is met."""
    config = results.config
    print()
    print(f"Throughput benchmark{' (--quick)' if config.quick else ''}")
    for line in results.header:
        print("  " + line)
    if results.shapes:
        print("\nShapes (floor = whole conversations in file order with zero overhead, / bound;"
              " in flight = the stub's maximum)")
        for name in dict.fromkeys(r.shape.name for r in results.shapes):
            shape = next(r.shape for r in results.shapes if r.shape.name == name)
            print(f"  {name}: {shape.description}")
        print(shape_table(results))
        if any(r.trials > 1 or r.analyzers for r in results.shapes):
            print("\nEvaluation runs (rows = items; calls per row from the stub's count, split by stage)")
            print(evaluation_table(results))
    if results.sizes:
        print(f"\nDB round trips per row by batch size (L = {config.size_latency * 1000:.0f} ms)")
        print(size_table(results))
    if results.limits:
        print("\nProvider limits (bound: rows x L / ceiling, or the best schedule under the stub's RPM window)")
        print(limits_table(results))
    if results.memory:
        print("\nExport and upload, each in a fresh process serving one request (resident memory, VmHWM)")
        print(memory_table(results))
    found = targets(results)
    print("\nTargets")
    for t in found:
        mark = "reported" if t.met is None else ("met" if t.met else "MISSED")
        print(f"  [{mark}] {t.name}: {t.figure}")
        if t.why:
            print(f"           why: {t.why}")
    missed = [t for t in found if t.met is False]
    print(f"\n{len(found) - len(missed)} of {len(found)} targets met; wall time {results.wall_seconds / 60:.1f} min;"
          f" SecantusDB restarts {results.db_restarts}")
    return not missed
