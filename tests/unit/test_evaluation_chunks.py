"""A baseline matched one chunk at a time, as the ingestion steps of a direct upload do (lib/evaluation.py)."""

from __future__ import annotations

import pytest

from lib.errors import BadRequest
from lib.evaluation import add_baseline, baseline_row_count_mismatch, match_baseline

BASELINE = [{"rowNumber": 2, "trial": 1, "question": "How do I renew?", "status": "succeeded", "answer": "Online."},
            {"rowNumber": 3, "trial": 1, "question": "hi", "status": "blocked"}]


def test_a_chunk_is_matched_with_the_baseline_rows_at_its_places_and_the_rest_of_the_baseline_is_not_missing():
    assert match_baseline([(2, "how do i renew?")], BASELINE[:1], complete=False)[2]["baselineAnswer"] == "Online."
    # A chunk that lacks baseline rows is fine (the counts were compared at create), unlike a whole file.
    assert match_baseline([(2, "how do i renew?")], BASELINE, complete=False).keys() == {2}
    with pytest.raises(BadRequest):
        match_baseline([(2, "how do i renew?")], BASELINE)
    # A row the baseline does not hold at that place, or holds with another question, is still a mismatch.
    for rows, docs in (([(4, "where?")], BASELINE), ([(2, "how do I apply?")], BASELINE)):
        with pytest.raises(BadRequest) as refused:
            match_baseline(rows, docs, complete=False)
        assert refused.value.code == "BASELINE_MISMATCH"


def test_the_row_counts_are_compared_per_question_not_per_trial():
    assert baseline_row_count_mismatch(41, 82, 2) is None
    error = baseline_row_count_mismatch(40, 82, 2)
    assert error is not None and error.code == "BASELINE_MISMATCH"
    assert error.details == {"field": "baselineBatchId", "rowCount": 40, "baselineRowCount": 41}


def test_a_row_refused_at_upload_is_analysed_again_with_the_baselines_status():
    docs = [{"rowNumber": 3, "trial": 1, "question": "hi", "status": "blocked", "blockedBy": "shortQuery",
             "references": {"expectedOutcome": "block"}}]
    add_baseline(docs, BASELINE, ("refusal", "similar-answer"), "en", complete=False)
    assert docs[0]["references"] == {"expectedOutcome": "block", "baselineAnswer": None, "baselineCitation": None,
                                     "baselineStatus": "blocked"}
    assert docs[0]["analysis"]["refusal"]["detected"] is True and "similarity" not in docs[0]["analysis"]
