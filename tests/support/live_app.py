"""The app in-process over real HTTP: the route files served by the dev app server's
router on a free port, with the QStash dev server delivering signed steps to it.

Used by integration tests that need the whole path (upload -> queue -> process-step)
without child processes. The crash tests use the real child-process stack instead.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import requests
from werkzeug.serving import make_server

from devstack.appserver import QuietHandler, Router, load_routes
from devstack.qstash_server import QStashDevServer

ROOT = Path(__file__).resolve().parents[2]
FINAL = ("processed", "completed_with_errors", "cancelled", "failed")


class LiveApp:
    def __init__(self) -> None:
        self.qstash = QStashDevServer(port=0, backoff_scale=0.01)
        self._server = make_server("127.0.0.1", 0, Router(load_routes(ROOT / "api"), None), threaded=True,
                                   request_handler=QuietHandler)
        self.base_url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self.tokens: dict[str, str] = {}

    def start(self) -> LiveApp:
        self.qstash.start()
        self._thread.start()
        return self

    def stop(self) -> None:
        self.qstash.stop()
        self._server.shutdown()
        self._server.server_close()

    def env(self) -> dict[str, str]:
        return {"PUBLIC_BASE_URL": self.base_url, "QSTASH_URL": self.qstash.url}

    # --- client helpers -----------------------------------------------------------------

    def headers(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    def upload(self, user: str, content: bytes, filename: str = "questions.csv", **fields: Any) -> requests.Response:
        data = {"batchName": "test batch", "lang": "en", "aiProvider": "offline", "searchProvider": "offline"}
        data.update({k: str(v) for k, v in fields.items()})
        return requests.post(f"{self.base_url}/api/batch/create", files={"file": (filename, content)}, data=data,
                             headers=self.headers(user), timeout=30)

    def status(self, user: str, batch_id: str) -> dict[str, Any]:
        response = requests.get(f"{self.base_url}/api/batch/status", params={"batchId": batch_id},
                                headers=self.headers(user), timeout=10)
        response.raise_for_status()
        return response.json()

    def wait_final(self, user: str, batch_id: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            status = self.status(user, batch_id)
            if status["status"] in FINAL:
                return status
            if time.monotonic() > deadline:
                raise AssertionError(f"batch did not finish in {timeout} s: {status}")
            time.sleep(0.1)

    def results(self, user: str, batch_id: str, fmt: str = "json") -> requests.Response:
        return requests.get(f"{self.base_url}/api/batch/results", params={"batchId": batch_id, "format": fmt},
                            headers=self.headers(user), timeout=30)

    def cancel(self, user: str, batch_id: str) -> requests.Response:
        return requests.post(f"{self.base_url}/api/batch/cancel", json={"batchId": batch_id},
                             headers=self.headers(user), timeout=10)
