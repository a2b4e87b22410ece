"""The body of ``runner simulate``: serve until cancelled, announcing the base URLs once bound."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import trio

from runner.simulator.server import SimulatorHandle, serve_simulator

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from runner.simulator.config import SimulatorConfig


async def run_simulator(
    config: SimulatorConfig, host: str, port: int, dialects: Sequence[str], echo: Callable[[str], None]
) -> None:
    """Serve ``config`` on ``host:port`` and print each dialect's base URL when ready."""
    async with trio.open_nursery() as nursery:
        serve = functools.partial(serve_simulator, config, host=host, port=port)
        handle: SimulatorHandle = await nursery.start(serve)
        for dialect in dialects:
            echo(f"{dialect}: {handle.base_url(dialect)}")
        echo("serving until Ctrl-C")
