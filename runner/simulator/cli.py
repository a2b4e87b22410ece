"""The body of ``runner simulate``: serve until cancelled, announcing the base URLs once bound."""

from __future__ import annotations

import functools
import os
import signal
from typing import TYPE_CHECKING

import trio

from runner.simulator.server import SimulatorHandle, serve_simulator
from runner.simulator.workers import fork_workers, listen_sockets

if TYPE_CHECKING:
    import socket
    from collections.abc import Callable, Sequence

    from runner.simulator.config import SimulatorConfig


def start_workers(config: SimulatorConfig, host: str, port: int, workers: int) -> tuple[socket.socket, int]:
    """Bind ``host:port`` ``workers`` times (SO_REUSEPORT) and fork ``workers - 1`` processes serving
    ``config`` (``runner.simulator.workers``); call it before ``trio.run``.

    Returns this process's listening socket (for ``run_simulator``) and the pipe end to close when it
    stops, which stops the others.

    Raises:
        OSError: the port cannot be bound.
        ValueError: no SO_REUSEPORT on this system.
    """
    bound = listen_sockets(host, [port], workers)
    return bound[0][0], fork_workers([config], bound[1:])


def stop_workers(stop_fd: int, workers: int) -> None:
    """Close the workers' pipe and wait for the ``workers - 1`` forked ones to exit."""
    os.close(stop_fd)
    for _ in range(workers - 1):
        os.wait()


async def run_simulator(
    config: SimulatorConfig,
    host: str,
    port: int,
    dialects: Sequence[str],
    echo: Callable[[str], None],
    sock: socket.socket | None = None,
) -> None:
    """Serve ``config`` on ``host:port`` (or on ``sock``, bound by ``start_workers``), print each
    dialect's base URL when ready, and return at the first SIGINT or SIGTERM.

    The signals are received here (not left to become KeyboardInterrupt, which trio would deliver
    wrapped in an exception group through the nursery) so that stopping is a normal return.
    """
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            serve = functools.partial(serve_simulator, config, host=host, port=port, sock=sock)
            handle: SimulatorHandle = await nursery.start(serve)
            for dialect in dialects:
                echo(f"{dialect}: {handle.base_url(dialect)}")
            echo("serving until Ctrl-C")
            async for _ in signals:
                nursery.cancel_scope.cancel()
                break
