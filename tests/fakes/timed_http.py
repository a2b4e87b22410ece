"""A loopback HTTP/1.1 server on a thread of its own that plays one script and logs when it sent each write.

For the timing-fidelity tests: the client's trio loop is blocked on purpose, so a server on that loop
(tests.fakes.scripted_http) would be blocked too, and send late. This one keeps time on its own thread
and notes ``time.monotonic()`` just before each write, the clock trio's runs use.
"""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

Step = bytes | float  # bytes to send in one write, or seconds to sleep


class TimedServer:
    """Answers the first request on 127.0.0.1 with ``script``; ``sent[i]`` is when write ``i`` went out."""

    def __init__(self, script: list[Step]) -> None:
        self.script = script
        self.sent: list[float] = []
        self.first_sent = threading.Event()  # the first write went out
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._thread = threading.Thread(target=self._serve, name="timed-http", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def _serve(self) -> None:
        self._listener.settimeout(10)  # a test that never connects must not keep the thread
        conn, _ = self._listener.accept()
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.settimeout(10)
            request = b""
            while b"\r\n\r\n" not in request:
                data = conn.recv(65536)
                if not data:
                    return
                request += data
            for step in self.script:
                if isinstance(step, float):
                    time.sleep(step)
                    continue
                self.sent.append(time.monotonic())
                conn.sendall(step)
                self.first_sent.set()
            # Wait for the client to close (scripts say "connection: close"): closing first could
            # turn bytes the client has not read yet into a reset.
            try:
                while conn.recv(65536):
                    pass
            except OSError:
                pass


@contextmanager
def timed_server(script: list[Step]) -> Iterator[TimedServer]:
    """A ``TimedServer`` serving ``script`` on its thread while the block runs."""
    server = TimedServer(script)
    server._thread.start()
    try:
        yield server
    finally:
        server._thread.join(15)
        server._listener.close()
