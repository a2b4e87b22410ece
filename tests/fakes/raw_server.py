"""A real HTTP/1.1 server on 127.0.0.1 that answers every POST with given SSE bytes, chunked.

Used where a client we do not control (the official SDKs in the differential test) must read a
fixture over a real socket: no transport mocks. It runs in a thread because the SDKs are sync.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: RawSSEServer

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.server.requests.append(self.rfile.read(length))
        body, read_size = self.server.body, self.server.read_size
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        for start in range(0, len(body), read_size):
            piece = body[start : start + read_size]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: test output is not the place for access logs."""


class RawSSEServer(ThreadingHTTPServer):
    """Serves ``body`` to every POST, cut into HTTP chunks of ``read_size`` bytes."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.body = b""
        self.read_size = 37  # an odd size, so events and UTF-8 sequences straddle chunks
        self.requests: list[bytes] = []

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


def serve_raw() -> Iterator[RawSSEServer]:
    """Run a RawSSEServer in a thread for the duration of a pytest fixture."""
    server = RawSSEServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
