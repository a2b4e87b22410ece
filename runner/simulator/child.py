"""The simulator's child process (``python -m runner.simulator.child``), started by
``runner.simulator.process``.


Reads its pickled ``(configs, host, ports)`` from stdin, serves each config on its port, answers one
JSON line on stdout with the bound ports (or the error that kept one from binding), and stops at the
end of stdin. ``trio.run`` here
is the one stated exception to "``trio.run`` only in the CLI": this is a process entry point.
"""

from __future__ import annotations

import functools
import json
import os
import pickle
import signal
import sys
from typing import TYPE_CHECKING, Any

import trio

from runner.simulator.server import serve_simulator

if TYPE_CHECKING:
    from runner.simulator.config import SimulatorConfig


def main() -> None:
    # The parent decides when this process stops (end of stdin); a stray SIGINT must not cut a run's
    # provider off under it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    size = int.from_bytes(_read_exactly(0, 8), "big")
    configs, host, ports = pickle.loads(_read_exactly(0, size))
    trio.run(_serve, configs, host, ports)


async def _serve(configs: list[SimulatorConfig], host: str, ports: list[int]) -> None:
    stdin = trio.lowlevel.FdStream(os.dup(0))
    async with stdin, trio.open_nursery() as nursery:
        bound = []
        for config, port in zip(configs, ports, strict=True):
            try:
                handle = await nursery.start(functools.partial(serve_simulator, config, host=host, port=port))
            except OSError as exc:
                _say({"error": f"port {port}: {exc}"})
                nursery.cancel_scope.cancel()
                return
            bound.append(handle.port)
        _say({"ports": bound})
        while await stdin.receive_some():
            pass  # nothing more is sent: only the end of stdin matters
        nursery.cancel_scope.cancel()


def _read_exactly(fd: int, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        piece = os.read(fd, size - len(data))
        if not piece:
            raise SystemExit(1)  # the parent went away before it finished the handshake
        data += piece
    return bytes(data)


def _say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
