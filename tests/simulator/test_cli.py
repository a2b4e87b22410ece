"""`runner simulate` as a user runs it: prints its base URLs, streams at the pace it was given, and
Ctrl-C stops it cleanly."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import click.testing
import pytest

from runner.cli import cli
from runner.simulator.emitters import names
from tests.conftest import http_request, parse_raw
from tests.simulator.test_faults import token_events

# Slow (left out by `-m "not slow"`; CI runs them): `runner simulate` as a subprocess, signalled.
pytestmark = pytest.mark.slow


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_simulate_prints_urls_and_stops_on_signal(signum: signal.Signals) -> None:
    """The command announces every dialect's base URL, and a signal ends it with no traceback."""
    process = subprocess.Popen(
        [sys.executable, "-m", "runner", "simulate", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        dialects = names()
        lines = [process.stdout.readline() for _ in range(len(dialects) + 1)]
        for line, dialect in zip(lines, dialects, strict=False):
            assert line.startswith(f"{dialect}: http://127.0.0.1:")
        assert lines[len(dialects)].strip() == "serving until Ctrl-C"
        process.send_signal(signum)
        out, err = process.communicate(timeout=10)
    finally:
        process.kill()
        process.wait(timeout=10)
    assert process.returncode == 0
    assert "simulator stopped" in out
    assert "Traceback" not in err


PACE = ("--output-tokens", "5", "--ttft", "0.1", "--gap", "0.05")


def _timed_stream(port: int) -> tuple[float, list[tuple[float, int]]]:
    """Stream one openai-chat answer; (request sent, [(arrival, token events so far)] per read)."""
    request = http_request(
        "/v1/chat/completions",
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True},
    )
    data = bytearray()
    reads: list[tuple[float, int]] = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sent = time.monotonic()
        sock.sendall(request)
        while piece := sock.recv(65536):
            data += piece
            reads.append((time.monotonic(), len(token_events("openai-chat", parse_raw(bytes(data))))))
    return sent, reads


def test_simulate_streams_n_tokens_at_a_fixed_pace() -> None:
    """--output-tokens 5 --ttft 0.1 --gap 0.05: five content events, the first 0.1 s after the request,
    then one every 0.05 s (a known ideal any client can be measured against)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "runner", "simulate", "--port", "0", "--dialect", "openai-chat", *PACE],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().split(": ", 1)[1].strip()
        sent, reads = _timed_stream(int(base_url.rsplit(":", 1)[1].split("/")[0]))
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=10)
    assert reads[-1][1] == 5
    # When token N was first read: never before TTFT + (N - 1) gaps after the request (a late read can
    # only make it later), and the last one not much after (generous: the cores are shared).
    firsts = [next(at for at, count in reads if count >= n) for n in range(1, 6)]
    assert all(at - sent >= 0.1 + n * 0.05 - 0.002 for n, at in enumerate(firsts)), firsts
    assert firsts[-1] - sent < 0.1 + 4 * 0.05 + 0.2


def _forked_children(pid: int) -> list[int]:
    return [
        int(c)
        for task in Path(f"/proc/{pid}/task").iterdir()
        for c in (task / "children").read_text().split()
    ]


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc (Linux)")
def test_simulate_serves_with_several_workers_and_stops_them_all() -> None:
    """--workers 3: two more processes serve the port; streams come whole; Ctrl-C stops every one."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "runner",
            "simulate",
            "--port",
            "0",
            "--dialect",
            "openai-chat",
            "--workers",
            "3",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().split(": ", 1)[1].strip()
        workers = _forked_children(process.pid)
        answers = [_timed_stream(int(base_url.rsplit(":", 1)[1].split("/")[0]))[1] for _ in range(6)]
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
    finally:
        process.kill()
        process.wait(timeout=10)
    assert len(workers) == 2
    assert all(reads[-1][1] > 0 for reads in answers)  # every stream got its tokens, whoever served it
    assert process.returncode == 0
    assert "simulator stopped" in out
    assert "Traceback" not in err
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)  # waited for: none left behind


def test_simulate_refuses_a_gap_given_twice() -> None:
    """--gap and --latency gap=... together are a usage error (exit 2) that names both."""
    result = click.testing.CliRunner().invoke(cli, ["simulate", "--gap", "0.1", "--latency", "gap=0.2"])
    assert result.exit_code == 2
    assert "--gap and --latency gap=... both set gap: give it once" in result.output
