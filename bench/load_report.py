"""The load run's summary table (plain text, fixed width, like bench/campaign/report.py)."""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Sequence

from bench.load import LoadReport
from bench.load_users import Sample

WIDTH = 86
ENDPOINTS = ("create", "status", "list", "cancel", "cancel-end")
STATUS_COLUMNS = ("2xx", "409", "429", "503", "4xx other", "5xx other", "no answer")


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile (0 < share <= 1) of `values`; 0 when there are none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def status_column(status: int | None) -> str:
    if status is None:
        return "no answer"
    if 200 <= status < 300:
        return "2xx"
    if status in (409, 429, 503):
        return str(status)
    return "4xx other" if status < 500 else "5xx other"


def format_report(report: LoadReport) -> str:
    c = report.config
    title = (f"Load run{' (--quick)' if c.quick else ''}  seed={c.seed}  {c.users} users x {c.rows:,}-row uploads + "
             f"{c.background} background batches of {c.background_rows:,}")
    lines = [
        "=" * WIDTH, title,
        f"uploads for {report.window_seconds / 60:.1f} min, then up to {c.drain_minutes:g} min to finish; "
        f"offline AI {c.ai_latency_ms} ms an answer; wall {report.wall_seconds / 60:.1f} min",
        f"machine: {os.cpu_count()} cores, load average {report.load_average[0]:.1f} at the start, "
        f"{report.load_average[1]:.1f} at the end (other processes share the cores)",
        "=" * WIDTH,
        *_statuses(report.samples),
        "-" * WIDTH,
        *_latencies(report.samples),
        *_steps(report),
        "-" * WIDTH,
        *_batches(report),
        "-" * WIDTH,
        *_outcome(report),
        "=" * WIDTH,
    ]
    return "\n".join(lines)


def _statuses(samples: list[Sample]) -> list[str]:
    by_endpoint: dict[str, Counter[str]] = {e: Counter() for e in ENDPOINTS}
    for s in samples:
        by_endpoint.setdefault(s.endpoint, Counter())[status_column(s.status)] += 1
    lines = [f"{'HTTP answers':<14}{'requests':>9}" + "".join(f"{h:>10}" for h in STATUS_COLUMNS)]
    for endpoint, counts in by_endpoint.items():
        lines.append(f"  {endpoint:<12}{sum(counts.values()):>9}" + "".join(f"{counts[h]:>10}" for h in STATUS_COLUMNS))
    exact = Counter(str(s.status) if s.status is not None else (s.code or "no answer") for s in samples)
    lines.append("  every status: " + ", ".join(f"{k} x {n}" for k, n in sorted(exact.items())))
    codes = Counter(f"{s.endpoint} {s.status} {s.code}" for s in samples
                    if s.status is not None and s.status >= 400 and s.code)
    if codes:
        lines.append("  error codes:  " + ", ".join(f"{k} x {n}" for k, n in sorted(codes.items())))
    return lines


def _latencies(samples: list[Sample]) -> list[str]:
    lines = [f"{'Latency (s)':<26}{'n':>7}{'p50':>9}{'p95':>9}{'max':>9}"]
    rows = (("create, answered 202", "create", 202), ("create, answered 429", "create", 429),
            ("cancel, answered 200", "cancel", 200), ("cancel-end, answered 200", "cancel-end", 200),
            ("status, answered 200", "status", 200), ("list, answered 200", "list", 200))
    for label, endpoint, status in rows:
        values = [s.seconds for s in samples if s.endpoint == endpoint and s.status == status]
        if not values and endpoint == "cancel-end":
            continue
        lines.append(_latency_line(label, values))
    return lines


def _latency_line(label: str, values: Sequence[float]) -> str:
    return (f"  {label:<24}{len(values):>7}{percentile(values, .5):>9.2f}{percentile(values, .95):>9.2f}"
            f"{max(values, default=0.0):>9.2f}")


def _steps(report: LoadReport) -> list[str]:
    limit = report.config.function_max_duration - 2
    over = [s for s in report.step_seconds if s > limit]
    return [_latency_line("process-step (app log)", report.step_seconds),
            f"  steps past FUNCTION_MAX_DURATION {report.config.function_max_duration} - 2 = {limit} s: {len(over)}"
            + (f" (longest {max(over):.1f} s; reported, not a check of this run)" if over else "")]


def _batches(report: LoadReport) -> list[str]:
    statuses = Counter(c.status for c in report.checks)
    by_user = Counter(c.cancelled_by for c in report.checks if c.status == "cancelled")
    rows: Counter[str] = sum((c.items for c in report.checks), Counter())
    exact = sum(1 for c in report.checks if not c.problems)
    rejected = ", ".join(f"{k} x {n}" for k, n in sorted(report.rejected.items())) or "none"
    return [
        f"Batches    accepted {report.accepted}; by final status: "
        + (", ".join(f"{s} {n}" for s, n in sorted(statuses.items())) or "none"),
        f"           cancelled by their user during the run {by_user.get('user', 0)}, still running at the end and "
        f"cancelled then {report.cancelled_at_end}; left creating {report.abandoned_creations}",
        f"           create answers other than 202: {rejected}",
        f"Rows       answered {report.answered_rows:,} ({rows.get('succeeded', 0):,} succeeded, "
        f"{rows.get('failed', 0):,} failed), cancelled {rows.get('cancelled', 0):,}, of {sum(rows.values()):,}",
        f"           rows/s overall {report.rows_per_second:.1f} (answered rows / first create -> last answer, "
        f"{report.last_answer - report.first_create:.0f} s)",
        f"Counters   exact for {exact} of {len(report.checks)} batches (read from MongoDB)",
        f"App log    {report.app_errors} ERROR lines",
    ]


def _outcome(report: LoadReport) -> list[str]:
    lines = [f"5xx other than 503: {len(report.server_errors)}   requests without an answer: "
             f"{len(report.unanswered)}   batches with a problem: {sum(1 for c in report.checks if c.problems)}"]
    for sample in report.server_errors[:10]:
        lines.append(f"  ! {sample.endpoint} by {sample.user}: {sample.status} {sample.code or ''}")
    for sample in report.unanswered[:10]:
        lines.append(f"  ! {sample.endpoint} by {sample.user}: no answer ({sample.code}) after {sample.seconds:.1f} s")
    for check in [c for c in report.checks if c.problems][:10]:
        lines.append(f"  ! {check.name} ({check.status}): {'; '.join(check.problems)}")
    lines += [f"  ! {p}" for p in report.problems]
    lines.append("RESULT: " + ("OK" if report.ok else "FAILED"))
    return lines
