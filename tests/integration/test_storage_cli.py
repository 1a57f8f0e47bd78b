"""The CLI with object storage: a file past the request cap goes up by the presigned form, big results come by link."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from lib.cli import LINK_FLOOR_ROWS, REQUEST_CAP_BYTES, main
from tests.support.live_app import LiveApp

pytest_plugins = ["tests.support.s3_fixtures"]  # moto's server and the live app with storage

ROWS = 600


@pytest.fixture
def app(live_s3: LiveApp, monkeypatch: pytest.MonkeyPatch) -> LiveApp:
    from lib.services import get_services, reset_services

    monkeypatch.setenv("EXPORT_LINK_ROWS", "100")
    monkeypatch.setenv("MAX_BATCH_ROWS", "1000")
    reset_services()
    live_s3.services = get_services()
    return live_s3


def test_a_run_of_a_file_past_the_request_cap_uploads_it_to_storage_and_fetches_the_results_by_link(app, tmp_path):
    questions = tmp_path / "big.csv"
    with questions.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["QUESTION", "notes"])
        for n in range(ROWS):
            writer.writerow([f"Question {n}: how do I renew my passport?", "n" * 8000])
    assert questions.stat().st_size > REQUEST_CAP_BYTES and ROWS > LINK_FLOOR_ROWS
    output = tmp_path / "results.csv"

    code = main(["run", str(questions), "--url", app.base_url, "--token", app.tokens["partner"], "-o", str(output)])

    assert code == 0
    rows = list(csv.DictReader(io.StringIO(output.read_text(encoding="utf-8-sig"))))
    assert len(rows) == ROWS and {row["status"] for row in rows} == {"succeeded"}
    keys = app.s3.storage(app.bucket).keys("")
    assert [k for k in keys if k.endswith("/source.csv")] and not [k for k in keys if "/uploads/" in k]
    assert [k for k in keys if k.endswith("/exports/results.csv")]  # the results came by link
    assert not Path(str(output) + ".part").exists()
