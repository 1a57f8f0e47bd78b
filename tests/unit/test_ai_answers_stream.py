"""The deployed AI Answers' stream and replies, read as data (lib/pipelines: events, wire, conversation)."""

from __future__ import annotations

import json

import pytest

from lib.pipelines.ai_answers_http import merge_cookies
from lib.pipelines.ai_answers_wire import (
    Refused,
    StreamOutcome,
    TurnRequest,
    build_body,
    no_result_error,
    read_error_event,
    refusal_error,
    stage_timings,
    take_event,
)
from lib.pipelines.conversation import ConversationState
from lib.pipelines.events import MALFORMED, NDJSON, SSE, EventParser, StreamTooLarge, framing_of

SSE_STREAM = (
    b": connected\n\n"
    b"event: status\ndata: {\"status\": \"moderatingQuestion\", \"sequence\": 1}\n\n"
    b"event: status\ndata: {\"status\": \"keepalive\"}\n\n"
    b"event: result\ndata: {\"answer\": {\"content\": \"Hi\"},\n"
    b"data: \"historySignature\": \"sig\"}\n\n"
)
NDJSON_STREAM = (
    b'{"event": "connected", "data": {}}\n'
    b'{"event": "status", "data": {"status": "keepalive"}}\n'
    b'{"event": "result", "data": {"answer": {"content": "Hi"}, "historySignature": "sig"}}\n'
)


def feed_in_pieces(stream: bytes, size: int, framing: str | None = None) -> list:
    parser = EventParser(framing)
    events = []
    for start in range(0, len(stream), size):
        events += parser.feed(stream[start : start + size])
    return events + parser.close()


@pytest.mark.parametrize("size", [1, 3, 7, 64, 10_000])
def test_sse_events_come_out_whole_however_the_bytes_are_split(size):
    events = feed_in_pieces(SSE_STREAM, size)

    assert [e.name for e in events] == ["status", "status", "result"]
    assert events[1].is_keepalive
    assert events[2].data == {"answer": {"content": "Hi"}, "historySignature": "sig"}  # two data lines, joined


@pytest.mark.parametrize("size", [1, 5, 10_000])
def test_ndjson_events_come_out_whole_however_the_bytes_are_split(size):
    events = feed_in_pieces(NDJSON_STREAM, size)

    assert [e.name for e in events] == ["connected", "status", "result"]
    assert events[2].data["historySignature"] == "sig"


def test_the_framing_is_guessed_from_the_first_byte_when_the_content_type_does_not_say():
    sse, ndjson = EventParser(), EventParser()
    sse.feed(b": connected\n\n")
    ndjson.feed(b'{"event": "connected"}\n')

    assert (sse.framing, ndjson.framing) == (SSE, NDJSON)
    assert framing_of("text/event-stream; charset=utf-8") == SSE
    assert framing_of("application/x-ndjson") == NDJSON and framing_of("text/plain") is None


def test_crlf_line_endings_are_read_as_sse_allows():
    events = feed_in_pieces(b"event: status\r\ndata: {\"status\": \"complete\"}\r\n\r\n", 4)

    assert events[0].data == {"status": "complete"}


@pytest.mark.parametrize("stream, framing", [
    (b"event: status\ndata: {oops\n\n", SSE),
    (b"{not json\n", NDJSON),
    (b'["an", "array"]\n', NDJSON),
    (b'{"data": {}}\n', NDJSON),
])
def test_an_unreadable_event_becomes_malformed_and_the_next_one_is_still_read(stream, framing):
    follow = b"event: status\ndata: {}\n\n" if framing == SSE else b'{"event": "status", "data": {}}\n'
    parser = EventParser(framing)
    events = parser.feed(stream + follow) + parser.close()

    assert [e.name for e in events] == [MALFORMED, "status"]
    assert parser.malformed == 1


def test_a_last_block_without_its_blank_line_is_read_when_the_stream_closes():
    parser = EventParser(SSE)
    assert parser.feed(b"event: result\ndata: {\"answer\": {}}\n") == []

    assert [e.name for e in parser.close()] == ["result"]


def test_an_endless_event_is_refused_instead_of_filling_memory():
    parser = EventParser(NDJSON)
    with pytest.raises(StreamTooLarge):
        for _ in range(200):
            parser.feed(b"x" * 65536)


def outcome_of(*events):
    outcome = StreamOutcome()
    for n, (name, data) in enumerate(events):
        take_event(outcome, name, data, float(n))
    return outcome


def test_the_first_result_wins_and_keepalives_are_counted_not_taken_as_stages():
    outcome = outcome_of(("status", {"status": "buildingContext"}), ("status", {"status": "keepalive"}),
                         ("result", {"answer": {"content": "one"}}), ("result", {"answer": {"content": "two"}}))

    assert outcome.result["answer"]["content"] == "one"
    assert outcome.keepalives == 1 and outcome.statuses == [("buildingContext", 0.0)]


def test_a_stream_with_a_garbled_result_has_no_result_and_is_retryable():
    outcome = outcome_of(("status", {"status": "generatingAnswer"}), ("result", "not an object"))
    error = no_result_error(outcome)

    assert outcome.result is None and outcome.malformed_result
    assert error.code == "AI_ANSWERS_NO_RESULT" and error.retryable and "garbled" in error.message


@pytest.mark.parametrize("event, blocked_by, kept", [
    ({"name": "ShortQueryValidation", "message": "short", "fallbackUrl": "https://www.canada.ca/s"},
     "shortQuery", "Hi there"),
    ({"name": "RedactionError", "redactedText": "call XXX"}, "piStage1", "call XXX"),
    ({"name": "RedactionError", "stage": "piStage2", "redactedText": "I am XXX"}, "piStage2", "I am XXX"),
    ({"name": "RedactionError"}, "piStage1", "XXX"),  # no masked copy: nothing of the question is kept
    ({"name": "RedactionError", "stage": "made-up"}, "piStage1", "XXX"),
])
def test_refusal_events_are_blocks_that_keep_only_masked_text(event, blocked_by, kept):
    read = read_error_event(event, "Hi there")

    assert isinstance(read, Refused) and read.by == blocked_by and read.masked_text == kept


def test_another_error_event_is_a_failure_with_the_servers_name_and_message():
    read = read_error_event({"name": "GraphError", "message": "model   exploded\n"}, "q")
    marked = read_error_event({"name": "Overloaded", "message": "later", "retryable": True}, "q")

    assert read.code == "AI_ANSWERS_ERROR" and not read.retryable
    assert read.message == "ai-answers failed: GraphError: model exploded"
    assert marked.retryable


@pytest.mark.parametrize("status, body, code, retryable", [
    (429, {"error": "chat_run_in_progress"}, "AI_ANSWERS_CHAT_BUSY", True),
    (429, {"code": "RATE_LIMITED"}, "PROVIDER_RATE_LIMITED", True),
    (403, {"error": "invalid_signature"}, "AI_ANSWERS_CONVERSATION_REFUSED", False),
    (403, {"error": "missing_signature"}, "AI_ANSWERS_CONVERSATION_REFUSED", False),
    (403, {"error": "invalid_chatId"}, "AI_ANSWERS_CONVERSATION_REFUSED", False),
    (403, {"error": "botDetected"}, "AI_ANSWERS_REFUSED", False),
    (401, None, "AI_ANSWERS_UNAUTHORIZED", False),
    (503, {"error": "could_not_create_chat"}, "AI_ANSWERS_SERVER_ERROR", True),
    (400, "not json", "AI_ANSWERS_REJECTED", False),
])
def test_each_refusal_status_maps_to_one_error(status, body, code, retryable):
    error = refusal_error(status, body, retry_after=2.0)

    assert (error.code, error.retryable) == (code, retryable)
    if status == 429:
        assert error.retry_after == 2.0


def test_a_first_turn_sends_no_chat_id_and_a_follow_up_sends_the_signed_history():
    turn = TurnRequest(question="How long?", lang="en", referring_url=None, selected_ai=None, search_provider=None,
                       message_id="m1")
    first = ConversationState.new()
    after = first.after_answer("Passport?", "Apply online.", "srv-chat", "sig-1", {"aianswers.sid": "s1"})

    assert "chatId" not in build_body(turn, first)["input"] and "historySignature" not in build_body(turn, first)["input"]
    body = build_body(turn, after)["input"]
    assert body["chatId"] == "srv-chat" and body["historySignature"] == "sig-1"
    assert body["conversationHistory"] == [{"sender": "user", "text": "Passport?"}, {"sender": "ai", "text": "Apply online."}]
    assert body["visitorId"] == first.visitor_id and body["userMessageId"] == "m1"


def test_a_conversations_state_survives_its_trip_through_a_document():
    state = ConversationState.new().after_answer("q", "a", "c", "s", {"aianswers.sid": "x"}).refuse("CODE")

    assert ConversationState.from_doc(json.loads(json.dumps(state.to_doc()))) == state
    assert ConversationState.from_doc(None) is None and ConversationState.from_doc({"junk": 1}) is None


def test_set_cookie_headers_update_the_conversations_own_jar():
    jar = merge_cookies({"aianswers.sid": "old", "other": "1"},
                        ["aianswers.sid=new; Path=/; HttpOnly", "other=; Max-Age=0", "garbage\x00"])

    assert jar == {"aianswers.sid": "new"}


def test_stage_timings_run_from_one_announcement_to_the_next():
    assert stage_timings([("moderatingQuestion", 0.0), ("buildingContext", 0.1)], 300) == {
        "moderatingQuestion": 100, "buildingContext": 200}
