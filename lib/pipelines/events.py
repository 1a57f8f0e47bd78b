"""The chat endpoint's event stream, parsed (pure): Server-Sent Events or NDJSON (ai-answers.md §6).

`EventParser.feed(chunk)` takes bytes as they arrive off the wire and returns the events
they complete; `close()` returns what a last unterminated block held. The framing is the
deployment's choice: it is told by the reply's content type, else by the first byte
(`:` or `event:`/`data:` for SSE, `{` for NDJSON).

- SSE: blocks separated by a blank line; `event: NAME`, `data: JSON` (several `data:`
  lines are joined by newlines), lines starting with `:` are comments (`: connected`).
  A block with data but no name is a `message` event, as the SSE standard says.
- NDJSON: one `{"event": NAME, "data": ...}` object a line.

A block that cannot be read (data that is not JSON, a line that is not an object, a
missing name) becomes an event named `MALFORMED` carrying no data: the reader decides
what that means (a malformed `status` is harmless; a stream whose `result` was garbled
has no result).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

MALFORMED = "MALFORMED"
SSE = "sse"
NDJSON = "ndjson"
MAX_BUFFER_BYTES = 8 * 1024 * 1024  # one event larger than this is not an answer: the stream is garbled


@dataclass(frozen=True)
class StreamEvent:
    name: str
    data: Any = None

    @property
    def is_keepalive(self) -> bool:
        return self.name == "status" and isinstance(self.data, dict) and self.data.get("status") == "keepalive"


class StreamTooLarge(ValueError):
    """An event grew past `MAX_BUFFER_BYTES` without ending."""


def framing_of(content_type: str | None) -> str | None:
    """The framing a Content-Type names, or None to guess from the first byte."""
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    if kind == "text/event-stream":
        return SSE
    if kind in ("application/x-ndjson", "application/ndjson", "application/jsonl", "application/json-seq"):
        return NDJSON
    return None


class EventParser:
    """Incremental parser of one stream (not thread-safe: one reader per stream)."""

    def __init__(self, framing: str | None = None):
        self.framing = framing
        self._buffer = b""
        self._block: list[str] = []  # SSE lines of the block being read
        self.events_seen = 0
        self.malformed = 0

    def feed(self, chunk: bytes) -> list[StreamEvent]:
        """The events completed by `chunk`. Raises `StreamTooLarge`."""
        self._buffer += chunk
        if self.framing is None:
            stripped = self._buffer.lstrip()
            if not stripped:
                return []
            self.framing = NDJSON if stripped[:1] in (b"{", b"[") else SSE
        events: list[StreamEvent] = []
        while True:
            newline = self._buffer.find(b"\n")
            if newline < 0:
                break
            line, self._buffer = self._buffer[:newline], self._buffer[newline + 1 :]
            event = self._line(line.rstrip(b"\r").decode("utf-8", errors="replace"))
            if event is not None:
                events.append(self._count(event))
        if len(self._buffer) + sum(len(x) for x in self._block) > MAX_BUFFER_BYTES:
            raise StreamTooLarge("an event grew past the size limit without ending")
        return events

    def close(self) -> list[StreamEvent]:
        """The stream ended: whatever a last block without its terminator held."""
        events: list[StreamEvent] = []
        if self._buffer:
            line, self._buffer = self._buffer.decode("utf-8", errors="replace").rstrip("\r"), b""
            event = self._line(line)
            if event is not None:
                events.append(self._count(event))
        if self.framing == SSE and self._block:
            event = self._end_block()
            if event is not None:
                events.append(self._count(event))
        return events

    def _count(self, event: StreamEvent) -> StreamEvent:
        self.events_seen += 1
        if event.name == MALFORMED:
            self.malformed += 1
        return event

    def _line(self, line: str) -> StreamEvent | None:
        if self.framing == NDJSON:
            return parse_ndjson_line(line)
        if line == "":
            return self._end_block()
        if not line.startswith(":"):
            self._block.append(line)
        return None

    def _end_block(self) -> StreamEvent | None:
        block, self._block = self._block, []
        return parse_sse_block(block)


def parse_sse_block(lines: list[str]) -> StreamEvent | None:
    """One SSE block (its field lines, comments dropped) as an event; None for an empty block."""
    name: str | None = None
    data: list[str] = []
    for line in lines:
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            name = value.strip()
        elif field == "data":
            data.append(value)
        # id / retry / unknown fields carry nothing we use
    if name is None and not data:
        return None
    if not data:
        return StreamEvent(name or "message")
    try:
        payload = json.loads("\n".join(data))
    except ValueError:
        return StreamEvent(MALFORMED)
    return StreamEvent(name or "message", payload)


def parse_ndjson_line(line: str) -> StreamEvent | None:
    """One NDJSON line as an event; None for a blank line."""
    if not line.strip():
        return None
    try:
        obj = json.loads(line)
    except ValueError:
        return StreamEvent(MALFORMED)
    if not isinstance(obj, dict) or not isinstance(obj.get("event"), str) or not obj["event"]:
        return StreamEvent(MALFORMED)
    return StreamEvent(obj["event"], obj.get("data"))
