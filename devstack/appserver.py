"""Local app server: loads `api/**/*.py` by path and serves each `app` at its Vercel route.

Also serves the built UI (`ui/dist`) at `/`, the way Vercel serves the static output,
with the page's security headers (`lib.http.PAGE_HEADERS`, mirrored in vercel.json).
Errors the HTTP layer answers before any app runs (a header over 64 KiB, too many
headers, a garbled request line) are JSON error envelopes like every other error, and a
socket read timeout ends a connection whose headers or body stall.
Run as `python -m devstack.appserver --port 3000 [--read-timeout 30]`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import mimetypes
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from pathlib import Path
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Response

from lib.errors import AppError
from lib.http import PAGE_HEADERS, page_headers, storage_sources

ROOT = Path(__file__).resolve().parents[1]
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# Long enough for a slow upload's next packet, short enough that a stalled client cannot
# hold a server thread for good.
DEFAULT_READ_TIMEOUT_SECONDS = 30.0

# The codes of the errors that http.server answers itself, before the request reaches an app.
PROTOCOL_ERROR_CODES = {
    HTTPStatus.BAD_REQUEST: "BAD_REQUEST",
    HTTPStatus.REQUEST_TIMEOUT: "REQUEST_TIMEOUT",
    HTTPStatus.REQUEST_URI_TOO_LONG: "URI_TOO_LONG",
    HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE: "HEADERS_TOO_LARGE",
    HTTPStatus.NOT_IMPLEMENTED: "NOT_IMPLEMENTED",
    HTTPStatus.HTTP_VERSION_NOT_SUPPORTED: "HTTP_VERSION_NOT_SUPPORTED",
}


def load_routes(api_dir: Path) -> dict[str, WSGIApp]:
    """Map each Vercel route (`/api/batch/status`) to the `app` of its file."""
    if str(api_dir.parent) not in sys.path:
        sys.path.insert(0, str(api_dir.parent))
    routes: dict[str, WSGIApp] = {}
    for path in sorted(api_dir.rglob("*.py")):
        if path.name.startswith("_"):
            continue
        route = "/" + path.relative_to(api_dir.parent).with_suffix("").as_posix()
        module_name = "vercel_route_" + route.strip("/").replace("/", "_").replace("-", "_")
        spec = importlib.util.spec_from_file_location(module_name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        app = getattr(module, "app", None)
        if not callable(app):
            raise RuntimeError(f"{path} has no callable `app`")
        routes[route] = app
    return routes


class Router:
    """Dispatches `/api/...` to the route's app and everything else to the static UI."""

    def __init__(self, routes: dict[str, WSGIApp], static_dir: Path | None,
                 headers: Mapping[str, str] = PAGE_HEADERS):
        self.routes = routes
        self.static_dir = static_dir.resolve() if static_dir else None
        self.headers = headers  # the page's headers, its policy naming this stack's storage

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        return self._route(environ, _with_page_headers(start_response, self.headers))

    def _route(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        trimmed = path.rstrip("/") or "/"
        app = self.routes.get(trimmed)
        if app is not None:
            return app(environ, start_response)
        if path.startswith("/api/"):
            return _json_404(environ, start_response)
        return self._static(path)(environ, start_response)

    def _static(self, path: str) -> Response:
        if self.static_dir is None or not (self.static_dir / "index.html").exists():
            return Response("The UI is not built: run `npm --prefix ui run build`.\n", status=404, mimetype="text/plain")
        target = (self.static_dir / path.lstrip("/")).resolve()
        if not target.is_relative_to(self.static_dir) or not target.is_file():
            target = self.static_dir / "index.html"  # the page routes on the client
        mimetype = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        response = Response(target.read_bytes(), mimetype=mimetype)
        response.headers["Cache-Control"] = "no-cache" if target.name == "index.html" else "public, max-age=3600"
        return response


def _with_page_headers(start_response: Callable[..., Any],
                       page: Mapping[str, str] = PAGE_HEADERS) -> Callable[..., Any]:
    """Add the page headers an answer lacks, as vercel.json's `headers` does for every path."""

    def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        present = {name.lower() for name, _ in headers}
        extra = [(name, value) for name, value in page.items() if name.lower() not in present]
        return start_response(status, [*headers, *extra], exc_info)

    return start


def _json_404(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    body = b'{"error":{"code":"NO_SUCH_ROUTE","message":"No such endpoint."}}'
    start_response("404 NOT FOUND", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


class QuietHandler(WSGIRequestHandler):
    """werkzeug's handler with a socket read timeout and JSON protocol errors."""

    # socketserver's StreamRequestHandler sets it on the connection: a read that waits
    # longer raises, which werkzeug's input stream turns into ClientDisconnected (a 400
    # CLIENT_DISCONNECTED from lib.http) mid-body, and a closed connection mid-headers.
    timeout: float | None = DEFAULT_READ_TIMEOUT_SECONDS

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # the endpoints log one line per request themselves

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Answer a protocol error as our JSON envelope, not http.server's HTML page.

        The message is the status's standard explanation: `message` and `explain` may
        quote the client's request line, which an error page should not echo.
        """
        phrase, explanation = self.responses.get(code, ("Error", "The request could not be handled."))
        self.log_error("code %d, message %s", code, message or phrase)
        error = AppError(explanation, code=PROTOCOL_ERROR_CODES.get(code, "HTTP_ERROR"))
        body = json.dumps(error.to_body()).encode()
        self.send_response(code, phrase)
        self.send_header("Connection", "close")  # the request could not be read: the stream is lost
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def make_app_server(host: str, port: int, app: WSGIApp, *,
                    read_timeout: float = DEFAULT_READ_TIMEOUT_SECONDS) -> BaseWSGIServer:
    """A threaded werkzeug server for `app` whose connections time out after `read_timeout` s idle."""
    handler = type("TimedHandler", (QuietHandler,), {"timeout": read_timeout})
    return make_server(host, port, app, threaded=True, request_handler=handler)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--static", default=str(ROOT / "ui" / "dist"))
    parser.add_argument("--read-timeout", type=float, default=DEFAULT_READ_TIMEOUT_SECONDS,
                        help="seconds a connection may stall mid-request before it is ended")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # The page may post files straight to this stack's storage (moto's server locally).
    storage = storage_sources(os.environ.get("S3_ENDPOINT_URL"), os.environ.get("S3_BUCKET"),
                              os.environ.get("S3_REGION") or os.environ.get("AWS_REGION"))
    router = Router(load_routes(ROOT / "api"), Path(args.static), page_headers(storage))
    server = make_app_server(args.host, args.port, router, read_timeout=args.read_timeout)
    print(f"app server listening on http://{args.host}:{server.server_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
