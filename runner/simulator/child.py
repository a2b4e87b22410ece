"""The simulator's child process (``python -m runner.simulator.child``), started by
``runner.simulator.process``.


Reads its pickled ``(configs, host, ports, workers)`` from stdin, binds each config's port (``workers``
times, SO_REUSEPORT, when more than one: ``runner.simulator.workers``), answers one JSON line on stdout
with the bound ports (or the error that kept one from binding), serves, and stops at the end of stdin
(its forked workers with it). ``trio.run`` here is the one stated exception to "``trio.run`` only in
the CLI": this is a process entry point.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import sys
from typing import Any

import trio

from runner.simulator.workers import fork_workers, listen_sockets, serve_until_eof


def main() -> None:
    # The parent decides when this process stops (end of stdin); a stray SIGINT must not cut a run's
    # provider off under it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    size = int.from_bytes(_read_exactly(0, 8), "big")
    configs, host, ports, workers = pickle.loads(_read_exactly(0, size))
    try:
        bound = listen_sockets(host, ports, workers)
    except (OSError, ValueError) as exc:
        _say({"error": str(exc)})
        return
    # Bound and listening before any worker starts: a client may connect as soon as it reads the ports.
    stop_workers = fork_workers(configs, bound[1:])
    _say({"ports": [sock.getsockname()[1] for sock in bound[0]]})
    try:
        trio.run(serve_until_eof, configs, bound[0], 0)  # this process is a worker too, until end of stdin
    finally:
        os.close(stop_workers)  # the other workers stop at end of their pipe
        for _ in bound[1:]:
            os.wait()


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
