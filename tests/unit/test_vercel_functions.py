"""The functions block of vercel.json agrees with what the code assumes of it."""

from __future__ import annotations

import json
from pathlib import Path

from lib.direct_upload import CLAIM_SECONDS

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = json.loads((ROOT / "vercel.json").read_text())["functions"]


def test_every_configured_function_is_a_route_file():
    assert FUNCTIONS and all((ROOT / path).is_file() for path in FUNCTIONS)


def test_a_direct_uploads_claim_outlives_the_create_that_holds_it():
    # A claim older than CLAIM_SECONDS is taken as its create's death: Vercel has ended it by then.
    assert CLAIM_SECONDS > 2 * FUNCTIONS["api/batch/create.py"]["maxDuration"]


def test_the_results_function_has_the_time_of_the_largest_export():
    # A 100,000-row XLSX export is written in this function, by link or not (bench/cli_big_run.py).
    assert FUNCTIONS["api/batch/results.py"]["maxDuration"] >= 300
