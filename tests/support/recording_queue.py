"""A recording StepQueue: the port's fake for tests that run steps by hand."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass
class Published:
    batch_id: str
    seq: int
    dedup_id: str
    delay_seconds: float


@dataclass
class RecordingQueue:
    messages: list[Published] = field(default_factory=list)
    fail_next: int = 0
    _seen: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def publish_step(self, batch_id: str, seq: int, *, dedup_id: str, delay_seconds: float = 0) -> str:
        from lib.errors import ServiceUnavailable

        with self._lock:
            if self.fail_next:
                self.fail_next -= 1
                raise ServiceUnavailable("queue down (test)", code="QUEUE_UNAVAILABLE")
            if dedup_id in self._seen:  # like QStash: a repeated deduplication id is not delivered again
                return f"dup-{dedup_id}"
            self._seen.add(dedup_id)
            self.messages.append(Published(batch_id, seq, dedup_id, delay_seconds))
            return f"msg-{len(self.messages)}"

    def take(self) -> list[Published]:
        with self._lock:
            taken, self.messages = self.messages, []
            return taken


def drain(services, queue: RecordingQueue, limit: int = 100) -> None:
    """Deliver every step the engine published, after its delay, until the queue is empty."""
    import time

    from lib.queue import StepMessage

    for _ in range(limit):
        messages = queue.take()
        if not messages:
            return
        for message in messages:
            time.sleep(min(message.delay_seconds, 10))
            services.engine.run_step(StepMessage(message.batch_id, message.seq))
    raise AssertionError("the steps did not settle")
