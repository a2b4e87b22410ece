"""The body of ``runner simulate``: serve until cancelled, announcing the base URLs once bound."""

from __future__ import annotations

import functools
import signal
from typing import TYPE_CHECKING

import trio

from runner.simulator.server import SimulatorHandle, serve_simulator

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from runner.simulator.config import SimulatorConfig


async def run_simulator(
    config: SimulatorConfig, host: str, port: int, dialects: Sequence[str], echo: Callable[[str], None]
) -> None:
    """Serve ``config`` on ``host:port``, print each dialect's base URL when ready, and return at the
    first SIGINT or SIGTERM.

    The signals are received here (not left to become KeyboardInterrupt, which trio would deliver
    wrapped in an exception group through the nursery) so that stopping is a normal return.
    """
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            serve = functools.partial(serve_simulator, config, host=host, port=port)
            handle: SimulatorHandle = await nursery.start(serve)
            for dialect in dialects:
                echo(f"{dialect}: {handle.base_url(dialect)}")
            echo("serving until Ctrl-C")
            async for _ in signals:
                nursery.cancel_scope.cancel()
                break
