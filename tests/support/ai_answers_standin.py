"""A local HTTP server that speaks a deployed AI Answers' chat endpoint (ai-answers.md §6), for tests and benchmarks.

    with AIAnswersStandIn(framing="sse", latency=0.05, keepalive=0.02) as standin:
        env = {"AI_ANSWERS_URL": standin.url}
        standin.enqueue(Fault.drop_before_result())         # the next request
        standin.rule(lambda call: Fault.status(429, "RATE_LIMITED", retry_after=1)
                     if "boom" in call.question else None)  # any request it matches
        standin.calls[-1].body, standin.persisted            # what was sent; answers recorded per message id

`POST /api/chat/chat-graph-run` as the deployment serves it:

- Sessions: cookie `aianswers.sid`; a request without a known session gets a new one.
  A request without a chat id gets one made here and recorded in its session; a chat id
  the session does not know is refused (403 `invalid_chatId`).
- Anonymous callers must send a `visitorId` (else 403 `botDetected`); with `token` set the
  deployment requires sign-in (401 without `Authorization: Bearer <token>`).
- A non-empty `conversationHistory` must carry the `historySignature` the previous result
  returned for exactly that history (403 `missing_signature` / `invalid_signature`).
- One run per chat at a time (429 `chat_run_in_progress`); a body that is not an object is a 400.
- The reply: 200 and a chunked stream, SSE (`: connected`, then `event:`/`data:` blocks)
  or NDJSON (`{"event", "data"}` lines, starting with `connected`); `status` events per
  stage and a `keepalive` status every `keepalive` seconds while the answer is being
  made (`latency` seconds); then `result` (the answer, context, citation, a new
  `historySignature`, the chat id) or `error`: `ShortQueryValidation` for a first turn of
  two words or fewer, `RedactionError` (with `redactedText`) for a question holding a
  run of 7 or more digits or the word PIIMARK.

An answer counts as recorded by the deployment (`persisted[userMessageId]`) only once its
stream was sent to its end, as the real one persists the interaction after `result`.

Faults (`Fault.*`), taken from the queue first, else from the rule: `status(code, reason,
retry_after)`, `drop_before_result()` (close mid-stream before `result`),
`drop_after_result()` (close right after `result`, before the stream's end),
`slow_first_byte(seconds)`, `malformed_events()` (garbled `status` events, then the
answer), `malformed_result()` (the `result` event garbled), `error_event(name, message)`,
`hang()` (keepalives until the client hangs up).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

PATH = "/api/chat/chat-graph-run"
COOKIE = "aianswers.sid"
_PII = re.compile(r"\d{7,}|PIIMARK")


@dataclass(frozen=True)
class Fault:
    kind: str
    code: int = 200
    reason: str = ""
    retry_after: float | None = None
    seconds: float = 0.0
    name: str = ""
    message: str = ""

    @classmethod
    def status(cls, code: int, reason: str = "", retry_after: float | None = None) -> Fault:
        return cls("status", code=code, reason=reason, retry_after=retry_after)

    @classmethod
    def drop_before_result(cls) -> Fault:
        return cls("drop_before_result")

    @classmethod
    def drop_after_result(cls) -> Fault:
        return cls("drop_after_result")

    @classmethod
    def slow_first_byte(cls, seconds: float) -> Fault:
        return cls("slow_first_byte", seconds=seconds)

    @classmethod
    def malformed_events(cls) -> Fault:
        return cls("malformed_events")

    @classmethod
    def malformed_result(cls) -> Fault:
        return cls("malformed_result")

    @classmethod
    def error_event(cls, name: str, message: str = "") -> Fault:
        return cls("error_event", name=name, message=message)

    @classmethod
    def hang(cls) -> Fault:
        return cls("hang")


@dataclass
class Call:
    """One request the stand-in received, and what it did with it."""

    body: Any
    cookies: dict[str, str]
    authorization: str | None
    status: int = 0
    fault: str | None = None
    chat_id: str | None = None
    outcome: str = ""  # result | error:<name> | refused:<reason> | dropped | ...

    @property
    def input(self) -> dict[str, Any]:
        return self.body.get("input", {}) if isinstance(self.body, dict) else {}

    @property
    def question(self) -> str:
        return str(self.input.get("userMessage", ""))


@dataclass
class _Session:
    chats: set[str] = field(default_factory=set)


class AIAnswersStandIn:
    def __init__(self, *, framing: str = "sse", latency: float = 0.0, keepalive: float = 15.0,
                 token: str | None = None, port: int = 0):
        self.framing = framing
        self.latency = latency
        self.keepalive = keepalive
        self.token = token
        self.secret = uuid.uuid4().bytes
        self.sessions: dict[str, _Session] = {}
        self.running: set[str] = set()
        self.calls: list[Call] = []
        self.persisted: Counter[str] = Counter()  # userMessageId -> answers the deployment recorded
        self.max_in_flight = 0
        self._in_flight = 0
        self._queue: list[Fault] = []
        self._rule: Callable[[Call], Fault | None] | None = None
        self._lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"standin": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> AIAnswersStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def enqueue(self, *faults: Fault) -> None:
        with self._lock:
            self._queue.extend(faults)

    def rule(self, rule: Callable[[Call], Fault | None] | None) -> None:
        self._rule = rule

    def reset(self) -> None:
        with self._lock:
            self._queue.clear()
            self.calls.clear()
            self.persisted.clear()
            self.max_in_flight = 0
        self._rule = None

    # --- what the deployment does ------------------------------------------------------

    def sign(self, chat_id: str, history: list[dict[str, Any]]) -> str:
        payload = chat_id.encode() + b"|" + json.dumps(history, sort_keys=True, separators=(",", ":")).encode()
        return hmac.new(self.secret, payload, hashlib.sha256).hexdigest()

    def _fault_for(self, call: Call) -> Fault | None:
        with self._lock:
            if self._queue:
                return self._queue.pop(0)
        rule = self._rule
        return rule(call) if rule is not None else None

    def _enter(self) -> None:
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    standin: AIAnswersStandIn

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        s = self.standin
        if self.path.split("?", 1)[0] != PATH:
            self._json(404, {"error": "not_found"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body = None
        cookies = _cookies(self.headers.get("Cookie"))
        call = Call(body=body, cookies=cookies, authorization=self.headers.get("Authorization"))
        with s._lock:
            s.calls.append(call)
        s._enter()
        try:
            self._serve(call)
        finally:
            s._leave()

    def _serve(self, call: Call) -> None:
        s = self.standin
        signed_in = s.token is not None and call.authorization == f"Bearer {s.token}"
        if s.token is not None and not signed_in:
            return self._refuse(call, 401, "unauthorized")
        if not isinstance(call.body, dict) or not isinstance(call.body.get("input"), dict):
            return self._refuse(call, 400, "invalid_body")
        data = call.input
        if not signed_in and not data.get("visitorId"):
            return self._refuse(call, 403, "botDetected")
        sid = call.cookies.get(COOKIE)
        set_cookie = None
        with s._lock:
            session = s.sessions.get(sid or "")
            if session is None:
                sid, session = uuid.uuid4().hex, _Session()
                s.sessions[sid] = session
                set_cookie = f"{COOKIE}={sid}; Path=/; HttpOnly; SameSite=Lax"
        fault = s._fault_for(call)
        call.fault = fault.kind if fault else None
        if fault is not None and fault.kind == "status":
            return self._refuse(call, fault.code, fault.reason, retry_after=fault.retry_after, set_cookie=set_cookie)
        chat_id = data.get("chatId")
        with s._lock:
            if chat_id:
                if chat_id not in session.chats:
                    refuse = "invalid_chatId"
                else:
                    refuse = None
            else:
                chat_id, refuse = uuid.uuid4().hex, None
                session.chats.add(chat_id)
        if refuse:
            return self._refuse(call, 403, refuse, set_cookie=set_cookie)
        history = data.get("conversationHistory") or []
        if history:
            signature = data.get("historySignature")
            if not signature:
                return self._refuse(call, 403, "missing_signature", set_cookie=set_cookie)
            if not hmac.compare_digest(str(signature), s.sign(chat_id, history)):
                return self._refuse(call, 403, "invalid_signature", set_cookie=set_cookie)
        with s._lock:
            if chat_id in s.running:
                busy = True
            else:
                busy = False
                s.running.add(chat_id)
        if busy:
            return self._refuse(call, 429, "chat_run_in_progress", retry_after=1, set_cookie=set_cookie)
        call.chat_id = chat_id
        try:
            self._stream(call, chat_id, history, fault, set_cookie)
        finally:
            with s._lock:
                s.running.discard(chat_id)

    # --- the stream ------------------------------------------------------------------------

    def _stream(self, call: Call, chat_id: str, history: list[Any], fault: Fault | None,
                set_cookie: str | None) -> None:
        s = self.standin
        if fault is not None and fault.kind == "slow_first_byte":
            time.sleep(fault.seconds)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream" if s.framing == "sse" else "application/x-ndjson")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        if set_cookie:
            self.send_header("Set-Cookie", set_cookie)
        self.end_headers()
        call.status = 200
        sequence = 0
        try:
            self._chunk(b": connected\n\n" if s.framing == "sse" else b'{"event":"connected","data":{}}\n')

            def status(name: str) -> None:
                nonlocal sequence
                sequence += 1
                self._event("status", {"status": name, "graph": "DefaultWithVector", "sequence": sequence,
                                       "serverSentAt": time.time()})

            status("moderatingQuestion")
            if fault is not None and fault.kind == "malformed_events":
                self._chunk(b"event: status\ndata: {not json\n\n" if s.framing == "sse" else b"{garbled\n")
            question = call.question
            first_turn = not history
            if fault is not None and fault.kind == "error_event":
                return self._end_with_error(call, fault.name, fault.message, chat_id, history)
            if first_turn and len(question.split()) <= 2:
                return self._end_with_error(call, "ShortQueryValidation", "Question too short", chat_id, history)
            if _PII.search(question):
                return self._end_with_error(call, "RedactionError", "Personal information", chat_id, history,
                                            redacted=_PII.sub("XXX", question))
            status("buildingContext")
            self._wait(s.latency if not (fault and fault.kind == "hang") else 3600)
            if fault is not None and fault.kind == "drop_before_result":
                call.outcome = "dropped"
                return self._drop()
            status("generatingAnswer")
            answer = f"Stand-in answer to: {question}"
            new_history = [*history, {"sender": "user", "text": question}, {"sender": "ai", "text": answer}]
            result = _result(question, answer, chat_id, s.sign(chat_id, new_history), data_lang=call.input.get("lang"))
            if fault is not None and fault.kind == "malformed_result":
                self._chunk(b"event: result\ndata: {\"answer\": \n\n" if s.framing == "sse" else b'{"event":"result",\n')
                call.outcome = "malformed_result"
                return self._finish()
            self._event("result", result)
            if fault is not None and fault.kind == "drop_after_result":
                call.outcome = "dropped_after_result"
                return self._drop()
            status("complete")
            self._finish()
            call.outcome = "result"
            with s._lock:
                s.persisted[str(call.input.get("userMessageId"))] += 1
        except (BrokenPipeError, ConnectionResetError, OSError):
            call.outcome = call.outcome or "client_hung_up"
            self.close_connection = True

    def _end_with_error(self, call: Call, name: str, message: str, chat_id: str, history: list[Any], *,
                        redacted: str | None = None) -> None:
        data: dict[str, Any] = {"name": name, "message": message, "historySignature": self.standin.sign(chat_id,
                                                                                                        history)}
        if redacted is not None:
            data["redactedText"] = redacted
        if name == "ShortQueryValidation":
            data["fallbackUrl"] = "https://www.canada.ca/en/sr/srb.html"
        self._event("error", data)
        self._finish()
        call.outcome = f"error:{name}"

    def _wait(self, seconds: float) -> None:
        """Wait `seconds`, sending a keepalive every `keepalive` seconds meanwhile."""
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, self.standin.keepalive))
            if end - time.monotonic() > 0:
                self._event("status", {"status": "keepalive", "serverSentAt": time.time()})

    def _event(self, name: str, data: Any) -> None:
        payload = json.dumps(data)
        if self.standin.framing == "sse":
            self._chunk(f"event: {name}\ndata: {payload}\n\n".encode())
        else:
            self._chunk((json.dumps({"event": name, "data": data}) + "\n").encode())

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _finish(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _drop(self) -> None:
        """Close the connection mid-stream, without the chunked stream's terminator."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # --- refusals ------------------------------------------------------------------------

    def _refuse(self, call: Call, code: int, reason: str, *, retry_after: float | None = None,
                set_cookie: str | None = None) -> None:
        call.status, call.outcome = code, f"refused:{reason}"
        headers = {"Retry-After": str(int(retry_after))} if retry_after is not None else {}
        if set_cookie:
            headers["Set-Cookie"] = set_cookie
        self._json(code, {"error": reason}, headers)

    def _json(self, code: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def _cookies(header: str | None) -> dict[str, str]:
    if not header:
        return {}
    parsed: SimpleCookie = SimpleCookie()
    parsed.load(header)
    return {name: morsel.value for name, morsel in parsed.items()}


def _result(question: str, answer: str, chat_id: str, signature: str, *, data_lang: Any) -> dict[str, Any]:
    lang = "fra" if data_lang == "fr" else "eng"
    citation = "https://www.canada.ca/en/services/benefits.html"
    return {
        "answer": {
            "answerType": "normal", "content": answer, "englishAnswer": answer,
            "sentences": [answer, "A second sentence."], "citationHead": "Benefits",
            "citationUrl": citation, "confidenceRating": "0.9", "model": "standin-model",
            "inputTokens": len(question.split()) * 10, "outputTokens": len(answer.split()),
            "questionLanguage": lang, "englishQuestion": question, "tools": [],
        },
        "context": {
            "department": "ESDC", "departmentUrl": "https://www.canada.ca/en/employment-social-development.html",
            "searchResults": [{"title": "Benefits", "url": citation, "summary": "All benefits."}],
            "searchProvider": "google", "searchQuery": question.lower()[:80], "translatedQuestion": question,
            "originalLang": lang, "model": "standin-context", "inputTokens": 5, "outputTokens": 2,
        },
        "question": question,
        "citationUrl": citation,
        "historySignature": signature,
        "chatId": chat_id,
    }
