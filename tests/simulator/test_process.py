"""The simulator in a process of its own: on time while its client's loop is busy; started and stopped."""

from __future__ import annotations

import functools
import json
import os
import signal
import socket
import statistics
import sys
from pathlib import Path

import pytest
import trio

from runner.simulator import SimulatorConfig, parse_faults
from runner.simulator.config import Dist, Latency
from runner.simulator.process import SimulatorProcess, SimulatorProcessError, serve_simulators_in_process
from tests.busyloop import hog
from tests.conftest import http_request, raw_exchange
from tests.run.processes import start_runner, wait_for

TTFT = 0.06
REQUEST = http_request(
    "/v1/chat/completions",
    {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True},
)


# The clients run in a process of their own: threads of this one would wait for the GIL behind the
# hog (tests/busyloop.py), and measure that instead of the simulator.
_CLIENTS = """
import json, socket, sys, time
from concurrent.futures import ThreadPoolExecutor

port, n, request = int(sys.argv[1]), int(sys.argv[2]), sys.stdin.buffer.read()

def one(_):
    # The head (and the role event) go out in one write, the first token after the TTFT in the next.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sent = time.monotonic()
        sock.sendall(request)
        sock.recv(65536)
        sock.recv(65536)
        return time.monotonic() - sent

with ThreadPoolExecutor(16) as pool:
    print(json.dumps(list(pool.map(one, range(n)))))
"""


async def _times_to_first_token(port: int, n: int) -> list[float]:
    """Seconds from sending a request to reading its first token, for ``n`` requests 16 at a time."""
    done = await trio.run_process(
        [sys.executable, "-c", _CLIENTS, str(port), str(n)], stdin=REQUEST, capture_stdout=True
    )
    times: list[float] = json.loads(done.stdout)
    return times


def _is_gone(pid: int) -> bool:
    """The process exited (a zombie waiting for a reaper counts: it serves nothing)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def _simulator_children(pid: int) -> list[int]:
    """The simulator processes ``pid`` started (Linux: /proc's children lists)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"runner.simulator.child" in cmdline:
                found.append(int(child))
    return found


@pytest.mark.slow
async def test_ttft_stays_as_configured_while_the_callers_loop_is_busy(nursery: trio.Nursery) -> None:
    """With 100 ms task steps hogging the caller's loop, 16 concurrent clients still see the scripted TTFT."""
    config = SimulatorConfig(latency=Latency(ttft=Dist(a=TTFT)), output_tokens=Dist(a=3))
    (handle,) = await nursery.start(serve_simulators_in_process, [config])
    nursery.start_soon(hog, 0.1)
    with trio.fail_after(60):
        seen = await _times_to_first_token(handle.port, 32)
    nursery.cancel_scope.cancel()
    # Served from the hogged loop, every step of a response waited for the hog's steps (over 0.5 s
    # at the median, measured). Generous: the two cores are shared with the hog and other processes.
    assert min(seen) >= TTFT
    assert statistics.median(seen) < TTFT + 0.05, sorted(seen)


async def test_start_fails_with_one_clear_error_when_the_port_is_taken(nursery: trio.Nursery) -> None:
    """A port already bound makes ``nursery.start`` raise SimulatorProcessError naming the address."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        configs = [SimulatorConfig(), SimulatorConfig()]
        start = functools.partial(serve_simulators_in_process, configs, ports=[0, port])
        with (
            trio.fail_after(30),
            pytest.raises(SimulatorProcessError, match=f"127.0.0.1: port {port}: .*in use"),
        ):
            await nursery.start(start)


async def test_one_child_serves_each_config_on_its_port_until_cancelled() -> None:
    """Two configs, two ports, one process; cancelling returns once it exited and the ports are closed."""
    quick, faulty = SimulatorConfig(), SimulatorConfig(faults=parse_faults("1=http_503"))
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            handles: tuple[SimulatorProcess, ...] = await nursery.start(
                serve_simulators_in_process, [quick, faulty]
            )
            assert len({h.pid for h in handles}) == 1
            assert len({h.port for h in handles}) == 2
            assert handles[0].base_url("anthropic-messages") == handles[0].origin
            assert [(await raw_exchange(h.port, REQUEST)).status for h in handles] == [200, 503]
            nursery.cancel_scope.cancel()
        assert _is_gone(handles[0].pid)
        for handle in handles:
            with pytest.raises(OSError, match="onnect"):
                await trio.open_tcp_stream("127.0.0.1", handle.port)


async def test_a_child_that_dies_is_an_error_in_the_callers_nursery() -> None:
    """A simulator killed while serving raises SimulatorProcessError where the run can see it."""
    with trio.fail_after(30), pytest.RaisesGroup(pytest.RaisesExc(SimulatorProcessError, match="ended")):
        async with trio.open_nursery() as nursery:
            (handle,) = await nursery.start(serve_simulators_in_process, [SimulatorConfig()])
            os.kill(handle.pid, signal.SIGKILL)
            await trio.sleep_forever()


@pytest.mark.slow
@pytest.mark.parametrize(
    "signum", [pytest.param(signal.SIGINT, id="SIGINT"), pytest.param(signal.SIGKILL, id="SIGKILL")]
)
async def test_runner_run_leaves_no_simulator_behind(
    tmp_path: Path, nursery: trio.Nursery, signum: int
) -> None:
    """Ctrl-C stops `runner run`'s simulator with it; after kill -9 the simulator sees stdin end and exits."""
    job = tmp_path / "job.toml"
    job.write_text(
        'name = "sim"\n[defaults]\nrepeats = 40\n[[providers]]\nname = "sim"\ndialect = "openai-chat"\n'
        'model = "m"\nconcurrency = 2\nsimulator = { latency = "ttft=0.2" }\n'
        '[[cases]]\nid = "c"\nprompt = "hi"\n'
    )
    db = f"sqlite:///{tmp_path / 'runner.db'}"
    process = await start_runner(nursery, "run", str(job), "--db", db, "--report", "-", cwd=tmp_path)
    children: list[int] = []

    def started() -> bool:
        children[:] = _simulator_children(process.pid)
        return bool(children)

    await wait_for(started, within=30)
    process.send_signal(signum)
    await process.wait(within=15)
    await wait_for(lambda: all(_is_gone(pid) for pid in children), within=10)
