"""POST /api/chat/message in-process through werkzeug's test client, real SecantusDB."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
from werkzeug.test import Client

from lib.auth import issue_token
from tests.integration.conftest import JWT_SECRET, bearer


@pytest.fixture
def client(installed, users) -> Client:
    from lib.routes import chat_message

    return Client(chat_message)


def post(client: Client, body, headers=None, **kwargs):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return client.post("/api/chat/message", data=data, headers=headers or {}, content_type="application/json", **kwargs)


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def test_an_offline_answer_with_its_citation_comes_back(client, users):
    response = post(client, {"message": "How do I renew my passport?", "lang": "en"}, bearer(users["partner"].id))

    assert response.status_code == 200
    body = response.get_json()
    assert body["answer"].startswith("[Offline answer]")
    assert body["citationUrl"].startswith("https://www.canada.ca/en/")
    assert body["chatId"] and body["interactionId"]


def test_a_chat_id_the_server_never_issued_is_404_even_when_another_user_made_up_the_same(client, users):
    partner2 = bearer(users["partner2"].id)
    made_up = {"message": "How do I renew my passport?", "lang": "en", "chatId": "batch-predicted-id"}

    first = post(client, made_up, partner2)
    second = post(client, made_up, bearer(users["partner"].id))

    assert first.status_code == second.status_code == 404
    assert first.get_json()["error"]["code"] == "CHAT_NOT_FOUND"


def test_a_chat_continues_only_for_its_owner(client, users):
    started = post(client, {"message": "How do I renew my passport?", "lang": "en"}, bearer(users["partner"].id))
    chat_id = started.get_json()["chatId"]

    own = post(client, {"message": "How long does it take?", "lang": "en", "chatId": chat_id},
               bearer(users["partner"].id))
    other = post(client, {"message": "How long does it take?", "lang": "en", "chatId": chat_id},
                 bearer(users["partner2"].id))

    assert own.status_code == 200 and own.get_json()["chatId"] == chat_id
    assert other.status_code == 404 and other.get_json()["error"]["code"] == "CHAT_NOT_FOUND"


def test_a_french_question_gets_a_french_offline_answer(client, users):
    response = post(client, {"message": "Comment renouveler mon passeport?", "lang": "fr"}, bearer(users["partner"].id))
    assert response.get_json()["answer"].startswith("[Réponse hors ligne]")
    assert "/fr/" in response.get_json()["citationUrl"]


def _tokens(user_id: str) -> dict[str, str]:
    now = time.time()
    return {
        "wrong-secret": jwt.encode({"sub": user_id, "exp": now + 60}, "w" * 40, algorithm="HS256"),
        "expired": issue_token(user_id, JWT_SECRET, ttl_seconds=10, now=now - 3600),
        "alg-none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64({'sub': user_id, 'exp': now + 60})}.",
        "unknown-user": issue_token("6560f0f0f0f0f0f0f0f0f0f0", JWT_SECRET),
    }


@pytest.mark.parametrize("kind", ["none", "wrong-secret", "expired", "alg-none", "unknown-user"])
def test_requests_without_a_valid_token_get_401(client, users, kind):
    headers = {} if kind == "none" else {"Authorization": f"Bearer {_tokens(users['partner'].id)[kind]}"}
    response = post(client, {"message": "hi", "lang": "en"}, headers)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] in ("MISSING_TOKEN", "INVALID_TOKEN", "TOKEN_EXPIRED", "INVALID_USER")


def test_a_deactivated_user_gets_401(client, users, installed):
    installed.users.set_active(users["partner"].id, False)
    assert post(client, {"message": "hi", "lang": "en"}, bearer(users["partner"].id)).status_code == 401


def test_a_role_without_access_gets_403(client, users):
    response = post(client, {"message": "hi", "lang": "en"}, bearer(users["user"].id))
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "ROLE_NOT_ALLOWED"


def test_a_wrong_method_gets_405_with_allow(client, users):
    response = client.get("/api/chat/message", headers=bearer(users["partner"].id))
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert response.get_json()["error"]["code"] == "METHOD_NOT_ALLOWED"


def test_a_body_over_the_limit_gets_413(client, users):
    body = json.dumps({"message": "x" * 5_000_000, "lang": "en"})
    response = post(client, body, bearer(users["partner"].id))
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "PAYLOAD_TOO_LARGE"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("{not json", "INVALID_JSON"),
        ("[1, 2]", "INVALID_JSON"),
        ("", "INVALID_JSON"),
        ({"message": 5, "lang": "en"}, "INVALID_FIELD"),
        ({"message": "hi", "lang": "de"}, "INVALID_LANG"),
        ({"message": "", "lang": "en"}, "EMPTY_MESSAGE"),
        ({"message": "hi", "lang": "en", "aiProvider": "gpt-99"}, "UNKNOWN_PROVIDER"),
        ({"message": "hi", "lang": "en", "chatId": {"$ne": None}}, "INVALID_FIELD"),
    ],
)
def test_malformed_requests_get_400_with_a_code(client, users, body, code):
    response = post(client, body, bearer(users["partner"].id))
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == code


def test_a_request_is_logged_once_with_its_id_and_no_token(client, users, caplog):
    headers = bearer(users["partner"].id)
    with caplog.at_level("INFO", logger="ai_answers"):
        response = post(client, {"message": "How do I renew my passport?", "lang": "en"}, headers)
    lines = [r.getMessage() for r in caplog.records if r.name == "ai_answers.http"]
    assert len(lines) == 1
    assert response.headers["X-Request-Id"] in lines[0]
    assert headers["Authorization"].split()[1] not in caplog.text
