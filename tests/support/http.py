"""A local HTTP server for URL ingest tests: fixed routes, redirects, and a log of what it was asked."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Site:
    """Serves `routes` ({path: bytes} or {path: ("redirect", url)}) on host:port; records request paths."""

    def __init__(self, host: str = "127.0.0.1"):
        self.routes: dict[str, object] = {}
        self.requests: list[str] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                site.requests.append(self.path)
                route = site.routes.get(self.path)
                if isinstance(route, tuple) and route[0] == "redirect":
                    self.send_response(302)
                    self.send_header("Location", route[1])
                    self.end_headers()
                elif isinstance(route, bytes):
                    self.send_response(200)
                    self.send_header("Content-Type", "image/jpeg")
                    self.send_header("Content-Length", str(len(route)))
                    self.end_headers()
                    self.wfile.write(route)
                else:
                    self.send_error(404)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
