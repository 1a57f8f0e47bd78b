"""Every JSON endpoint under property-based fuzzing (Hypothesis).

Wrong types for every field, operator-shaped ids (`{"$ne": null}`, `batchId[$ne]=`),
missing fields, odd unicode, invalid or deeply nested JSON, huge bodies, forged
signatures: every answer is 2xx or a 4xx whose body is the error envelope with an
UPPER_SNAKE code, never a 5xx, and no answer to one partner carries another partner's
data. The routes run in-process (werkzeug's test client over `lib.routes`) on a real
SecantusDB, with a QStash dev server whose deliveries are paused.

The 500s found here were fixed; their minimised inputs stay as regression tests.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import jwt
import pytest
import requests
from bson import ObjectId
from hypothesis import example, given
from hypothesis import strategies as st
from werkzeug.test import Client, TestResponse

from devstack.qstash_server import QStashDevServer
from devstack.qstash_signing import body_hash, sign_delivery
from lib.auth import issue_token
from lib.settings import DEV_QSTASH_CURRENT_SIGNING_KEY
from lib.upload import UploadedForm
from tests.integration.conftest import JWT_SECRET, bearer
from tests.support.fuzz_checks import assert_answered_with_a_code, code_of
from tests.support.hypothesis_profiles import fuzz_settings

MAX_BODY = 4_718_592
STEP_MAX_BODY = 64 * 1024
OTHER_BATCH_NAME = "partner2-private-batch-7f3a"
OTHER_QUESTION = "partner2 private question about form T4-7f3a"
CSV = b"QUESTION,ticket\nHow do I renew my passport?,T-1\nWhat is the GST credit?,T-2\n"


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture
def paused_qstash() -> Iterator[QStashDevServer]:
    with QStashDevServer(port=0, faults={"paused": True}) as server:
        yield server


@pytest.fixture
def env(env: dict[str, str], paused_qstash: QStashDevServer) -> dict[str, str]:
    return {**env, "QSTASH_URL": paused_qstash.url, "CREATE_RATE_PER_MINUTE": "10000",
            "MAX_ACTIVE_BATCHES_PER_USER": "1000"}


@dataclass(repr=False)
class World:
    """The partner's batch, another partner's batch and chat, and a client per route."""

    services: Any
    users: dict[str, Any]
    own_batch: str
    other_batch: str
    other_chat: str
    clients: dict[str, Client] = field(default_factory=dict)

    def __repr__(self) -> str:
        return "world"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # how Hypothesis prints a failing example
        printer.text("world")

    def resolve(self, value: Any) -> Any:
        """`value` with the placeholders `<own>`, `<other>`, `<other-chat>` made real ids."""
        if isinstance(value, str):
            return (value.replace("<own>", self.own_batch).replace("<other-chat>", self.other_chat)
                    .replace("<other>", self.other_batch))
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if isinstance(value, dict):
            return {self.resolve(k): self.resolve(v) for k, v in value.items()}
        return value

    def other_batch_doc(self) -> dict[str, Any]:
        return self.services.store.batches.find_one({"_id": ObjectId(self.other_batch)})


@pytest.fixture
def world(installed, users) -> World:
    from lib import routes

    batches = installed.batches
    form = {"batchName": "mine", "lang": "en", "aiProvider": "offline", "searchProvider": "offline"}
    own = batches.create(users["partner"], UploadedForm(form, "q.csv", CSV))["batchId"]
    other = batches.create(users["partner2"], UploadedForm({**form, "batchName": OTHER_BATCH_NAME}, "q.csv", CSV))
    chat = installed.chat.process_message(
        chat_id=None, user_message=OTHER_QUESTION, lang="en", selected_ai="offline", selected_search="offline",
        referring_url=None, user=users["partner2"], override_user_id=None,
    )
    clients = {name: Client(getattr(routes, name)) for name in
               ("chat_message", "cancel_batch", "batch_status", "batch_results", "batch_list", "batch_options",
                "process_step", "delete_batch", "batch_summary", "batch_compare", "retry_batch")}
    return World(installed, users, own, other["batchId"], chat.chat_id, clients)


def assert_nothing_of_the_other_partner(response: TestResponse) -> None:
    text = response.get_data().decode("utf-8", "replace")
    assert OTHER_BATCH_NAME not in text and OTHER_QUESTION not in text and "partner2@" not in text


# ------------------------------------------------------------------------------ values


LONE_SURROGATES = ["\ud800", "a\udfff"]
OPERATORS: list[Any] = [
    {"$ne": None}, {"$gt": ""}, {"$regex": ".*"}, {"$where": "sleep(1000)"}, {"$exists": True},
    {"$in": ["<own>", "<other>"]}, {"$oid": "<other>"}, ["<other>"], "[$ne]", "{\"$ne\": null}", "$ne",
]
IDS: list[Any] = [
    "<own>", "<other>", "<other-chat>", str(ObjectId()), "0" * 24, "g" * 24, "<own> ", " <own>", "<own>\x00",
    "", " ", "null", "undefined", "../<other>", "<own>,<other>", "x" * 101, "x" * 100_000,
]

# Text without surrogates: they are fuzzed on their own (see the regression tests below).
texts = st.text(max_size=30) | st.sampled_from(["é", "😀", "\x00", "\u202e", "\ufeff", "'; DROP", "<script>"])
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=2**63 - 2, max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), texts,
)
json_values = st.recursive(
    scalars | st.sampled_from(OPERATORS),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)
ids = st.sampled_from(IDS) | json_values


MISSING = object()  # a field left out of the body


def absent() -> st.SearchStrategy[Any]:
    return st.just(MISSING)


def encode_json(value: Any, ensure_ascii: bool = True) -> bytes:
    return json.dumps(value, ensure_ascii=ensure_ascii, allow_nan=True).encode("utf-8", "surrogatepass")


@st.composite
def json_bodies(draw, objects: st.SearchStrategy[dict[str, Any]]) -> bytes:
    """An object from `objects` as JSON, or some other body (not JSON, not an object, empty)."""
    kind = draw(st.sampled_from(["object"] * 8 + ["value", "invalid", "empty", "bytes"]))
    if kind == "object":
        return encode_json(draw(objects), ensure_ascii=draw(st.booleans()))
    if kind == "value":
        return encode_json(draw(json_values))
    if kind == "invalid":
        return draw(st.sampled_from([b"{", b"{'a': 1}", b'{"a": }', b"NaN", b"\xff\xfe{}", b'{"a": 1}{"b": 2}',
                                     b'{"a": "\\ud800"}', b"[" * 50, b'{"a":1,}', b'\xef\xbb\xbf{"a": 1}']))
    if kind == "empty":
        return draw(st.sampled_from([b"", b" ", b"\n\t "]))
    return draw(st.binary(max_size=200))


# Mostly JSON, so that most examples get past the content-type check to the handler.
content_types = st.sampled_from(["application/json"] * 6 + [
    "application/json; charset=utf-8", "APPLICATION/JSON", "application/json; charset=latin-1", "text/plain",
    "application/x-www-form-urlencoded", "multipart/form-data; boundary=b", "", None, "application/json-patch+json",
    "application/json, text/plain",
])


def post(client: Client, path: str, body: bytes, content_type: str | None, headers: dict[str, str],
         query_string: str = "") -> TestResponse:
    headers = dict(headers)
    if content_type is not None:
        headers["Content-Type"] = content_type
    return client.post(path, data=body, headers=headers, query_string=query_string)


# ------------------------------------------------------------------------------ chat


@st.composite
def mutated(draw, valid: dict[str, Any], variants: dict[str, st.SearchStrategy[Any]]) -> dict[str, Any]:
    """`valid` with up to three fields given another value (of the right type or not) or removed."""
    body = dict(valid)
    count = min(draw(st.sampled_from([0, 0, 1, 1, 2, 3])), len(variants))  # a third left valid, to go deep
    for name in draw(st.lists(st.sampled_from(sorted(variants)), min_size=count, max_size=count, unique=True)):
        value = draw(st.one_of(variants[name], json_values, absent()))
        if value is MISSING:
            body.pop(name, None)
        else:
            body[name] = value
    return body


chat_objects = mutated(
    {"message": "How do I renew my passport?", "lang": "en", "aiProvider": "offline", "searchProvider": "offline"},
    {
        "message": st.sampled_from(["Comment renouveler mon passeport?", "", " ", "x" * 4000, "x" * 4001,
                                    "jo@example.ca 613-555-0199", "\x00\x1b[31m", "What is the GST credit?"]) | texts,
        "lang": st.sampled_from(["en", "fr", "EN", "de", "", "en "]),
        "aiProvider": st.sampled_from(["offline", "openai", "azure", "anthropic", "gpt-99", "", None]),
        "searchProvider": st.sampled_from(["offline", "google", "canadaca", "bing", "", None]),
        "chatId": st.sampled_from(["<other-chat>", "my-chat", "x" * 100, "x" * 101, "", None, "<own>"]) | texts,
        "referringUrl": st.sampled_from(["https://www.canada.ca/en.html", "javascript:alert(1)",
                                         "http://" + "a" * 3000, "", None]) | texts,
        "applyOverrides": st.sampled_from([True, False, "true", 1]),
        "extra": json_values,
    },
)


@fuzz_settings(60)
@given(body=json_bodies(chat_objects), content_type=content_types)
@example(body=b'{"message": "hi", "lang": "en", "chatId": {"$ne": null}}', content_type="application/json")
@example(body=b"[" * 100_000 + b"]" * 100_000, content_type="application/json")
@example(body=b'{"a":' * 50_000 + b"1" + b"}" * 50_000, content_type="application/json")
@example(body=json.dumps({"message": "hi", "lang": "en", "chatId": "<other-chat>"}).encode(),
         content_type="application/json")
def test_chat_message_answers_200_or_a_coded_4xx_to_any_body(world, body, content_type):
    body = world.resolve(body.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")

    response = post(world.clients["chat_message"], "/api/chat/message", body, content_type,
                    bearer(world.users["partner"].id))

    assert_answered_with_a_code(response, 200)
    assert_nothing_of_the_other_partner(response)
    if response.status_code == 200:
        assert {"chatId", "interactionId", "answer", "citationUrl", "answerType", "questionLanguage"} <= set(
            response.get_json())
    if b'"chatId": "' + world.other_chat.encode() + b'"' in body:
        assert response.status_code != 200  # another partner's chat is never continued


# ------------------------------------------------------------------------------ batches


query_keys = st.sampled_from(["batchId", "batchId", "batchId[$ne]", "batchId[]", "batchId.$ne", "BATCHID",
                              "format", "$where", "batchId[$regex]"]) | texts
query_values = st.sampled_from(["<own>", "<other>", "[$ne]", "null", "", "json", "csv", "xlsx", "pdf", "JSON",
                                '{"$ne": null}', "<own>&batchId=<other>"]) | texts


@st.composite
def query_strings(draw) -> str:
    pairs = draw(st.lists(st.tuples(query_keys, query_values), max_size=4))
    text = "&".join(f"{quote(k, safe='[]$')}={quote(v, safe='[]$')}" for k, v in pairs)
    return text + draw(st.sampled_from(["", "&", "%ff", "%", "%zz", "&&=", "=x", "&batchId=%00", "#frag"]))


def assert_only_the_partners_batches(response: TestResponse, world: World, path: str) -> None:
    if response.status_code != 200:
        return
    if path.endswith("list"):
        assert world.other_batch not in {b["batchId"] for b in response.get_json()}
    elif response.mimetype == "application/json":
        assert response.get_json()["batchId"] == world.own_batch
    else:
        assert "attachment" in response.headers["Content-Disposition"]


@fuzz_settings(80)
@given(path=st.sampled_from(["/api/batch/status", "/api/batch/results", "/api/batch/list", "/api/batch/summary",
                             "/api/batch/compare"]), query=query_strings(),
       method=st.sampled_from(["GET"] * 12 + ["POST", "PUT", "DELETE", "OPTIONS", "HEAD", "PATCH"]))
@example(path="/api/batch/status", query="batchId[$ne]=x", method="GET")
@example(path="/api/batch/results", query="batchId=<other>&format=csv", method="GET")
@example(path="/api/batch/results", query="batchId=<own>&format=xlsx", method="GET")
@example(path="/api/batch/summary", query="batchId=<other>", method="GET")
@example(path="/api/batch/compare", query="batchId=<own>&baselineBatchId=<other>&format=csv", method="GET")
@example(path="/api/batch/compare", query="batchId=<own>&baselineBatchId=<own>&format=xlsx", method="GET")
@example(path="/api/batch/compare", query="batchId=<own>&baselineBatchId[$ne]=x", method="GET")
def test_reading_batches_answers_200_or_a_coded_4xx_to_any_query(world, path, query, method):
    client = world.clients["batch_" + path.rsplit("/", 1)[1]]

    response = client.open(path, method=method, query_string=world.resolve(query),
                           headers=bearer(world.users["partner"].id))

    if method == "OPTIONS":
        assert response.status_code == 204 and response.headers["Allow"] == "GET"
        return
    if method == "HEAD":  # answered as GET would be, without a body
        assert response.status_code < 500 and response.data == b""
        return
    if method != "GET":
        assert response.status_code == 405 and response.headers["Allow"] == "GET"
        return
    assert_answered_with_a_code(response, 200)
    assert_nothing_of_the_other_partner(response)
    assert_only_the_partners_batches(response, world, path)


cancel_objects = mutated({"batchId": "<own>"}, {"batchId": ids, "extra": json_values})


@fuzz_settings(60)
@given(body=json_bodies(cancel_objects), content_type=content_types, query=st.sampled_from(["", "batchId=<other>"])
       | query_strings())
@example(body=b'{"batchId": {"$ne": null}}', content_type="application/json", query="")
@example(body=b'{"batchId": "<other>"}', content_type="application/json", query="")
@example(body=b"", content_type=None, query="batchId[$ne]=")
@example(body=b"[" * 100_000 + b"]" * 100_000, content_type="application/json", query="")
def test_cancel_answers_200_or_a_coded_4xx_and_never_touches_anothers_batch(world, body, content_type, query):
    body = world.resolve(body.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")

    response = post(world.clients["cancel_batch"], "/api/batch/cancel", body, content_type,
                    bearer(world.users["partner"].id), world.resolve(query))

    assert_answered_with_a_code(response, 200)
    assert_nothing_of_the_other_partner(response)
    if response.status_code == 200:
        assert response.get_json() == {"batchId": world.own_batch, "status": "cancelling"}
    assert world.other_batch_doc()["status"] == "queued"


retry_objects = mutated({"batchId": "<own>", "statuses": ["failed"]},
                        {"batchId": ids, "statuses": json_values, "budgetUsd": json_values, "extra": json_values})


@fuzz_settings(40)
@given(body=json_bodies(retry_objects), content_type=content_types)
@example(body=b'{"batchId": "<other>", "statuses": ["failed"]}', content_type="application/json")
@example(body=b'{"batchId": "<own>", "statuses": ["cancelled", "failed"], "budgetUsd": 1e999}',
         content_type="application/json")
@example(body=b'{"batchId": "<own>", "statuses": {"$in": ["failed"]}}', content_type="application/json")
def test_retry_answers_a_coded_4xx_and_never_touches_a_running_or_anothers_batch(world, body, content_type):
    body = world.resolve(body.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")

    response = post(world.clients["retry_batch"], "/api/batch/retry", body, content_type,
                    bearer(world.users["partner"].id), "")

    assert_answered_with_a_code(response, 200)
    assert_nothing_of_the_other_partner(response)
    assert response.status_code != 200  # both batches are still queued: nothing may run again
    assert world.other_batch_doc()["status"] == "queued"


@fuzz_settings(40)
@given(body=json_bodies(cancel_objects), content_type=content_types)
@example(body=b'{"batchId": {"$ne": null}}', content_type="application/json")
@example(body=b'{"batchId": "<other>"}', content_type="application/json")
@example(body=b'{"batchId": "<own>"}', content_type="application/json")
def test_delete_answers_a_coded_4xx_and_never_removes_a_running_or_anothers_batch(world, body, content_type):
    body = world.resolve(body.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")

    response = post(world.clients["delete_batch"], "/api/batch/delete", body, content_type,
                    bearer(world.users["partner"].id), "")

    assert_answered_with_a_code(response, 200)
    assert response.status_code in (400, 404, 409, 413, 415), response.get_data(as_text=True)
    assert_nothing_of_the_other_partner(response)
    assert world.other_batch_doc() is not None
    assert world.services.store.batch_items.count_documents({"batchId": ObjectId(world.own_batch)}) > 0


# ------------------------------------------------------------------------------ authentication


def forged_tokens(user_id: str) -> list[str]:
    now = int(time.time())
    return [
        "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer x.y.z", "Bearer " + "a" * 10_000,
        "Bearer " + jwt.encode({"sub": user_id, "exp": now + 60}, "w" * 40, algorithm="HS256"),
        "Bearer " + jwt.encode({"sub": user_id, "exp": now + 60}, None, algorithm="none"),
        "Bearer " + jwt.encode({"sub": user_id, "exp": now - 60}, JWT_SECRET, algorithm="HS256"),
        "Bearer " + jwt.encode({"sub": user_id}, JWT_SECRET, algorithm="HS256"),  # no exp
        "bearer " + issue_token(user_id, JWT_SECRET),  # the scheme is case-insensitive: valid
    ]


# A token the issuer signed, whose subject is strange (the issuer is trusted; its data need not be sane).
subjects = st.sampled_from([{"$ne": None}, ["x"], 5, None, True, "", "[$ne]", "0" * 24, "g" * 24, "x" * 10_000,
                            "<other>", "6560f0f0f0f0f0f0f0f0f0f0 ", "\x00"]) | texts


@fuzz_settings(40)
@given(route=st.sampled_from(["chat_message", "cancel_batch", "batch_status", "batch_results", "batch_list",
                              "batch_options", "delete_batch", "batch_summary", "batch_compare", "retry_batch"]),
       forged=st.integers(0, 10), subject=subjects, use_subject=st.booleans())
def test_a_bad_token_gets_401_and_no_data_on_every_route(world, route, forged, subject, use_subject):
    if use_subject:
        token = "Bearer " + jwt.encode({"sub": world.resolve(subject), "exp": int(time.time()) + 60}, JWT_SECRET,
                                       algorithm="HS256")
    else:
        token = forged_tokens(world.users["partner"].id)[forged]
    headers = {"Authorization": token} if token else {}
    method = "GET" if route.startswith("batch_") else "POST"
    body = json.dumps({"message": "hi", "lang": "en", "batchId": world.own_batch}).encode()

    response = world.clients[route].open("/", method=method, data=body, headers=headers,
                                          content_type="application/json",
                                          query_string=f"batchId={world.own_batch}")

    assert_answered_with_a_code(response, 200)
    if use_subject or not token.startswith("bearer "):  # the lower-case scheme of a real token is valid
        assert response.status_code == 401
        assert world.own_batch not in response.get_data(as_text=True)


def test_a_role_without_batch_access_gets_403_and_no_data(world):
    for route in ("cancel_batch", "batch_status", "batch_results", "batch_list", "batch_options", "chat_message",
                  "delete_batch", "batch_summary", "batch_compare", "retry_batch"):
        method = "GET" if route.startswith("batch_") else "POST"
        response = world.clients[route].open("/", method=method, headers=bearer(world.users["user"].id),
                                              query_string=f"batchId={world.own_batch}", json={"message": "hi"})
        assert response.status_code == 403
        assert code_of(response) == "ROLE_NOT_ALLOWED"
        assert world.own_batch not in response.get_data(as_text=True)


# ------------------------------------------------------------------------------ process-step


def step_items_untouched(world: World) -> bool:
    items = world.services.store.batch_items.find({"batchId": ObjectId(world.own_batch)})
    return all(item["status"] == "pending" and item["attempts"] == 0 for item in items)


@st.composite
def bad_signatures(draw, body: bytes, url: str) -> str | None:
    now = int(time.time())
    key = DEV_QSTASH_CURRENT_SIGNING_KEY
    claims = {"iss": "Upstash", "sub": url, "iat": now, "nbf": now, "exp": now + 300, "jti": "j",
              "body": body_hash(body)}
    kind = draw(st.sampled_from(["absent", "empty", "text", "none-alg", "wrong-key", "other-url", "other-body",
                                 "expired", "future", "other-issuer", "no-body-claim", "huge", "three-dots"]))
    if kind == "absent":
        return None
    if kind == "empty":
        return ""
    if kind == "text":
        return draw(st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=80))
    if kind == "none-alg":
        return jwt.encode(claims, None, algorithm="none")
    if kind == "wrong-key":
        return jwt.encode(claims, "sig_" + "k" * 28, algorithm="HS256")
    if kind == "other-url":
        return sign_delivery(body, "https://elsewhere.example/api/batch/process-step", key, now)
    if kind == "other-body":
        return sign_delivery(body + b" ", url, key, now)
    if kind == "expired":
        return sign_delivery(body, url, key, now - 3600)
    if kind == "future":
        return jwt.encode({**claims, "nbf": now + 3600, "iat": now + 3600}, key, algorithm="HS256")
    if kind == "other-issuer":
        return jwt.encode({**claims, "iss": "Mallory"}, key, algorithm="HS256")
    if kind == "no-body-claim":
        return jwt.encode({k: v for k, v in claims.items() if k != "body"}, key, algorithm="HS256")
    if kind == "huge":
        return "x" * 20_000
    return "..."


step_objects = mutated({"batchId": "<own>", "seq": 0}, {"batchId": ids, "seq": st.integers()})


@fuzz_settings(60)
@given(data=st.data(), body=json_bodies(step_objects) | st.just(b'{"batchId": "<own>", "seq": 0}'),
       content_type=content_types)
@example(data=None, body=b"[" * 100_000 + b"]" * 100_000, content_type="application/json")
def test_a_step_without_a_valid_signature_gets_401_and_runs_nothing(world, data, body, content_type):
    body = world.resolve(body.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")
    url = world.services.settings.process_step_url
    signature = data.draw(bad_signatures(body, url)) if data else None
    headers = {"Upstash-Signature": signature} if signature is not None else {}

    response = post(world.clients["process_step"], "/api/batch/process-step", body, content_type, headers)

    assert_answered_with_a_code(response)
    expected = 413 if len(body) > STEP_MAX_BODY else 401
    assert response.status_code == expected, response.get_json()
    assert step_items_untouched(world)


def signed(world: World, body: bytes) -> dict[str, str]:
    url = world.services.settings.process_step_url
    return {"Upstash-Signature": sign_delivery(body, url, DEV_QSTASH_CURRENT_SIGNING_KEY, time.time()),
            "Content-Type": "application/json"}


signed_step_objects = mutated({"batchId": "<own>", "seq": 0}, {
    "batchId": st.sampled_from(["<own>", "<other>", str(ObjectId())]) | ids,
    "seq": st.integers() | st.sampled_from([None, True, "0", 0.5, [], {}, {"$gt": 0}, 10**30, -1]),
})


@fuzz_settings(40)
@given(payload=st.sampled_from(["object"] * 4 + ["other"]).flatmap(
    lambda kind: signed_step_objects if kind == "object" else scalars | st.lists(json_values, max_size=3)))
def test_a_signed_step_with_any_payload_answers_2xx_or_a_coded_4xx(world, payload):
    body = encode_json(world.resolve(payload))

    response = world.clients["process_step"].post("/api/batch/process-step", data=body, headers=signed(world, body))

    assert_answered_with_a_code(response, 200)


# ------------------------------------------------------------------------------ sizes


@pytest.mark.parametrize("route", ["chat_message", "cancel_batch", "process_step"])
@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_a_body_over_the_cap_gets_413(world, route, declared):
    limit = STEP_MAX_BODY if route == "process_step" else MAX_BODY
    body = json.dumps({"message": "x" * (limit + 10), "lang": "en", "batchId": world.own_batch}).encode()
    headers = {**bearer(world.users["partner"].id), "Content-Type": "application/json"}
    if declared:
        response = world.clients[route].post("/", data=body, headers=headers)
    else:  # no Content-Length: the body is read until it ends, and refused once past the cap
        response = world.clients[route].post("/", input_stream=io.BytesIO(body), headers=headers,
                                              environ_overrides={"wsgi.input_terminated": True})

    assert (response.status_code, code_of(response)) == (413, "PAYLOAD_TOO_LARGE")
    assert step_items_untouched(world)


# ------------------------------------------------------------------------------ regressions
#
# Each was a 500 found by the properties above, minimised; they stay as regressions.


@pytest.mark.parametrize("field", ["message", "chatId"])
@pytest.mark.parametrize("surrogate", LONE_SURROGATES)
def test_a_lone_surrogate_in_a_chat_field_is_a_400(world, field, surrogate):
    body = encode_json({"message": "How do I renew my passport?", "lang": "en", field: surrogate})

    response = post(world.clients["chat_message"], "/api/chat/message", body, "application/json",
                    bearer(world.users["partner"].id))

    assert (response.status_code, code_of(response)) == (400, "INVALID_JSON")


def test_a_signed_step_nested_30000_deep_is_a_400(world):
    body = b"[" * 30_000 + b"]" * 30_000  # under the step's 64 KB cap

    response = world.clients["process_step"].post("/api/batch/process-step", data=body, headers=signed(world, body))

    assert (response.status_code, code_of(response)) == (400, "INVALID_STEP_MESSAGE")


def test_a_signed_step_whose_batch_id_holds_a_lone_surrogate_is_not_a_500(world):
    body = encode_json({"batchId": "x\ud800", "seq": 0})

    response = world.clients["process_step"].post("/api/batch/process-step", data=body, headers=signed(world, body))

    assert response.status_code < 500


# ------------------------------------------------------------------------------ over real HTTP


def chunked(body: bytes, size: int = 65_536) -> Iterator[bytes]:
    """`body` as a generator, which `requests` sends chunked, without a Content-Length."""
    for start in range(0, len(body), size):
        yield body[start:start + size]


@pytest.mark.parametrize("path", ["/api/chat/message", "/api/batch/process-step"])
def test_a_chunked_body_over_the_cap_gets_413_over_real_http(live, path):
    body = json.dumps({"message": "x" * (MAX_BODY + 10), "batchId": "0" * 24}).encode()

    response = requests.post(live.base_url + path, data=chunked(body), timeout=30,
                             headers={**live.headers("partner"), "Content-Type": "application/json"})

    assert (response.status_code, response.json()["error"]["code"]) == (413, "PAYLOAD_TOO_LARGE")


def test_a_chunked_cancel_body_is_read_over_real_http(live):
    live.qstash.set_faults({"paused": True})
    batch_id = live.upload("partner", CSV).json()["batchId"]
    body = json.dumps({"batchId": batch_id}).encode()

    response = requests.post(live.base_url + "/api/batch/cancel", data=chunked(body), timeout=30,
                             headers={**live.headers("partner"), "Content-Type": "application/json"})

    assert response.status_code == 200, response.json()
