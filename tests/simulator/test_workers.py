"""Several simulator workers on one port (SO_REUSEPORT): each serves connections; none outlives its parent."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
from pathlib import Path

import pytest
import trio

from runner.simulator import SimulatorConfig
from runner.simulator.config import Dist
from runner.simulator.process import SimulatorProcess, SimulatorProcessError, serve_simulators_in_process
from tests.conftest import http_request
from tests.run.processes import wait_for

# Keep-alive: each connection stays open in the worker that accepted it, where /proc shows it.
REQUEST = http_request(
    "/v1/chat/completions",
    {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True},
).replace(b"connection: close", b"connection: keep-alive")
CONNECTIONS = 40


def _children(pid: int) -> list[int]:
    return [
        int(c)
        for task in Path(f"/proc/{pid}/task").iterdir()
        for c in (task / "children").read_text().split()
    ]


def _connections(pid: int, port: int) -> int:
    """How many established TCP connections to ``port`` ``pid`` holds (Linux: /proc's fd links and
    /proc/net/tcp)."""
    established = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "01":
            established.add(f"socket:[{fields[9]}]")
    held = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(FileNotFoundError):  # closed while listed
            held += os.readlink(fd) in established
    return held


def _is_gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


async def _open_and_ask(port: int, streams: list[trio.SocketStream]) -> None:
    """One keep-alive connection that got its whole answer, left open."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    streams.append(stream)
    await stream.send_all(REQUEST)
    data = b""
    while not data.endswith(b"0\r\n\r\n"):
        data += await stream.receive_some(65536)


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc (Linux)")
async def test_three_workers_share_the_port_and_each_serves() -> None:
    """workers=3: the child forks two more, the kernel spreads 40 connections over all three, and every
    worker holds some of them (the chance one gets none of 40 is 3 x (2/3)^40, about 3e-7)."""
    config = SimulatorConfig(output_tokens=Dist(a=3))
    async with trio.open_nursery() as nursery:
        handle, workers = await _start(nursery, config)
        streams: list[trio.SocketStream] = []
        with trio.fail_after(30):
            async with trio.open_nursery() as clients:
                for _ in range(CONNECTIONS):
                    clients.start_soon(_open_and_ask, handle.port, streams)
        held = {pid: _connections(pid, handle.port) for pid in workers}
        for stream in streams:
            await stream.aclose()
        nursery.cancel_scope.cancel()
    assert sum(held.values()) == CONNECTIONS
    assert all(n > 0 for n in held.values()), held
    await wait_for(lambda: all(_is_gone(pid) for pid in workers), within=10)  # none left behind


async def _start(nursery: trio.Nursery, config: SimulatorConfig) -> tuple[SimulatorProcess, list[int]]:
    (handle,) = await nursery.start(functools.partial(serve_simulators_in_process, [config], workers=3))
    workers = [handle.pid, *_children(handle.pid)]
    assert len(workers) == 3
    return handle, workers


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc (Linux)")
async def test_workers_stop_when_their_parent_is_killed() -> None:
    """A SIGKILLed simulator child takes its forked workers with it: their stop pipe ends."""
    serve = functools.partial(serve_simulators_in_process, [SimulatorConfig()], workers=2)
    workers: list[int] = []
    with pytest.RaisesGroup(pytest.RaisesExc(SimulatorProcessError, match="ended")), trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            (handle,) = await nursery.start(serve)
            workers.extend(_children(handle.pid))
            os.kill(handle.pid, signal.SIGKILL)
            await trio.sleep_forever()  # until the service finds its child dead
    assert len(workers) == 1
    await wait_for(lambda: _is_gone(workers[0]), within=10)
