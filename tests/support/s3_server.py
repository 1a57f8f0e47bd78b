"""moto's S3 server over real HTTP on a free port, in a thread of the test process.

`stop()` closes its socket (so clients get "connection refused", as with storage down)
and `start()` brings it back on the same port; the objects survive, since moto keeps
them in this process. The service reaches it through S3_ENDPOINT_URL like any S3.
"""

from __future__ import annotations

import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

from devstack.stack import free_port
from lib.storage import Storage

BUCKET = "ai-answers-test"
PAGE_ORIGIN = "http://127.0.0.1:3000"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}


class _QuietHandler(MotoRequestHandler):
    def log_request(self, *args: object, **kwargs: object) -> None:  # one line per request otherwise
        pass


class S3Server:
    def __init__(self, port: int = 0):
        self.port = port or free_port()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> S3Server:
        self._server = make_server("127.0.0.1", self.port, DomainDispatcherApplication(create_backend_app),
                                   threaded=True, request_handler=_QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        assert self._thread is not None
        self._thread.join(timeout=10)
        self._server = None

    def env(self, bucket: str = BUCKET) -> dict[str, str]:
        """The settings that point the service at this server's bucket."""
        return {"S3_BUCKET": bucket, "S3_ENDPOINT_URL": self.url, "S3_REGION": "us-east-1", **CREDENTIALS}

    def storage(self, bucket: str = BUCKET) -> Storage:
        return Storage(bucket, region="us-east-1", endpoint_url=self.url,
                       credentials={"aws_access_key_id": "test", "aws_secret_access_key": "test"})

