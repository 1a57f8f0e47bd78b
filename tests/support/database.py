"""A SecantusDB child process for the test run (or an external MongoDB from MONGODB_URI).

`restart()` brings it back on the same port with the same data (the benchmark uses it).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pymongo

from devstack.stack import free_port


class DatabaseServer:
    def __init__(self, external_uri: str | None, storage: Path):
        self.external_uri = external_uri
        self.storage = storage
        self.process: subprocess.Popen | None = None
        self.port = 0
        self.uri = external_uri or ""

    def start(self) -> None:
        if self.external_uri:
            return
        self.port = self.port or free_port()
        self.uri = f"mongodb://127.0.0.1:{self.port}/?directConnection=true"
        self.log = open(self.storage / "secantus.log", "ab")
        self.process = subprocess.Popen(
            [str(Path(sys.executable).with_name("secantusd-py")), "--host", "127.0.0.1", "--port", str(self.port),
             "--storage-path", str(self.storage / "data"), "--log-level", "WARNING"],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                with pymongo.MongoClient(self.uri, serverSelectionTimeoutMS=500) as client:
                    client.ready.probe.replace_one({"_id": 1}, {"_id": 1}, upsert=True)
                return
            except pymongo.errors.PyMongoError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("SecantusDB did not start; see secantus.log") from None
                time.sleep(0.2)

    def restart(self) -> None:
        if self.external_uri:
            return
        self.stop()
        self.start()

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None
