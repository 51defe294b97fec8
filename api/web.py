"""The dashboard's files: the Vite build in `api/static/`, served by the API itself.

Vite names every asset after a hash of its content, so `/assets/*` is cached for a year (immutable);
`index.html` is never cached, so a new release is picked up on the next load. Every other GET path
that is not the API's is a route of the app in the browser and answers `index.html` (deep links and
reloads work). Nothing is loaded from another origin: the Content-Security-Policy says so to the browser.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, current_app, send_from_directory
from werkzeug.routing import BaseConverter

STATIC_DIR = Path(__file__).parent / "static"
IMMUTABLE = "public, max-age=31536000, immutable"
MIME_TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm", ".css": "text/css",
              ".json": "application/json", ".svg": "image/svg+xml", ".map": "application/json"}
# Same origin only. 'wasm-unsafe-eval' lets the page compile WebAssembly (onnxruntime-web); inline style
# attributes are what charting and canvas code set.
CSP = ("default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data: blob:; connect-src 'self'; worker-src 'self' blob:; font-src 'self'; "
       "object-src 'none'; base-uri 'self'; frame-ancestors 'none'; form-action 'self'")
NOT_BUILT = """<!doctype html><meta charset="utf-8"><title>loopline</title>
<h1>The dashboard is not built</h1>
<p>Run <code>make run</code> (it builds it), or <code>cd web &amp;&amp; npm ci &amp;&amp; npm run build</code>.
The API is at <a href="/api/openapi.json">/api/openapi.json</a>.</p>
"""


class ClientRoute(BaseConverter):
    """Any path but the server's own (the API, Socket.IO, metrics): those keep their JSON 404 and 405."""

    regex = r"(?!(?:api|socket\.io|metrics)(?:/|$))[^\x00]*"
    part_isolating = False


bp = Blueprint("web", __name__)


def register_web(app) -> None:
    app.url_map.converters["client_route"] = ClientRoute
    app.register_blueprint(bp)


def _headers(response: Response, cache: str) -> Response:
    response.headers["Cache-Control"] = cache
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = CSP
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def _file(name: str, cache: str) -> Response:
    mimetype = MIME_TYPES.get(Path(name).suffix.lower())
    return _headers(send_from_directory(STATIC_DIR, name, mimetype=mimetype, max_age=None), cache)


@bp.get("/assets/<path:name>", endpoint="asset")
def asset(name: str) -> Response:
    """A hashed build file; a missing one is a 404 (never index.html, which would run as the wrong type)."""
    return _file(f"assets/{name}", IMMUTABLE)


@bp.get("/", endpoint="index", defaults={"path": ""})
@bp.get("/<client_route:path>", endpoint="index")
def index(path: str) -> Response:
    """A file at the build's top level (favicon), else `index.html` for the app's own routes."""
    if path and "/" not in path and (STATIC_DIR / path).is_file() and path != "index.html":
        return _file(path, "public, max-age=3600")
    if not (STATIC_DIR / "index.html").is_file():
        current_app.logger.warning("the dashboard is not built (%s/index.html is missing)", STATIC_DIR)
        return _headers(Response(NOT_BUILT, 503, mimetype="text/html"), "no-store")
    return _file("index.html", "no-cache")
