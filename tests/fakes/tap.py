"""A recording TCP proxy on 127.0.0.1: forwards every connection to an upstream port and keeps the
bytes clients sent, exactly as they crossed the socket (what a server really received, credentials
included, unlike the simulator's own log, which strips them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import trio


@dataclass
class Tap:
    """Where the proxy listens, and everything clients sent through it."""

    port: int = 0
    received: bytearray = field(default_factory=bytearray)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"


async def serve_tap(
    upstream_port: int, *, task_status: trio.TaskStatus[Tap] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve the proxy until cancelled: ``tap = await nursery.start(serve_tap, port)``."""
    tap = Tap()
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    tap.port = listeners[0].socket.getsockname()[1]
    task_status.started(tap)
    await trio.serve_listeners(partial(_relay, tap, upstream_port), listeners)


async def _relay(tap: Tap, upstream_port: int, client: trio.SocketStream) -> None:
    server = await trio.open_tcp_stream("127.0.0.1", upstream_port)
    async with client, server, trio.open_nursery() as nursery:
        nursery.start_soon(_pump, client, server, tap.received, nursery.cancel_scope)
        nursery.start_soon(_pump, server, client, None, nursery.cancel_scope)


async def _pump(
    source: trio.SocketStream, sink: trio.SocketStream, record: bytearray | None, both: trio.CancelScope
) -> None:
    # Either side closing (or resetting) ends the whole relay: the other direction has no use left.
    try:
        while data := await source.receive_some(65536):
            if record is not None:
                record += data
            await sink.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    both.cancel()
