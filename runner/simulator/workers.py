"""Several simulator processes sharing each port (SO_REUSEPORT), one trio loop each.

One trio loop paces about 60,000 events a second on this kind of machine (~15 us of CPU each, one pacer
task sending every stream's due writes: ``runner.simulator.pacer``); loads beyond that, or whose
per-request work (accepting, parsing, planning answers) is heavy, can use more processes. With
``workers`` > 1 every port is bound ``workers`` times with SO_REUSEPORT (Linux: the kernel spreads new
connections over the sockets) before any loop starts, ``workers - 1`` processes are forked off, and
each serves its own sockets. Forked before ``trio.run``: no loop or thread exists yet to be copied
half-way.

What a worker keeps is its own: a scripted fault by attempt number (``1=http_429``) counts the attempts
that reached that worker, and a retry on a new connection may reach another. So ``runner run`` serves
a job's simulators with one worker, and only load benchmarks ask for more.

Workers stop at the end of a pipe whose write end only their parent holds: when the parent stops, or
dies by SIGKILL, they see end of file and stop too. They ignore SIGINT, which a terminal sends to the
whole process group: the parent decides when they stop.
"""

from __future__ import annotations

import functools
import os
import signal
import socket
from typing import TYPE_CHECKING, Final

import trio

from runner.simulator.server import serve_simulator

if TYPE_CHECKING:
    from collections.abc import Sequence

    from runner.simulator.config import SimulatorConfig
    from runner.simulator.server import SimulatorHandle

# Connections queued before a worker accepts them: a client may open hundreds at once (the kernel
# caps it at net.core.somaxconn). Python's default would be 128.
_BACKLOG: Final = 4096


def listen_sockets(host: str, ports: Sequence[int], workers: int) -> list[list[socket.socket]]:
    """``workers`` lists of one listening socket per port; a port 0 takes the one the first bind got.

    Raises:
        OSError: a port cannot be bound (taken, or ``host`` is not ours).
        ValueError: ``workers`` > 1 where the system has no SO_REUSEPORT.
    """
    if workers > 1 and not hasattr(socket, "SO_REUSEPORT"):
        raise ValueError("several simulator workers need SO_REUSEPORT (Linux, BSD, macOS)")
    family = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0][0]
    bound: list[list[socket.socket]] = [[] for _ in range(workers)]
    try:
        for port in ports:
            at = port
            for sockets in bound:
                try:
                    sock = socket.create_server(
                        (host, at), family=family, backlog=_BACKLOG, reuse_port=workers > 1
                    )
                except OSError as exc:
                    # create_server appends "(while attempting to bind on address ...)": the port says it.
                    reason = (exc.strerror or str(exc)).split(" (while attempting", 1)[0]
                    raise OSError(f"port {port}: {reason}") from exc
                sockets.append(sock)
                at = sock.getsockname()[1]  # the other workers join the port the first one got
    except BaseException:
        for sock in (s for sockets in bound for s in sockets):
            sock.close()
        raise
    return bound


def fork_workers(configs: Sequence[SimulatorConfig], bound: Sequence[Sequence[socket.socket]]) -> int:
    """Fork a worker serving ``configs`` on each of ``bound`` (a list of sockets, one per config).

    Call it before any trio loop runs. Returns the write end of the pipe the workers stop at: close it
    to stop them (it closes when this process ends, however it ends). The sockets are closed here.
    """
    stop_read, stop_write = os.pipe()
    for sockets in bound:
        if os.fork() == 0:  # the worker
            status = 1
            try:
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                os.close(stop_write)
                trio.run(serve_until_eof, configs, sockets, stop_read)
                status = 0
            finally:
                os._exit(status)  # never return into the caller's code, nor run its atexit handlers
        for sock in sockets:
            sock.close()
    os.close(stop_read)
    return stop_write


async def serve_until_eof(
    configs: Sequence[SimulatorConfig],
    sockets: Sequence[socket.socket],
    stop_fd: int,
    *,
    task_status: trio.TaskStatus[list[SimulatorHandle]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve each config on its listening socket until end of file on ``stop_fd`` (nothing is read
    from it but that)."""
    stop = trio.lowlevel.FdStream(os.dup(stop_fd))
    async with stop, trio.open_nursery() as nursery:
        handles = []
        for config, sock in zip(configs, sockets, strict=True):
            handles.append(await nursery.start(functools.partial(serve_simulator, config, sock=sock)))
        task_status.started(handles)
        while await stop.receive_some():
            pass
        nursery.cancel_scope.cancel()
