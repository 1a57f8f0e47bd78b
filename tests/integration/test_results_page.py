"""Pages of results (GET /api/batch/results?format=json&offset=&limit=...), over real SecantusDB.

The batch is written straight to the store (bench/prestore.py: the documents a finished
batch has), then a few rows are made blocked, failed or slow, so filters have something to find.
"""

from __future__ import annotations

from typing import Any

import pytest
from bson import ObjectId
from hypothesis import given
from hypothesis import strategies as st
from werkzeug.test import Client

from bench.prestore import prestore
from lib import routes
from lib.results_page import PAGE_PARAMS
from tests.integration.conftest import bearer
from tests.support.hypothesis_profiles import fuzz_settings

ROWS = 240


@pytest.fixture
def batch_id(installed, users) -> str:
    prestore(installed.store.db, ROWS, user_id=users["partner"].id, batch_rows=ROWS)
    oid = installed.store.batches.find_one({"uploaderUserId": users["partner"].id})["_id"]
    items = installed.store.batch_items
    for index in (3, 50, 51):
        items.update_one({"batchId": oid, "rowIndex": index},
                         {"$set": {"status": "blocked", "blockedBy": "prompt-injection", "answer": None}})
    items.update_one({"batchId": oid, "rowIndex": 7},
                     {"$set": {"status": "failed", "error": {"code": "AI_TIMEOUT", "message": "slow"}}})
    items.update_one({"batchId": oid, "rowIndex": 9}, {"$set": {"responseTimeMs": 99_999,
                                                               "question": "Where is the ZEBRA crossing form?"}})
    items.update_one({"batchId": oid, "rowIndex": 10}, {"$set": {"result": {"answerType": "clarifying-question",
                                                                           "answer": "Which zebra do you mean?"}}})
    return str(oid)


def page(user_id: str, batch_id: str, **params: Any) -> Any:
    query = {"batchId": batch_id, "format": "json", **params}
    return Client(routes.batch_results).get("/api/batch/results", query_string=query, headers=bearer(user_id))


def test_a_page_holds_only_its_rows_with_the_total_and_the_columns(batch_id, users):
    answer = page(users["partner"].id, batch_id, offset=100, limit=25).get_json()

    assert {k: answer[k] for k in ("batchId", "status", "total", "offset", "limit")} == {
        "batchId": batch_id, "status": "processed", "total": ROWS, "offset": 100, "limit": 25}
    assert [row["rowNumber"] for row in answer["items"]] == list(range(102, 127))
    assert answer["columns"][:4] == ["rowNumber", "QUESTION", "chatId", "URL"]


def test_the_default_page_is_the_first_hundred_rows_and_the_last_page_is_short(batch_id, users):
    first = page(users["partner"].id, batch_id, offset=0).get_json()
    last = page(users["partner"].id, batch_id, offset=230).get_json()
    past = page(users["partner"].id, batch_id, offset=5000).get_json()

    assert (len(first["items"]), first["limit"]) == (100, 100)
    assert [row["rowNumber"] for row in last["items"]] == list(range(232, 242))
    assert (past["total"], past["items"]) == (ROWS, [])


def test_rows_sorted_by_row_number_descending_start_from_the_last(batch_id, users):
    answer = page(users["partner"].id, batch_id, offset=0, limit=3, sort="-rowNumber").get_json()
    assert [row["rowNumber"] for row in answer["items"]] == [241, 240, 239]


@pytest.mark.parametrize(("params", "rows"), [
    ({"status": "blocked"}, [5, 52, 53]),
    ({"status": "failed,blocked"}, [5, 9, 52, 53]),
    ({"blockedBy": "prompt-injection", "limit": 2}, [5, 52]),
    ({"answerType": "clarifying-question"}, [12]),
    ({"q": "zebra"}, [11, 12]),  # the question of one, the answer of the other, in any case
    ({"q": "ZEBRA", "status": "succeeded", "sort": "-rowNumber"}, [12, 11]),
])
def test_filters_and_search_count_and_page_only_the_matching_rows(batch_id, users, params, rows):
    answer = page(users["partner"].id, batch_id, **{"offset": 0, **params}).get_json()
    assert [row["rowNumber"] for row in answer["items"]] == rows
    assert answer["total"] == (3 if "blockedBy" in params else len(rows))


def test_sorted_by_response_time_the_slowest_comes_first(batch_id, users):
    answer = page(users["partner"].id, batch_id, offset=0, limit=2, sort="-responseTimeMs").get_json()
    assert answer["items"][0]["rowNumber"] == 11 and answer["items"][0]["responseTimeMs"] == 99_999
    fastest = page(users["partner"].id, batch_id, offset=0, limit=1, sort="responseTimeMs").get_json()
    assert fastest["items"][0]["responseTimeMs"] <= answer["items"][1]["responseTimeMs"]


def test_a_conversation_is_read_by_its_chat(batch_id, users, installed):
    chat = installed.store.batch_items.find_one({"batchId": ObjectId(batch_id), "chatLabel": {"$ne": None}})
    answer = page(users["partner"].id, batch_id, offset=0, chat=chat["chatLabel"]).get_json()
    assert answer["total"] >= 2
    assert {row["chatId"] for row in answer["items"]} == {chat["chatLabel"]}


def test_without_offset_or_limit_every_row_comes_back_as_before(batch_id, users):
    answer = page(users["partner"].id, batch_id).get_json()
    assert len(answer["items"]) == ROWS and "total" not in answer


@pytest.mark.parametrize(("params", "field", "code"), [
    ({"offset": "-1"}, "offset", "INVALID_PAGE"),
    ({"offset": "1e3"}, "offset", "INVALID_PAGE"),
    ({"limit": "0"}, "limit", "INVALID_PAGE"),
    ({"limit": "501"}, "limit", "INVALID_PAGE"),
    ({"limit": "٣"}, "limit", "INVALID_PAGE"),
    ({"status": "done"}, "status", "INVALID_FILTER"),
    ({"status": "{\"$ne\": null}"}, "status", "INVALID_FILTER"),
    ({"blockedBy": "a b"}, "blockedBy", "INVALID_FILTER"),
    ({"q": "x" * 201}, "q", "INVALID_FILTER"),
    ({"q": "a\x00"}, "q", "INVALID_FILTER"),
    ({"sort": "answer"}, "sort", "INVALID_SORT"),
])
def test_a_bad_paging_parameter_is_a_400_naming_its_field(batch_id, users, params, field, code):
    response = page(users["partner"].id, batch_id, **params)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == code
    assert response.get_json()["error"]["details"] == {"field": field}


def test_another_partners_batch_is_a_404_even_for_a_page(batch_id, users):
    response = page(users["partner2"].id, batch_id, offset=0)
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "BATCH_NOT_FOUND"


# --- trials and analyzer flags --------------------------------------------------------------

TRIAL_FILE = (
    "QUESTION,expectedOutcome\n"
    + "".join(f"Question {n}: how do I renew my passport?,{'block' if n % 2 else 'answer'}\n" for n in range(1, 5))
).encode()


@pytest.fixture
def trial_batch(installed, users) -> str:
    """Four questions run three times each (twelve items) with the refusal and citation analyzers, finished."""
    from lib.upload import UploadedForm
    from tests.support.recording_queue import RecordingQueue, drain

    queue = RecordingQueue()
    installed.batches.queue = installed.engine.queue = queue
    form = {"batchName": "trials", "lang": "en", "aiProvider": "offline", "searchProvider": "offline",
            "trials": "3", "analyzers": "refusal,citation"}
    batch_id = installed.batches.create(users["partner"], UploadedForm(form, "q.csv", TRIAL_FILE))["batchId"]
    drain(installed, queue)
    return batch_id


def test_a_page_counts_items_in_row_then_trial_order(trial_batch, users):
    answer = page(users["partner"].id, trial_batch, offset=2, limit=4).get_json()
    back = page(users["partner"].id, trial_batch, offset=0, limit=4, sort="-rowNumber").get_json()

    assert answer["total"] == 12
    assert [(r["rowNumber"], r["trial"]) for r in answer["items"]] == [(2, 3), (3, 1), (3, 2), (3, 3)]
    assert [(r["rowNumber"], r["trial"]) for r in back["items"]] == [(5, 3), (5, 2), (5, 1), (4, 3)]


def test_a_page_stays_whole_when_the_item_indexes_have_a_gap(trial_batch, users, installed):
    installed.store.batch_items.delete_one({"batchId": ObjectId(trial_batch), "rowIndex": 3})  # (3, 1) removed by hand

    answer = page(users["partner"].id, trial_batch, offset=2, limit=4).get_json()

    assert answer["total"] == 11
    assert [(r["rowNumber"], r["trial"]) for r in answer["items"]] == [(2, 3), (3, 2), (3, 3), (4, 1)]


@pytest.mark.parametrize(("flag", "rows"), [
    ("refusal.flagged", [2, 4]),  # expected a refusal, got an answer: every trial of those questions
    ("refusal.match=true", [3, 5]),
    ("refusal.flagged,refusal.match=true", [2, 3, 4, 5]),  # either
    ("citation.liveStatus=nothing-like-it", []),
])
def test_the_flag_filter_finds_the_rows_an_analyzer_marked(trial_batch, users, flag, rows):
    answer = page(users["partner"].id, trial_batch, offset=0, flag=flag).get_json()

    assert sorted({r["rowNumber"] for r in answer["items"]}) == rows
    assert answer["total"] == 3 * len(rows)
    assert all(r["refusal.flagged"] is True for r in answer["items"]) or flag != "refusal.flagged"


@pytest.mark.parametrize("flag", ["similarity.label=meaning-drift", "expert.verdict=fail"])
def test_a_flag_on_an_analyzer_the_batch_did_not_run_is_a_400(trial_batch, users, flag):
    response = page(users["partner"].id, trial_batch, offset=0, flag=flag)

    assert response.status_code == 400
    error = response.get_json()["error"]
    assert (error["code"], error["details"]["field"]) == ("INVALID_FILTER", "flag")
    assert "refusal.flagged" in error["details"]["allowed"]


@pytest.mark.parametrize("flag", ["refusal", "refusal.flagged=", "refusal.flagged=a b", "$where", ",", "a.b=c=d"])
def test_a_malformed_flag_is_a_400_naming_its_field(batch_id, users, flag):
    response = page(users["partner"].id, batch_id, offset=0, flag=flag)

    assert response.status_code == 400
    assert response.get_json()["error"] == {**response.get_json()["error"], "code": "INVALID_FILTER",
                                            "details": {"field": "flag"}}


@fuzz_settings(80)
@given(params=st.dictionaries(st.sampled_from(PAGE_PARAMS), st.text(max_size=40), min_size=1, max_size=3))
def test_any_page_parameter_gives_a_page_or_a_coded_400_never_a_500(batch_id, users, params):
    response = page(users["partner"].id, batch_id, **params)

    if response.status_code == 200 and "limit" not in response.get_json():  # only empty values: every row
        assert all(value == "" for value in params.values()) and len(response.get_json()["items"]) == ROWS
    elif response.status_code == 200:
        answer = response.get_json()
        assert len(answer["items"]) <= answer["limit"] and answer["total"] <= ROWS
    else:
        assert response.status_code == 400, (params, response.get_data(as_text=True)[:300])
        assert response.get_json()["error"]["code"] in ("INVALID_PAGE", "INVALID_FILTER", "INVALID_SORT")
