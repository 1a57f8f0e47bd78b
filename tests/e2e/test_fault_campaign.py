"""The short fault campaign: a few small batches through every kind of fault, then the invariants.

The full campaign is `python -m bench.faults` (20 batches up to 300 rows, ~15 min at most).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.campaign.plan import quick_config
from bench.campaign.report import format_report
from bench.campaign.runner import CampaignReport, run_campaign


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> CampaignReport:
    result = run_campaign(quick_config(seed=1), data_dir=Path(tmp_path_factory.mktemp("faults")))
    print(format_report(result))  # shown by pytest when a test fails
    return result


def test_the_campaign_injected_every_kind_of_fault(report: CampaignReport):
    assert report.process_faults["app-kill"] >= 1
    if not os.environ.get("MONGODB_URI"):  # an external database is not ours to stop
        assert report.process_faults["db-stop"] >= 1
    assert report.provider_faults.get("ai 5xx", 0) and report.provider_faults.get("ai 429 retry-after", 0)
    assert report.queue_stats.get("duplicated", 0) > 0
    assert any(c.status == 200 for c in report.cancels)
    if report.storage_proxied:  # object storage away at the wire, during uploads, ingestion and exports
        assert report.storage_windows and any(k.startswith(("refuse ", "error ")) for k in report.storage_faults)
        assert any(u.spec.direct and u.batch_id for u in report.uploads) and report.exports
    # Evaluation runs: trials (items of their own) and analyzers (inside each row's claim).
    assert any(b.trials > 1 for b in report.schedule.batches) and any(b.analyzers for b in report.schedule.batches)
    # Both judges on a batch with trials (its file carries references): its rows' analyses were checked.
    judged = {b.name for b in report.schedule.batches if b.trials > 1 and "expert-scorer" in b.analyzers}
    assert judged and any(c.analysed and c.input_tokens for c in report.checks if c.name in judged)


def test_every_batch_reaches_a_final_state_within_the_deadline(report: CampaignReport):
    assert not report.problems, report.problems
    assert len(report.checks) >= report.config.batches  # more if a retried upload's first answer was lost
    assert all(c.status in ("processed", "completed_with_errors", "cancelled") for c in report.checks)


def test_no_row_is_lost_or_duplicated_under_faults(report: CampaignReport):
    assert report.lost == 0
    assert report.duplicates == 0


def test_no_row_starts_after_a_cancel_is_acknowledged(report: CampaignReport):
    assert report.started_after_cancel == 0


def test_every_invariant_holds(report: CampaignReport):
    assert report.violations == []
    assert report.ok
