"""Local app server: loads `api/**/*.py` by path and serves each `app` at its Vercel route.

Also serves the built UI (`ui/dist`) at `/`, the way Vercel serves the static output.
Run as `python -m lib.dev.appserver --port 3000`.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import mimetypes
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Response

ROOT = Path(__file__).resolve().parents[2]
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


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

    def __init__(self, routes: dict[str, WSGIApp], static_dir: Path | None):
        self.routes = routes
        self.static_dir = static_dir.resolve() if static_dir else None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
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


def _json_404(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    body = b'{"error":{"code":"NO_SUCH_ROUTE","message":"No such endpoint."}}'
    start_response("404 NOT FOUND", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


class QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # the endpoints log one line per request themselves


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--static", default=str(ROOT / "ui" / "dist"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    router = Router(load_routes(ROOT / "api"), Path(args.static))
    server = make_server(args.host, args.port, router, threaded=True, request_handler=QuietHandler)
    print(f"app server listening on http://{args.host}:{server.server_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
