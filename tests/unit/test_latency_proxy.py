"""The latency proxy (tests/support/latency_proxy.py) adds its delay per client message, keeps
order, passes bytes intact and serves many connections at once.

The framing tests use a local echo server; the pymongo tests use the run's SecantusDB.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pymongo
import pytest

from tests.support.database import DatabaseServer
from tests.support.latency_proxy import LatencyProxy, median_seconds, parse_target, with_address

DELAY = 0.05


def wire_message(request_id: int, payload: bytes) -> bytes:
    """A message framed like the MongoDB wire protocol (header: length, requestID, responseTo, opCode)."""
    return struct.pack("<iiii", 16 + len(payload), request_id, 0, 2013) + payload


class EchoServer:
    """Answers every byte it reads with the same bytes, at once."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> EchoServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)


def read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, "connection closed early"
        data += chunk
    return data


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    with EchoServer() as server:
        yield server


def test_a_message_sent_in_pieces_waits_once_and_arrives_whole(echo: EchoServer) -> None:
    message = wire_message(1, b"x" * 100_000)
    with LatencyProxy("127.0.0.1", echo.port, DELAY) as proxy, \
            socket.create_connection(("127.0.0.1", proxy.port)) as sock:
        started = time.perf_counter()
        for start in range(0, len(message), 7000):  # a message split across many writes
            sock.sendall(message[start:start + 7000])
            time.sleep(0.002)
        assert read_exactly(sock, len(message)) == message
        elapsed = time.perf_counter() - started
        assert proxy.stats()["messages"] == 1
    assert DELAY <= elapsed < DELAY + 0.5


def test_messages_keep_their_order_and_do_not_add_up_their_delays(echo: EchoServer) -> None:
    messages = [wire_message(n, f"payload {n}".encode() * (n + 1)) for n in range(40)]
    with LatencyProxy("127.0.0.1", echo.port, DELAY) as proxy, \
            socket.create_connection(("127.0.0.1", proxy.port)) as sock:
        started = time.perf_counter()
        sock.sendall(b"".join(messages))  # pipelined: one write, forty messages
        assert read_exactly(sock, sum(map(len, messages))) == b"".join(messages)
        elapsed = time.perf_counter() - started
        assert proxy.stats()["messages"] == 40
    assert DELAY <= elapsed < 20 * DELAY  # each waiting for the one before it: 40 x DELAY


def test_unframed_bytes_are_delayed_per_chunk(echo: EchoServer) -> None:
    with LatencyProxy("127.0.0.1", echo.port, DELAY) as proxy, \
            socket.create_connection(("127.0.0.1", proxy.port)) as sock:
        started = time.perf_counter()
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")  # not a wire header: a length of 542,393,671 bytes
        assert read_exactly(sock, 18) == b"GET / HTTP/1.0\r\n\r\n"
        assert time.perf_counter() - started >= DELAY
        assert proxy.stats()["chunks"] >= 1


def test_a_target_that_is_down_closes_the_client_connection() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    with LatencyProxy("127.0.0.1", dead_port, DELAY) as proxy, \
            socket.create_connection(("127.0.0.1", proxy.port)) as sock:
        sock.settimeout(5)
        assert sock.recv(1) == b""
        time.sleep(0.05)
        assert proxy.stats()["refused"] == 1


def test_only_loopback_uris() -> None:
    assert parse_target("mongodb://127.0.0.1:27018/?directConnection=true") == ("127.0.0.1", 27018)
    assert with_address("mongodb://u:p@127.0.0.1:1/db?x=1", "127.0.0.1", 2) == "mongodb://u:p@127.0.0.1:2/db?x=1"
    for uri in ("mongodb+srv://cluster.example.net", "mongodb://10.0.0.1:27017", "mongodb://a:1,b:2"):
        with pytest.raises(ValueError):
            parse_target(uri)
    with pytest.raises(ValueError):
        LatencyProxy("0.0.0.0", 1, host="0.0.0.0")


# --- against the database -----------------------------------------------------------------


@pytest.fixture
def proxied(database_server: DatabaseServer) -> Iterator[LatencyProxy]:
    try:
        proxy = LatencyProxy.for_uri(database_server.uri, DELAY)
    except ValueError as exc:
        pytest.skip(f"MONGODB_URI cannot be proxied: {exc}")
    with proxy:
        yield proxy


def test_a_ping_through_the_proxy_takes_the_delay_longer(database_server: DatabaseServer,
                                                         proxied: LatencyProxy) -> None:
    with pymongo.MongoClient(database_server.uri, serverSelectionTimeoutMS=5000) as direct, \
            pymongo.MongoClient(proxied.uri, serverSelectionTimeoutMS=5000) as slow:
        direct_s = median_seconds(lambda: direct.admin.command("ping"))
        slow_s = median_seconds(lambda: slow.admin.command("ping"))
    added = slow_s - direct_s
    print(f"ping: direct {direct_s * 1000:.1f} ms, through the proxy {slow_s * 1000:.1f} ms (+{added * 1000:.1f} ms)")
    assert DELAY * 0.9 <= added < DELAY + 0.1


def test_a_pool_of_64_connections_runs_side_by_side(proxied: LatencyProxy, db_name: str) -> None:
    with pymongo.MongoClient(proxied.uri, maxPoolSize=64, serverSelectionTimeoutMS=5000) as client:
        collection = client[db_name].docs
        big = {"_id": "big", "blob": "z" * 2_000_000}  # several reads' worth, both ways
        collection.insert_one(big)
        assert collection.find_one({"_id": "big"}) == big
        proxied.reset_stats()

        def work(n: int) -> int:
            for turn in range(3):
                collection.insert_one({"_id": f"{n}-{turn}", "n": n})
            return collection.count_documents({"n": n})

        started = time.perf_counter()
        with ThreadPoolExecutor(64) as pool:
            counts = list(pool.map(work, range(64)))
        elapsed = time.perf_counter() - started
    stats = proxied.stats()
    assert counts == [3] * 64
    assert stats["maxActive"] >= 32, stats  # the pool really opened many connections at once
    # 64 x 4 round trips of >= 50 ms one after another would take 12.8 s.
    assert elapsed < 6.0, f"{elapsed:.1f} s for 256 commands on 64 connections"
