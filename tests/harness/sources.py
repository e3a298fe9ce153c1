"""jemalloc sources offered to the buildpack in place of GitHub, with faults on demand.

GitHub is unreachable from the test machines, so the tests point JEMALLOC_SOURCE_URL at a
loopback HTTP server that serves ../shared/jemalloc/fixtures. The first path segment of a URL
picks the behaviour, so that tests running at once never switch each other's faults:

    /ok/NAME          the file
    /404/NAME         404 Not Found
    /500/NAME         500 Internal Server Error
    /truncated/NAME   announces the full length, sends half, closes the connection
    /wrong-body/NAME  the right length of the wrong bytes
    /slow/NAME        headers and a few bytes, then nothing for SLOW_STALL_SECONDS

A query string is ignored, as a signed URL's server would check and drop it.

The compile containers share the host's network namespace, so 127.0.0.1 is this server. The
fixtures are also mounted into the compile containers for file:// URLs (see file_url).
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from .paths import JEMALLOC_FIXTURES

FAULTS = ("ok", "404", "500", "truncated", "wrong-body", "slow")
SLOW_STALL_SECONDS = 60
FIXTURES_MOUNT = "/srv/jemalloc-fixtures"


class SourceServer:
    def __init__(self, fixtures: Path = JEMALLOC_FIXTURES):
        self.fixtures = fixtures
        self.requests: list[str] = []
        # Files made by a test (e.g. a source that does not compile), served like the fixtures.
        self.extra_files: dict[str, bytes] = {}
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> "SourceServer":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def url(self, name: str, fault: str = "ok") -> str:
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; known: {FAULTS}")
        return f"http://127.0.0.1:{self.port}/{fault}/{name}"

    def requests_for(self, url: str) -> int:
        path = url.split(str(self.port), 1)[1]
        return sum(1 for request in self.requests if request == path)

    @staticmethod
    def file_url(name: str) -> str:
        return f"file://{FIXTURES_MOUNT}/{name}"

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep pytest's output clean
                pass

            def do_GET(self) -> None:
                server.requests.append(self.path)
                # A query string (a signed URL's signature, a token) names no other file.
                _, fault, name = (self.path.split("?", 1)[0].split("/", 2) + ["", ""])[:3]
                path = server.fixtures / name
                if name in server.extra_files:
                    body = server.extra_files[name]
                elif fault in FAULTS and "/" not in name and name and path.is_file():
                    body = path.read_bytes()
                else:
                    body = None
                if body is None:
                    self._respond(404, b"not found\n")
                elif fault == "404":
                    self._respond(404, b"not found\n")
                elif fault == "500":
                    self._respond(500, b"internal error\n")
                else:
                    self._send_file(fault, body)

            def _respond(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _send_file(self, fault: str, body: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if fault == "ok":
                    self.wfile.write(body)
                elif fault == "wrong-body":
                    self.wfile.write(bytes(reversed(body)))
                elif fault == "truncated":
                    self.wfile.write(body[: len(body) // 2])
                    self.close_connection = True
                elif fault == "slow":
                    self.wfile.write(body[:1024])
                    self.wfile.flush()
                    server._stopping.wait(SLOW_STALL_SECONDS)
                    self.close_connection = True

        return Handler
