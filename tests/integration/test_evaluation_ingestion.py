"""Trials on a big upload's path: rows written by ingestion steps get their trials too (issue 12)."""

from __future__ import annotations

from typing import Any

import pytest
from bson import ObjectId

from tests.integration.test_storage_uploads import CONVERSATIONS, create, upload
from tests.support.live_app import LiveApp

pytest_plugins = ["tests.support.s3_fixtures"]


@pytest.fixture
def app(live_s3: LiveApp, monkeypatch: pytest.MonkeyPatch) -> LiveApp:
    """Small ingestion windows and chunks, so that the rows take several steps and chunks."""
    from lib.services import get_services, reset_services

    monkeypatch.setenv("INGEST_WINDOW_ROWS", "25")
    monkeypatch.setenv("INGEST_CHUNK_ROWS", "10")
    reset_services()
    live_s3.services = get_services()
    return live_s3


def test_an_ingested_batch_runs_each_question_in_every_trial_each_trial_a_conversation_of_its_own(app):
    created = create(app, "partner", upload(app, "partner", CONVERSATIONS), trials="2", analyzers="refusal")

    assert created.status_code == 202, created.text
    assert created.json()["totalItems"] == 120
    final = app.wait_final("partner", created.json()["batchId"], timeout=180)
    assert (final["status"], final["processedItems"], final["ingestedItems"], final["trials"]) == (
        "processed", 120, 120, 2)
    docs = sorted(app.services.store.batch_items.find({"batchId": ObjectId(created.json()["batchId"])}),
                  key=lambda d: d["rowIndex"])
    assert [d["rowIndex"] for d in docs] == list(range(120))
    assert [d["trial"] for d in docs] == [1, 2] * 60
    by_chat: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        by_chat.setdefault(doc["chatId"], []).append(doc)
    # A conversation of the file is one chat per trial; its turns in file order in each.
    for turns in by_chat.values():
        assert len({t["trial"] for t in turns}) == 1
        assert [t["turn"] for t in turns] == list(range(len(turns)))
    assert len(by_chat) == 2 * len({d["chatKey"] for d in docs if d["trial"] == 1})
    assert all(d["analysis"]["refusal"]["detected"] is False for d in docs)
