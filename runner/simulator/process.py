"""Simulators in a child process of their own, so their pacing never waits on their client's loop or GIL.

Served from ``runner run``'s own trio loop, a scripted pause ended only when that loop next got round to
the simulator's task: 0.06 s of configured TTFT read as 0.122 s at concurrency 32. A thread with a loop
of its own still shares the GIL, and every socket call it makes waits up to CPython's 5 ms switch
interval for a busy client thread to let go (benchmarks/bench_timing.py measured it worse than the
shared loop). A process has a core of its own and wakes on time, whatever the client is doing.

One child serves every simulator of a run, each config on a port of its own (one interpreter: about
30 MB and 0.3 s to start, however many simulated providers a job has). The handshake, over the child's
stdin and stdout (``runner.simulator.child``): the parent writes the pickled
``(configs, host, ports, workers)`` with a length prefix and keeps stdin open; the child binds and
answers one JSON line, ``{"ports": [N, ...]}`` or ``{"error": "..."}``; end of stdin stops it. So
the child also stops when the parent dies, even by SIGKILL, and it lives in a session of its own so
that a terminal's Ctrl-C reaches only the parent, which then stops the child after its own cleanup.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import trio

from runner.simulator.server import base_path

if TYPE_CHECKING:
    from collections.abc import Sequence

    from runner.simulator.config import SimulatorConfig

# A cold start imports trio and the emitters (about 0.3 s); a machine under load may take seconds.
READY_TIMEOUT_S: Final = 30.0
STOP_TIMEOUT_S: Final = 5.0  # after end of stdin; then the child is killed
_MAX_LINE: Final = 64 * 1024


class SimulatorProcessError(RuntimeError):
    """The simulators' process could not start, or ended while it was serving."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulatorProcess:
    """One simulator served by the child: ``serve_simulators_in_process`` starts with one per config."""

    host: str
    port: int
    pid: int

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    def base_url(self, dialect: str) -> str:
        """The base URL the dialect's official SDK takes (anthropic's has no /v1)."""
        return self.origin + base_path(dialect)


async def serve_simulators_in_process(
    configs: Sequence[SimulatorConfig],
    *,
    host: str = "127.0.0.1",
    ports: Sequence[int] | None = None,
    workers: int = 1,
    task_status: trio.TaskStatus[tuple[SimulatorProcess, ...]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """``serve_simulator`` for each config (on ``ports``, default ephemeral) in one child process, until
    cancelled; a trio service like it.

    ``workers`` > 1 serves every port from that many processes (SO_REUSEPORT, a trio loop each:
    ``runner.simulator.workers``), for loads one loop cannot pace; a scripted fault by attempt number
    then counts per worker, so jobs keep the default 1.

    ``started`` hands over one ``SimulatorProcess`` per config, in order. A child that cannot bind or
    start raises ``SimulatorProcessError`` from ``nursery.start``; one that dies later raises it in the
    caller's nursery. Cancelling this task ends the child (end of stdin, then a kill after
    ``STOP_TIMEOUT_S``) and waits for it, so the ports are closed when this returns.
    """
    ports = list(ports) if ports is not None else [0] * len(configs)
    if len(ports) != len(configs):
        raise ValueError(f"{len(configs)} configs but {len(ports)} ports")
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    payload = pickle.dumps((list(configs), host, ports, workers))
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "runner.simulator.child"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    try:
        try:
            with trio.fail_after(READY_TIMEOUT_S):
                await process.stdin.send_all(len(payload).to_bytes(8, "big") + payload)
                answer = await _read_line(process.stdout)
        except trio.BrokenResourceError:
            answer = b""  # it died before reading its config: its exit code says more
        except trio.TooSlowError:
            raise SimulatorProcessError(
                f"the simulator process did not answer within {READY_TIMEOUT_S:g} s"
            ) from None
        if not answer:
            code = await process.wait()
            raise SimulatorProcessError(f"the simulator process exited with code {code} before it was ready")
        said = json.loads(answer)
        if "error" in said:
            raise SimulatorProcessError(f"the simulator could not serve on {host}: {said['error']}")
        pid = process.pid
        task_status.started(tuple(SimulatorProcess(host=host, port=p, pid=pid) for p in said["ports"]))
        code = await process.wait()
        raise SimulatorProcessError(f"the simulator process ended with code {code} while it was serving")
    finally:
        # Shielded: this runs when the run ends or is cancelled (Ctrl-C), and must not leave the child
        # behind; bounded: a child that does not stop at end of stdin is killed.
        with trio.CancelScope(shield=True):
            await _stop(process)


async def _read_line(stream: trio.abc.ReceiveStream) -> bytes:
    """Bytes up to the first newline; b"" when the stream ended first."""
    data = bytearray()
    while b"\n" not in data and len(data) < _MAX_LINE:
        piece = await stream.receive_some()
        if not piece:
            return b""
        data += piece
    return bytes(data.split(b"\n", 1)[0])


async def _stop(process: trio.Process) -> None:
    if process.stdin is not None:
        await process.stdin.aclose()  # end of stdin: the child stops serving and exits
    with trio.move_on_after(STOP_TIMEOUT_S):
        await process.wait()
    if process.returncode is None:
        process.kill()
        await process.wait()
    if process.stdout is not None:
        await process.stdout.aclose()
