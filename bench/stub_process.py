"""The provider stub in its own process, driven over a pipe.

A provider is a remote server: hosting the stub inside the app's process would make its
handler threads compete with the app's row threads for the GIL, and every reply would
come back tens of milliseconds late (measured: 339 ms for L = 300 ms at concurrency 16
on 2 cores). In its own process the stub adds ~1-3 ms, like a provider on a fast link.

    with StubProcess() as stub:
        env = stub.env()                         # point the app's providers at it
        stub.configure(latency=0.3, rpm=240)     # reset counters, install the behaviour
        ... run a batch ...
        stub.stats()                             # requests, maxInFlight, rateLimited, ...
"""

from __future__ import annotations

import multiprocessing
from collections import Counter
from multiprocessing.connection import Connection
from typing import Any, Self


def _serve(conn: Connection) -> None:
    from bench.stub_rules import AIBehaviour, SlidingWindowLimit
    from tests.support import provider_stub
    from tests.support.provider_stub import ProviderStub

    # The stub writes a reply's headers and body in two sends; with Nagle on, the body
    # waits for the client's delayed ACK (40 ms on Linux). A real provider does not add that.
    provider_stub._Handler.disable_nagle_algorithm = True

    with ProviderStub() as stub:
        conn.send({"url": stub.url, "env": stub.env()})
        behaviour: AIBehaviour | None = None
        while True:
            command, args = conn.recv()
            if command == "configure":
                stub.reset()
                limit = SlidingWindowLimit(args["rpm"], args.get("window", 60.0)) if args.get("rpm") else None
                behaviour = AIBehaviour(args["latency"], limit, args.get("answer_chars", 0))
                stub.rule(behaviour)
                conn.send({"ok": True})
            elif command == "stats":
                limit = behaviour.limit if behaviour is not None else None
                conn.send({
                    "requests": stub.request_count,
                    "maxInFlight": stub.max_in_flight,
                    "accepted": limit.accepted if limit else stub.request_count,
                    "rateLimited": limit.rejected if limit else 0,
                    "maxInWindow": limit.max_in_window if limit else None,
                    # Calls by stage (`answer`, `analyzer.similar-answer`...), to split a row's calls.
                    "byStage": dict(Counter(r.stage or "other" for r in stub.requests if r.api is not None)),
                })
                stub.requests.clear()  # keep the child's memory flat over long runs
            elif command == "stop":
                conn.send({"ok": True})
                return


class StubProcess:
    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child,), name="provider-stub", daemon=True)
        self.url = ""
        self._env: dict[str, str] = {}

    def start(self) -> StubProcess:
        self._process.start()
        hello = self._conn.recv()
        self.url, self._env = hello["url"], hello["env"]
        return self

    def stop(self) -> None:
        if self._process.is_alive():
            try:
                self._call("stop")
            except (EOFError, OSError):
                pass
            self._process.join(timeout=5)
            if self._process.is_alive():
                self._process.terminate()
                self._process.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def env(self) -> dict[str, str]:
        """Settings variables that point every provider at the stub."""
        return dict(self._env)

    def configure(self, latency: float, rpm: int | None = None, window: float = 60.0, answer_chars: int = 0) -> None:
        """Reset the stub's counters; AI calls then answer after `latency` s, 429 over `rpm` per `window`."""
        self._call("configure", latency=latency, rpm=rpm, window=window, answer_chars=answer_chars)

    def stats(self) -> dict[str, Any]:
        return self._call("stats")

    def _call(self, command: str, **args: Any) -> Any:
        self._conn.send((command, args))
        return self._conn.recv()
