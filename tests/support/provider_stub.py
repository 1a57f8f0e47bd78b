"""A local HTTP server that speaks every provider wire format, for tests over real HTTP.

    from tests.support.provider_stub import ProviderStub, Fault

    with ProviderStub() as stub:
        settings = Settings.from_env({**base_env, **stub.env()})   # every provider -> stub
        stub.enqueue(Fault.status(429, retry_after=1), Fault.delay(2.0))  # next 2 requests
        stub.rule(lambda req: Fault.status(500) if "boom" in req.question else None)
        stub.latency = 0.05                       # added before every reply
        ...
        stub.requests[-1].json["messages"]        # what the client sent
        stub.requests[-1].stage                   # which pipeline stage asked ("answer"...), or None
        stub.rule(lambda req: Fault.reply("no tags") if req.stage == "answer" else None)
        stub.request_count, stub.max_in_flight    # counters

Routes (the real paths): POST `/chat/completions` and `/v1/chat/completions` (OpenAI),
POST `/openai/deployments/<d>/chat/completions` (Azure), POST `/v1/messages` (Anthropic),
GET `/customsearch/v1` (Google), GET `/search` (Canada.ca); anything else is a 404.

Default replies are deterministic, with word counts as token counts. A search answer is
two results on `https://www.canada.ca/<lang>/stub-<n>.html`. An AI call is answered as a
well-behaved model would answer the prompt it carries, in the called API's wire format:
`RecordedRequest.stage` names the pipeline stage from the system prompt (the first
message with role system for OpenAI/Azure, the top-level `system` for Anthropic), and
`tests.support.stage_replies` writes that stage's reply (PII: `null`, or XXX in place of
the word `PIIMARK`; translation: `[en] ` + the question; the query, the department, the
tagged answer "Stub answer to: <question>" citing `STUB_CITATION`; for the analyzers' judges a
well-formed JSON verdict). Any other system prompt (a direct call of a provider client, as its
own tests make) gets the old reply: `Stub answer to: <last user message>` and the line
`<citation-url>STUB_CITATION</citation-url>`.

Faults: `Fault.status(code, retry_after=None, body=None)`, `Fault.delay(seconds)` (then
the normal reply), `Fault.malformed()` (200, not JSON), `Fault.wrong_shape()` (200, JSON
the client cannot use), `Fault.disconnect()` (close without a reply),
`Fault.refused(on="prompt")` (the provider's content filter: OpenAI `finish_reason:
content_filter` with empty content; Azure the 400 `content_filter` error for a prompt,
`finish_reason: content_filter` with `on="completion"`; Anthropic `stop_reason:
refusal`), `Fault.reply(text)` (200, `text` as the model's reply in the API's wire
format: a malformed stage reply, a `<not-gc>` answer...). `refused` and `reply` leave
search calls alone. For each request the stub uses the next queued fault if any, else
the rule's fault if any, else the default reply; a rule sees `stage`, so
`stub.rule(lambda r: Fault.refused() if r.stage == "answer" else None)` targets one stage.
Every request is recorded as a `RecordedRequest`, faulted or not.
"""

from __future__ import annotations

import json
import re
import sys
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support.stage_replies import STUB_CITATION, reply_to, stage_of

AI_APIS = ("openai", "azure", "anthropic")
STUB_KEYS = {
    "OPENAI_API_KEY": "sk-stub-openai-key",
    "AZURE_OPENAI_API_KEY": "stub-azure-key",
    "ANTHROPIC_API_KEY": "sk-ant-stub-key",
    "GOOGLE_SEARCH_API_KEY": "stub-google-key",
    "CANADACA_SEARCH_KEY": "stub-canadaca-key",
}
_AZURE_PATH = re.compile(r"^/openai/deployments/([^/]+)/chat/completions$")
_ROUTES = {
    ("POST", "/chat/completions"): "openai",
    ("POST", "/v1/chat/completions"): "openai",
    ("POST", "/v1/messages"): "anthropic",
    ("GET", "/customsearch/v1"): "google",
    ("GET", "/search"): "canadaca",
}


_WRONG_SHAPES: dict[str, Any] = {
    "openai": {"id": "stub", "choices": []},
    "azure": {"id": "stub", "choices": [{"message": {"role": "assistant"}}]},
    "anthropic": {"id": "stub", "content": []},
    "google": {"items": {"unexpected": True}},
    "canadaca": {"hits": []},
}


@dataclass(frozen=True)
class Fault:
    """What the stub does instead of (or before) its normal reply to one request."""

    kind: str = "reply"  # reply | status | malformed | wrong_shape | disconnect | refused
    code: int = 200
    seconds: float = 0.0
    retry_after: str | None = None
    body: bytes | None = None
    text: str | None = None  # reply: the model's text instead of the stage's default
    on: str = "prompt"  # refused: what Azure's filter caught, "prompt" (400) or "completion" (200)

    @classmethod
    def status(cls, code: int, retry_after: float | str | None = None, body: Any = None) -> Fault:
        """Answer `code`, with a Retry-After header and a body (dict, str or bytes) if given."""
        if isinstance(body, str):
            body = body.encode()
        elif body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
        return cls("status", code, 0.0, None if retry_after is None else str(retry_after), body)

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        """Wait `seconds`, then give the normal reply."""
        return cls("reply", 200, seconds)

    @classmethod
    def malformed(cls) -> Fault:
        """Answer 200 with a body that is not JSON."""
        return cls("malformed")

    @classmethod
    def wrong_shape(cls) -> Fault:
        """Answer 200 with JSON that lacks what the client needs."""
        return cls("wrong_shape")

    @classmethod
    def disconnect(cls) -> Fault:
        """Close the connection without answering."""
        return cls("disconnect")

    @classmethod
    def reply(cls, text: str, seconds: float = 0.0) -> Fault:
        """Answer 200 with `text` as the model's reply, in the called API's wire format (after `seconds`)."""
        return cls("reply", 200, seconds, text=text)

    @classmethod
    def refused(cls, on: str = "prompt") -> Fault:
        """Answer as the provider does when its content filter refuses the text.

        `on` matters to Azure only: "prompt" is its 400 `content_filter` error,
        "completion" a 200 with `finish_reason: content_filter`.
        """
        if on not in ("prompt", "completion"):
            raise ValueError(f"on must be 'prompt' or 'completion', not {on!r}")
        return cls("refused", on=on)


@dataclass
class RecordedRequest:
    """One request as the stub received it; `headers` keys are lower-case."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    json: Any
    api: str | None  # openai | azure | anthropic | google | canadaca | None (no route)
    deployment: str | None = None
    # The `usage` (and `model`) of the reply the stub sent, for tests that price calls on their own.
    reply_usage: dict[str, Any] | None = None
    reply_model: str | None = None

    @property
    def question(self) -> str:
        """The last user message of an AI call (a stage's whole user turn), or the query of a search call."""
        if self.api in ("google", "canadaca"):
            return self.query.get("q", "")
        for message in reversed(self._messages()):
            if message.get("role") == "user":
                return _text_of(message.get("content"))
        return ""

    @property
    def system(self) -> str:
        """The system prompt of an AI call: Anthropic's `system`, else the first system message."""
        if self.api not in AI_APIS or not isinstance(self.json, dict):
            return ""
        if self.api == "anthropic":
            return _text_of(self.json.get("system"))
        for message in self._messages():
            if message.get("role") == "system":
                return _text_of(message.get("content"))
        return ""

    @property
    def stage(self) -> str | None:
        """Which pipeline stage this AI call is (`piStage2`, `translation`, `queryRewrite`,
        `queryRewrite.simpler`, `context`, `answer`, or an analyzer's judge: `analyzer.similar-answer`,
        `analyzer.expert-scorer`), or None (a search, or another prompt)."""
        return stage_of(self.system) if self.api in AI_APIS else None

    def _messages(self) -> list[dict[str, Any]]:
        messages = self.json.get("messages") if isinstance(self.json, dict) else None
        return [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []


def _text_of(content: Any) -> str:
    if isinstance(content, list):  # Anthropic content blocks
        return "".join(b.get("text", "") for b in content if isinstance(b, dict))
    return content if isinstance(content, str) else ""


class ProviderStub:
    """The stub server; use as a context manager. Attributes are safe to read from tests."""

    def __init__(self) -> None:
        self.latency = 0.0
        self.requests: list[RecordedRequest] = []
        self.request_count = 0
        self.max_in_flight = 0
        self._in_flight = 0
        self._faults: deque[Fault] = deque()
        self._rule: Callable[[RecordedRequest], Fault | None] | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.stub = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> ProviderStub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()  # wakes handlers still sleeping in a delay
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def env(self, deployment: str = "stub-deployment") -> dict[str, str]:
        """Settings variables that point every provider at this stub, with fake keys."""
        return {
            **STUB_KEYS,
            "OPENAI_BASE_URL": f"{self.url}/v1",
            "AZURE_OPENAI_ENDPOINT": self.url,
            "AZURE_OPENAI_DEPLOYMENT": deployment,
            "ANTHROPIC_BASE_URL": self.url,
            "GOOGLE_SEARCH_URL": f"{self.url}/customsearch/v1",
            "GOOGLE_SEARCH_CX": "stub-cx",
            "CANADACA_SEARCH_URL": f"{self.url}/search",
        }

    def enqueue(self, *faults: Fault) -> None:
        """Script the next requests: one fault each, in order."""
        with self._lock:
            self._faults.extend(faults)

    def rule(self, decide: Callable[[RecordedRequest], Fault | None] | None) -> None:
        """Decide a fault per request (None: normal reply); replaces any earlier rule."""
        with self._lock:
            self._rule = decide

    def reset(self) -> None:
        """Forget requests, counters, faults, rule and latency."""
        with self._lock:
            self.requests.clear()
            self._faults.clear()
            self._rule = None
            self.request_count = self.max_in_flight = 0
            self.latency = 0.0

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        azure = _AZURE_PATH.match(parts.path) if handler.command == "POST" else None
        request = RecordedRequest(
            method=handler.command,
            path=parts.path,
            query={k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()},
            headers={k.lower(): v for k, v in handler.headers.items()},
            body=body,
            json=parsed,
            api="azure" if azure else _ROUTES.get((handler.command, parts.path)),
            deployment=azure.group(1) if azure else None,
        )
        with self._lock:
            self.requests.append(request)
            self.request_count += 1
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            fault = self._faults.popleft() if self._faults else None
            rule = self._rule
        try:
            if fault is None and rule is not None:
                fault = rule(request)
            self._reply(handler, request, fault or Fault())
        finally:
            with self._lock:
                self._in_flight -= 1

    def _reply(self, handler: BaseHTTPRequestHandler, request: RecordedRequest, fault: Fault) -> None:
        self._stopping.wait(self.latency + fault.seconds)
        if fault.kind == "disconnect":
            handler.close_connection = True
            return
        headers = {"Content-Type": "application/json"}
        if request.api is None:
            status, payload = 404, json.dumps({"error": {"message": f"no stub route for {request.path}"}}).encode()
        elif fault.kind == "status":
            status, payload = fault.code, fault.body
            if payload is None:
                payload = json.dumps({"error": {"message": f"stub fault {fault.code}", "type": "stub"}}).encode()
            if fault.retry_after is not None:
                headers["Retry-After"] = fault.retry_after
        elif fault.kind == "malformed":
            status, payload = 200, b"<html><body>Not JSON</body></html>"
        elif fault.kind == "wrong_shape":
            status, payload = 200, json.dumps(_WRONG_SHAPES[request.api]).encode()
        elif fault.kind == "refused" and request.api in AI_APIS:
            refusal = refused_reply(request, fault.on)
            status, payload = refusal.status, json.dumps(refusal.body).encode()
        else:
            reply = default_reply(request, fault.text)
            if isinstance(reply.get("usage"), dict):
                request.reply_usage, request.reply_model = reply["usage"], reply.get("model")
            status, payload = 200, json.dumps(reply).encode()
        try:
            handler.send_response(status)
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True  # the client gave up (e.g. its read timeout)


def default_reply(request: RecordedRequest, text: str | None = None) -> dict[str, Any]:
    """The deterministic normal reply for a routed request; `text` replaces an AI call's model text."""
    if request.api in ("google", "canadaca"):
        lang = "fr" if request.query.get("lr") == "lang_fr" or request.query.get("lang") == "fr" else "en"
        wanted = int(request.query.get("num") or request.query.get("rows") or 2)
        results = [
            {
                "title": f"Stub result {n} for: {request.question}",
                "url": f"https://www.canada.ca/{lang}/stub-{n}.html",
                "snippet": f"Stub snippet {n} about {request.question}.",
            }
            for n in (1, 2)[: max(0, wanted)]
        ]
        if request.api == "canadaca":
            return {"results": results}
        return {"kind": "customsearch#search", "items": [{**r, "link": r.pop("url")} for r in results]}
    return _completion(request, model_text(request) if text is None else text)


def model_text(request: RecordedRequest) -> str:
    """What a well-behaved model writes back to an AI call: the reply its stage's prompt asks for."""
    stage = request.stage
    if stage is None:
        return f"Stub answer to: {request.question}\n<citation-url>{STUB_CITATION}</citation-url>"
    return reply_to(stage, request.system, request.question)


# What Azure says its filter found (one category over the threshold).
_FILTER_RESULTS = {
    "hate": {"filtered": False, "severity": "safe"},
    "self_harm": {"filtered": False, "severity": "safe"},
    "sexual": {"filtered": False, "severity": "safe"},
    "violence": {"filtered": True, "severity": "high"},
}


@dataclass(frozen=True)
class Refusal:
    """The status and JSON body a provider answers with when its content filter refuses."""

    status: int
    body: dict[str, Any]


def refused_reply(request: RecordedRequest, on: str = "prompt") -> Refusal:
    """The provider's content-filter refusal, in the called API's wire format."""
    model = _model_of(request)
    prompt_words = _prompt_words(request)
    if request.api == "anthropic":
        return Refusal(200, {
            "id": "msg_stub", "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": "refusal", "stop_sequence": None,
            "usage": {"input_tokens": prompt_words, "output_tokens": 0},
        })
    if request.api == "azure" and on == "prompt":
        return Refusal(400, {"error": {
            "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management "
                       "policy. Please modify your prompt and retry.",
            "type": None, "param": "prompt", "code": "content_filter", "status": 400,
            "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": _FILTER_RESULTS},
        }})
    choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": ""},
                              "finish_reason": "content_filter"}
    if request.api == "azure":
        choice = {**choice, "message": {"role": "assistant", "content": None}, "content_filter_results": _FILTER_RESULTS}
    return Refusal(200, {
        "id": "chatcmpl-stub", "object": "chat.completion", "model": model, "choices": [choice],
        "usage": {"prompt_tokens": prompt_words, "completion_tokens": 0, "total_tokens": prompt_words},
    })


def _completion(request: RecordedRequest, text: str) -> dict[str, Any]:
    """A successful completion carrying `text`, in the called API's wire format."""
    model = _model_of(request)
    prompt_words, answer_words = _prompt_words(request), len(text.split())
    if request.api == "anthropic":
        return {
            "id": "msg_stub",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": prompt_words, "output_tokens": answer_words},
        }
    return {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": prompt_words,
            "completion_tokens": answer_words,
            "total_tokens": prompt_words + answer_words,
        },
    }


def _model_of(request: RecordedRequest) -> str:
    body = request.json if isinstance(request.json, dict) else {}
    return body.get("model") or request.deployment or "stub-model"


def _prompt_words(request: RecordedRequest) -> int:
    body = request.json if isinstance(request.json, dict) else {}
    return len(_text_of(body.get("system")).split()) + sum(
        len(_text_of(m.get("content")).split()) for m in body.get("messages", []) if isinstance(m, dict)
    )


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that goes away mid-request (an app server killed by the fault campaign, a
        # read timeout) is part of the game, not a stub failure worth a traceback.
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real providers do
    disable_nagle_algorithm = True  # headers and body go in two sends: without this each reply waits ~40 ms

    def do_GET(self) -> None:
        self.server.stub._handle(self)  # type: ignore[attr-defined]

    do_POST = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output quiet
