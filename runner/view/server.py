"""Serving the viewer: werkzeug's threaded WSGI server on a loopback port until Ctrl-C or SIGTERM.

The viewer only reads: each request runs in a thread of its own (a few short SELECTs and a render), so
a blocking WSGI server is the whole stack; there is no trio in it and nothing to cancel but the loop.
"""

from __future__ import annotations

import signal
import socket
import threading
from typing import TYPE_CHECKING

from werkzeug.serving import make_server

from runner.view.app import Viewer

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import FrameType

    from runner.store.db import Database


class ViewServer:
    """A bound viewer server: ``url`` is known before ``serve_forever``; ``shutdown`` stops it."""

    def __init__(self, database: Database, *, host: str, port: int) -> None:
        """Bind ``host:port`` (0: any free port).

        Raises:
            OSError: the address is taken or not this machine's.
        """
        # We bind the socket ourselves: werkzeug, asked to bind a taken port, prints and exits the
        # process; ours raises OSError for the CLI to turn into one error line. werkzeug dups the fd.
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as listener:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((host, port))
            listener.listen(128)
            # threaded: a slow page (a large diff) must not hold up the others.
            self._server = make_server(host, port, Viewer(database), threaded=True, fd=listener.fileno())
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{self._server.socket.getsockname()[1]}/"

    def serve_forever(self) -> None:
        self._server.serve_forever(poll_interval=0.2)

    def shutdown(self) -> None:
        self._server.shutdown()

    def close(self) -> None:
        self._server.server_close()


def serve(database: Database, *, host: str, port: int, announce: Callable[[str], None]) -> None:
    """Serve ``database`` until SIGINT or SIGTERM; ``announce`` gets the URL once it is listening."""
    server = ViewServer(database, host=host, port=port)
    stopping = threading.Event()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        # serve_forever runs on this (the main) thread: shutdown() from here would wait for itself.
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        announce(server.url)
        server.serve_forever()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        server.close()
