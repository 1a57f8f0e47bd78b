"""The campaign's summary table (plain text, fixed width)."""

from __future__ import annotations

import statistics
from collections import Counter

from bench.campaign.providers import CALLS_PER_ROW
from bench.campaign.runner import CampaignReport

WIDTH = 78


def format_report(report: CampaignReport) -> str:
    c = report.config
    lines = [
        "=" * WIDTH,
        f"Fault campaign  seed={c.seed}  batches={c.batches}  rows<={c.max_rows}  "
        f"wall {report.wall_seconds:.0f} s (deadline {c.deadline_seconds:.0f} s)",
        "=" * WIDTH,
        *_faults(report),
        "-" * WIDTH,
        *_batches(report),
        "-" * WIDTH,
        *_outcome(report),
        "=" * WIDTH,
    ]
    return "\n".join(lines)


def _row(label: str, campaign: object = "", server: object = "", note: str = "") -> str:
    return f"{label:<34}{campaign!s:>10}{server!s:>12}  {note}".rstrip()


def _faults(report: CampaignReport) -> list[str]:
    p, q, c = report.provider_faults, report.queue_stats, report.config
    ai = p.get("ai requests", 0)
    qf = c.queue_faults

    def share(kind: str) -> str:
        if not ai:
            return ""
        per_call = 100 * p.get(kind, 0) / ai
        return f"{per_call:.1f} % of {ai} AI requests (~{per_call * CALLS_PER_ROW:.0f} % of rows)"

    windows = ", ".join(f"{w.start:.0f}-{w.end:.0f}s" for w in report.schedule.search_outages)
    kills = [e for e in report.events if e.kind == "app-kill"]
    stops = [e for e in report.events if e.kind == "db-stop"]
    acked = sum(1 for x in report.cancels if x.status == 200)
    return [
        _row("Faults injected", "campaign", "dev server"),
        _row("  AI provider 5xx", p.get("ai 5xx", 0), note=share("ai 5xx")),
        _row("  AI provider 429 + Retry-After", p.get("ai 429 retry-after", 0), note=share("ai 429 retry-after")),
        _row("  AI provider read timeout", p.get("ai read timeout", 0), note=share("ai read timeout")),
        _row("  AI provider malformed reply", p.get("ai malformed reply", 0), note=share("ai malformed reply")),
        _row("  search outage (503 replies)", p.get("search outage 503", 0),
             note=f"of {p.get('search requests', 0)} search requests; windows {windows}"),
        _row("  queue: duplicate deliveries", "on" if qf.duplicate else "off", q.get("duplicated", "?")),
        _row("  queue: dropped deliveries", f"{qf.drop_rate:.0%}", q.get("dropped", "?")),
        _row("  queue: delayed/reordered", f"<={qf.latency_ms + qf.jitter_ms:.0f}ms", q.get("deliveryAttempts", "?"),
             "delivery attempts, each delayed by a random jitter"),
        _row("  queue: failed attempts (non-2xx)", "", q.get("failedAttempts", "?"),
             f"dead-lettered: {q.get('dlq', '?')}, deduplicated publishes: {q.get('deduplicated', '?')}"),
        _row("  app server SIGKILL + restart", len(kills), note=_downtimes(kills)),
        _row("  database stop + restart", len(stops), note=_downtimes(stops)),
        _row("  cancels", f"{acked}/{len(report.cancels)}", note="acknowledged / requested (409: already done)"),
        _row("  uploads while others ran", report.uploads_while_running, note=f"of {len(report.uploads)} uploads"),
        *_storage(report),
        *[f"  skipped: {s}" for s in report.skipped_faults],
    ]


def _storage(report: CampaignReport) -> list[str]:
    if not report.storage_proxied:
        return [_row("  object storage faults", "off", note="a real bucket (S3_BUCKET): nothing between it and the app")]
    f, c = report.storage_faults, report.config
    requests_ = sum(n for k, n in f.items() if k.startswith("requests "))
    refused = sum(n for k, n in f.items() if k.startswith("refuse "))
    errors = sum(n for k, n in f.items() if k.startswith("error "))
    direct = [u for u in report.uploads if u.spec.direct]
    delivered = [e for e in report.exports if e.rows is not None and not e.error]
    return [
        _row("  storage away (windows)", len(report.storage_windows), note=", ".join(report.storage_windows)),
        _row("  storage: connections dropped", refused, note=f"of {requests_} S3 requests through the proxy"),
        _row("  storage: 503 SlowDown", errors, note=f"windows and {c.storage_error_rate:.0%} of the rest"),
        _row("  straight-to-storage uploads", len(direct),
             note=f"form posts made again: {report.posts_refused}; lost answers found by name: {report.found_by_name}"),
        _row("  exports by link", f"{len(delivered)}/{len(report.exports)}",
             note=f"complete / asked; 503s tried again: {sum(e.refused for e in report.exports)}"),
    ]


def _downtimes(events: list) -> str:
    down = [e.back - e.started for e in events if e.back is not None]
    return f"down {min(down):.1f}-{max(down):.1f} s" if down else ""


def _storage_outcome(report: CampaignReport) -> list[str]:
    check = report.storage_check
    if check is None:
        return []
    return [_row("Storage: objects without a record", sum(1 for v in check.violations if "no record" in v),
                 note=f"must be 0 (of {check.objects} objects)"),
            _row("Storage: half-made sources/exports", sum(1 for v in check.violations if "no record" not in v),
                 note=f"must be 0 ({check.exports_checked} stored exports read back)"),
            _row("Storage: failed-create leftovers", check.orphans,
                 note=f"recorded, retention deletes them; open multipart uploads: {check.open_multipart}")]


def _batches(report: CampaignReport) -> list[str]:
    statuses = Counter(c.status for c in report.checks)
    rows = report.rows
    lines = [
        "Batches by final status   " + ", ".join(f"{s} {n}" for s, n in sorted(statuses.items())),
        f"Rows                      {sum(rows.values())}  (" + ", ".join(f"{s} {n}" for s, n in
                                                                         sorted(rows.items())) + ")",
        "",
        f"  {'batch':<10}{'file':<5}{'rows':>5} {'conv':>5} {'ai/search':<20}{'status':<22}{'ok':>5}{'fail':>5}"
        f"{'canc':>5}",
    ]
    specs = {s.name: s for s in report.schedule.batches}
    for check in report.checks:
        spec = specs.get(check.name)
        conv = spec.conversations if spec else "?"
        kind = spec.file_type if spec else "?"
        providers = f"{spec.ai_provider}/{spec.search_provider}" if spec else "?"
        flag = "" if check.ok else "  <-- " + check.violations[0]
        lines.append(f"  {check.name:<10}{kind:<5}{check.total:>5} {conv:>5} {providers:<20}{check.status:<22}"
                     f"{check.rows['succeeded']:>5}{check.rows['failed']:>5}{check.rows['cancelled']:>5}{flag}")
    evaluated = [b for b in report.schedule.batches if b.analyzers or b.trials > 1]
    if evaluated:
        lines.append("  evaluation: " + ", ".join(
            f"{b.name} {'x' + str(b.trials) + ' ' if b.trials > 1 else ''}{b.analyzers}".rstrip() for b in evaluated))
    if report.abandoned_creations:
        lines.append(f"  (+{report.abandoned_creations} creations abandoned midway, invisible to users)")
    return lines


def _outcome(report: CampaignReport) -> list[str]:
    recoveries = [e.recovery_seconds for e in report.events if e.recovery_seconds is not None]
    unmeasured = sum(1 for e in report.events if e.recovery_seconds is None)
    ttr = (f"median {statistics.median(recoveries):.1f} s, max {max(recoveries):.1f} s (n={len(recoveries)})"
           if recoveries else "n/a")
    if unmeasured:
        ttr += f"; {unmeasured} with no later progress (nothing left to run)"
    stray = sum(c.stray_interactions for c in report.checks)
    violations = report.violations
    lines = [
        _row("Rows lost", report.lost, note="must be 0"),
        _row("Duplicates", report.duplicates, note="must be 0"),
        _row("Rows started after cancel ack", report.started_after_cancel, note="must be 0"),
        _row("Invariant violations", len(violations), note="must be 0"),
        *_storage_outcome(report),
        _row("Longest stretch with no live step", f"{report.longest_quiet.seconds:.1f} s",
             note=f"limit {report.config.no_live_step_limit:.0f} s (sweep every {report.config.sweep_interval:.0f} s)"),
        _row("Steps re-published by the sweep", report.sweep_kicks, note="(from the app's log)"),
        f"Time to recovery (fault -> next row finished): {ttr}",
    ]
    if stray:
        lines.append(f"(info) rows recorded failed or cancelled whose answer was written anyway: {stray}")
    lines += [f"  ! {v}" for v in violations[:30]]
    if len(violations) > 30:
        lines.append(f"  ! ... and {len(violations) - 30} more")
    lines.append(f"RESULT: {'PASS' if report.ok else 'FAIL'}    (logs: {report.data_dir / 'logs'})")
    return lines
