"""A TCP proxy that makes a database slow: every client message waits a fixed delay.

    with LatencyProxy.for_uri(mongodb_uri, delay=0.05) as proxy:
        client = MongoClient(proxy.uri)           # the same database, 50 ms further away
        proxy.delay = 0.0                          # may be changed while it runs
        proxy.stats()                              # connections, messages, bytes

It listens on a free loopback port and forwards every connection to the target. Bytes
from the client are cut into MongoDB wire messages (each starts with its total length,
a 4-byte little-endian int32) and each whole message is forwarded `delay` seconds after
its last byte arrived; replies from the server go back at once. Messages of one
connection keep their order, and a message never waits for the delay of the one before
it (a pipeline per connection, not a sleep per message), so a pymongo pool of 64
connections sees 64 independent 50 ms links. A stream whose first bytes are not a
plausible wire header is delayed per chunk read instead (`framing="chunk"` forces that).

Runs an asyncio loop in one daemon thread of the calling process: `start()` returns
once the port accepts connections; `stop()` closes every connection and the listener.
Only loopback addresses: it is test support, never a network service.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Literal, Self
from urllib.parse import urlsplit, urlunsplit

HEADER = struct.Struct("<i")
MIN_MESSAGE = 16  # the wire header: length, requestID, responseTo, opCode
MAX_MESSAGE = 48 * 1024 * 1024  # maxMessageSizeBytes
READ_SIZE = 64 * 1024
LOOPBACK = ("127.0.0.1", "localhost", "::1")

Framing = Literal["mongodb", "chunk"]


def parse_target(uri: str) -> tuple[str, int]:
    """(host, port) of a single-host `mongodb://` URI on loopback; ValueError otherwise."""
    parts = urlsplit(uri)
    if parts.scheme != "mongodb":
        raise ValueError(f"only a mongodb:// URI can be proxied, not {parts.scheme}://")
    hosts = parts.netloc.rpartition("@")[2]
    if "," in hosts:
        raise ValueError("only a single-host URI can be proxied")
    host, _, port = hosts.rpartition(":")
    if not host:
        host, port = hosts, "27017"
    host = host.strip("[]")
    if host not in LOOPBACK:
        raise ValueError(f"only a loopback target can be proxied, not {host}")
    return host, int(port)


def with_address(uri: str, host: str, port: int) -> str:
    """`uri` pointed at host:port instead (credentials, path and options kept)."""
    parts = urlsplit(uri)
    credentials, at, _ = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{credentials}{at}{host}:{port}"))


class LatencyProxy:
    """See the module docstring. Safe to read `stats()` and set `delay` from any thread."""

    def __init__(self, target_host: str, target_port: int, delay: float = 0.05, *, host: str = "127.0.0.1",
                 port: int = 0, framing: Framing = "mongodb", target_uri: str | None = None):
        if host not in LOOPBACK or target_host not in LOOPBACK:
            raise ValueError("the latency proxy only listens on and forwards to loopback addresses")
        self.target = (target_host, target_port)
        self.delay = delay
        self.host = host
        self.port = port  # 0: the kernel picks a free port, read back once listening
        self.framing: Framing = framing
        self.target_uri = target_uri
        self._counts: Counter[str] = Counter()
        self._active = 0
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @classmethod
    def for_uri(cls, uri: str, delay: float = 0.05, **options: object) -> LatencyProxy:
        """A proxy in front of the server of a single-host loopback `mongodb://` URI."""
        host, port = parse_target(uri)
        return cls(host, port, delay, target_uri=uri, **options)  # type: ignore[arg-type]

    @property
    def uri(self) -> str:
        """The target URI pointed at the proxy (needs `for_uri` or `target_uri`)."""
        if self.target_uri is None:
            raise ValueError("no target URI: build the proxy with LatencyProxy.for_uri")
        return with_address(self.target_uri, self.host, self.port)

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> Self:
        if self._thread is not None:
            raise RuntimeError("the proxy is already started")
        self._ready.clear()
        self._error = None
        self._tasks.clear()
        self._thread = threading.Thread(target=self._serve, name=f"latency-proxy-{self.target[1]}", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the latency proxy did not start within 10 s")
        if self._error is not None:
            raise RuntimeError("the latency proxy could not listen") from self._error
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if not loop.is_closed():
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        thread.join(10)
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stats(self) -> dict[str, int]:
        """connections (accepted), active, maxActive, messages (client messages delayed),
        chunks (client reads delayed whole, unframed), bytesUp, bytesDown, refused (target down)."""
        with self._lock:
            return {**{k: self._counts[k] for k in ("connections", "maxActive", "messages", "chunks", "bytesUp",
                                                    "bytesDown", "refused")}, "active": self._active}

    def reset_stats(self) -> None:
        with self._lock:
            self._counts.clear()
            self._counts["maxActive"] = self._active

    # --- the loop -------------------------------------------------------------------------

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._listen())
        except BaseException as exc:  # reported by start()
            self._error = exc
            self._ready.set()
            loop.close()
            return
        loop.call_soon(self._ready.set)  # once the loop runs, so that stop() can always reach it
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port, backlog=256)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        assert self._server is not None and self._loop is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()
        self._loop.stop()

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        with self._lock:
            self._counts["connections"] += 1
            self._active += 1
            self._counts["maxActive"] = max(self._counts["maxActive"], self._active)
        server_writer: asyncio.StreamWriter | None = None
        try:
            try:
                server_reader, server_writer = await asyncio.open_connection(*self.target)
            except OSError:
                self._count("refused")
                return
            _no_delay(client_writer)
            _no_delay(server_writer)
            up = asyncio.create_task(self._client_to_server(client_reader, server_writer))
            down = asyncio.create_task(self._pipe(server_reader, client_writer))
            try:
                await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pump in (up, down):
                    pump.cancel()
                await asyncio.gather(up, down, return_exceptions=True)
        except asyncio.CancelledError:
            pass  # stop(): end quietly (asyncio logs a connection task that ends cancelled as an error)
        finally:
            for writer in (client_writer, server_writer):
                if writer is not None:
                    writer.close()
            with self._lock:
                self._active -= 1
            self._tasks.discard(task)

    async def _client_to_server(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Read whole messages, stamp when each arrived, and forward each once its delay is over."""
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
        sender = asyncio.create_task(self._send_when_due(queue, writer))
        try:
            await self._read_messages(reader, queue)
            await queue.put(None)
            await sender  # what was read before the client closed still goes through
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)

    async def _read_messages(self, reader: asyncio.StreamReader,
                             queue: asyncio.Queue[tuple[float, bytes] | None]) -> None:
        loop = asyncio.get_running_loop()
        framed = self.framing == "mongodb"
        while True:
            if not framed:
                chunk = await reader.read(READ_SIZE)
                if not chunk:
                    return
                self._count("chunks", bytesUp=len(chunk))
                await queue.put((loop.time() + self.delay, chunk))
                continue
            try:
                head = await reader.readexactly(HEADER.size)
            except asyncio.IncompleteReadError as partial:
                if partial.partial:
                    await queue.put((loop.time() + self.delay, partial.partial))
                return
            (length,) = HEADER.unpack(head)
            if not MIN_MESSAGE <= length <= MAX_MESSAGE:
                framed = False  # not the MongoDB wire protocol: delay per chunk from here on
                self._count("chunks", bytesUp=len(head))
                await queue.put((loop.time() + self.delay, head))
                continue
            try:
                body = await reader.readexactly(length - HEADER.size)
            except asyncio.IncompleteReadError as partial:
                await queue.put((loop.time() + self.delay, head + partial.partial))
                return
            self._count("messages", bytesUp=length)
            await queue.put((loop.time() + self.delay, head + body))

    @staticmethod
    async def _send_when_due(queue: asyncio.Queue[tuple[float, bytes] | None], writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        while (item := await queue.get()) is not None:
            due, data = item
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Server -> client, at once."""
        while chunk := await reader.read(READ_SIZE):
            self._count(bytesDown=len(chunk))
            writer.write(chunk)
            await writer.drain()

    def _count(self, name: str | None = None, **amounts: int) -> None:
        with self._lock:
            if name is not None:
                self._counts[name] += 1
            for key, value in amounts.items():
                self._counts[key] += value


def _no_delay(writer: asyncio.StreamWriter) -> None:
    """Nagle off: a delayed message must not then also wait for the peer's delayed ACK."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass


def median_seconds(call: Callable[[], object], repeat: int = 10) -> float:
    """Median seconds of `call()` over `repeat` calls (after one warm-up call)."""
    call()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    times.sort()
    return times[len(times) // 2]
