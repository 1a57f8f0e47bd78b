"""Malformed user records (issue 10, finding 8): refused with 401 INVALID_USER, logged once.

The records are written straight into SecantusDB, the way a hand edit or an old script
would leave them, and the requests go through the real status endpoint.
"""

from __future__ import annotations

import pytest
from bson import ObjectId
from werkzeug.test import Client

from tests.integration.conftest import bearer

SOUND = {"role": "partner", "active": True}


@pytest.fixture
def client(installed) -> Client:
    from lib.routes import batch_list

    return Client(batch_list)


def _insert(installed, **fields) -> str:
    """A user record with `fields` over a sound one (a None value removes the field)."""
    doc = {**SOUND, "email": f"{ObjectId()}@example.gc.ca", **fields}  # e-mails are unique
    doc = {name: value for name, value in doc.items() if value is not None}
    return str(installed.users.users.insert_one({"_id": ObjectId(), **doc}).inserted_id)


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "user record" in r.getMessage()]


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"role": "superuser"}, "role"),
        ({"role": None}, "role"),
        ({"role": 1}, "role"),
        ({"email": None}, "email"),
        ({"email": 42}, "email"),
        ({"email": ""}, "email"),
        ({"active": "false"}, "active"),
        ({"active": "true"}, "active"),
        ({"active": 1}, "active"),
        ({"active": None}, "active"),
    ],
    ids=["unknown-role", "no-role", "numeric-role", "no-email", "numeric-email", "empty-email", "active-string-false",
         "active-string-true", "active-one", "no-active"],
)
def test_a_malformed_user_record_is_refused_with_401_and_logged_once_without_its_email(installed, client, caplog,
                                                                                        fields, field):
    user_id = _insert(installed, **fields)
    with caplog.at_level("INFO", logger="ai_answers"):
        answers = [client.get("/api/batch/list", headers=bearer(user_id)) for _ in range(3)]
    for response in answers:
        assert response.status_code == 401
        assert response.get_json()["error"]["code"] == "INVALID_USER"
    assert _warnings(caplog) == [f"user record {user_id} is malformed: {field}"]
    assert "@example.gc.ca" not in caplog.text


def test_an_inactive_user_is_refused_without_a_malformed_record_warning(installed, client, caplog):
    user_id = _insert(installed, active=False)
    with caplog.at_level("INFO", logger="ai_answers"):
        response = client.get("/api/batch/list", headers=bearer(user_id))
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "INVALID_USER"
    assert _warnings(caplog) == []


def test_a_sound_user_record_is_let_in(installed, client):
    response = client.get("/api/batch/list", headers=bearer(_insert(installed)))
    assert response.status_code == 200
    assert response.get_json() == []


def test_each_malformed_record_is_reported_once_per_user_id(installed, client, caplog):
    first, second = _insert(installed, role="root"), _insert(installed, active="yes")
    with caplog.at_level("INFO", logger="ai_answers"):
        for user_id in (first, second, first, second):
            client.get("/api/batch/list", headers=bearer(user_id))
    assert _warnings(caplog) == [f"user record {first} is malformed: role",
                                 f"user record {second} is malformed: active"]
