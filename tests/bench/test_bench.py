"""``runner bench``: a tiny load end to end through real processes, and the pure parts of the table."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from runner.bench.compare import (
    BenchLoad,
    BenchReport,
    ClientRow,
    format_report,
    parse_clients,
    parse_transports,
)
from runner.errors import ConfigError


def _bench(
    load: list[str], *, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``runner bench LOAD`` as a real process, its output as text."""
    return subprocess.run(
        [sys.executable, "-m", "runner", "bench", *load],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=env,
    )


@pytest.mark.slow
def test_bench_smoke_runner_and_httpx_verify_every_stream() -> None:
    """A 4 x 5 load through runner and bare httpx prints the table with every stream verified."""
    load = ["--streams=4", "--chunks=5", "--concurrency=2", "--clients=runner,httpx"]
    done = _bench(load)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "CPU us/chunk" in out
    assert "peak RSS MiB" in out
    for client in ("runner", "httpx"):
        row = re.search(rf"^{client}\s+(\d+)/(\d+)\s+(\d+)\s", out, re.MULTILINE)
        assert row is not None, out
        assert row.groups() == ("4", "4", "20")
    assert "runner / httpx CPU per chunk:" in out


@pytest.mark.slow
def test_bench_compares_transports_in_one_run() -> None:
    """--transport runner,httpx: a row per transport for runner and bare httpx, and their ratios."""
    load = [
        "--streams=4",
        "--chunks=5",
        "--concurrency=2",
        "--clients=runner,httpx",
        "--transport=runner,httpx",
    ]
    done = _bench(load, timeout=180)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for client in (r"runner", r"runner \(httpx\)", r"httpx \(runner\)", r"httpx"):
        row = re.search(rf"^{client}\s+(\d+)/(\d+)\s+(\d+)\s", out, re.MULTILINE)
        assert row is not None, out
        assert row.groups() == ("4", "4", "20")
    assert "runner / runner (httpx) CPU per chunk:" in out
    assert "httpx (runner) / httpx CPU per chunk:" in out


@pytest.mark.slow
def test_bench_serves_from_several_simulator_workers() -> None:
    """--simulator-workers 3: every stream verified through the shared port, and the table says so."""
    load = ["--streams=12", "--chunks=5", "--concurrency=6", "--clients=httpx", "--simulator-workers=3"]
    done = _bench(load)
    assert done.returncode == 0, done.stderr
    row = re.search(r"^httpx\s+(\d+)/(\d+)\s+(\d+)\s", done.stdout, re.MULTILINE)
    assert row is not None, done.stdout
    assert row.groups() == ("12", "12", "60")
    assert "simulator: 3 worker processes sharing its port" in done.stdout


PEERS = ("litellm", "inspect_ai")


def _bench_peer(peer: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    load = ["--streams=4", "--chunks=5", "--concurrency=2", f"--clients=httpx,{peer}", "--transport=runner"]
    return _bench(load, timeout=180, env=env)


@pytest.mark.slow
@pytest.mark.parametrize("peer", PEERS)
def test_bench_says_in_one_line_when_a_peer_is_not_installed(tmp_path: Path, peer: str) -> None:
    """A peer is never a dependency: without it the table still prints, with one line saying how to add
    it (the processes here see it as not installed, whether or not this venv has it)."""
    (tmp_path / "sitecustomize.py").write_text(f'import sys\nsys.modules["{peer}"] = None\n')
    done = _bench_peer(peer, {**os.environ, "PYTHONPATH": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert re.search(rf"^{peer}\s+\d", done.stdout, re.MULTILINE) is None  # no row
    assert f"{peer} client skipped: {peer} is not installed (pip install {peer})" in done.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    "peer",
    [
        pytest.param(
            peer,
            marks=pytest.mark.skipif(
                importlib.util.find_spec(peer) is None, reason=f"{peer} (a peer) is not installed"
            ),
        )
        for peer in PEERS
    ],
)
def test_bench_streams_through_a_peer_where_installed(peer: str) -> None:
    """Installed, a peer's row is verified like every client's: every stream's text and chunks checked."""
    done = _bench_peer(peer)
    assert done.returncode == 0, done.stderr
    row = re.search(rf"^{peer}\s+(\d+)/(\d+)\s+(\d+)\s", done.stdout, re.MULTILINE)
    assert row is not None, done.stdout
    assert row.groups() == ("4", "4", "20")


def test_parse_transports_names_the_unknown_one() -> None:
    assert parse_transports("runner, httpx,runner") == ("runner", "httpx")
    with pytest.raises(ConfigError, match="aiohttp") as info:
        parse_transports("aiohttp")
    assert info.value.key == "--transport"


def test_ideal_is_waves_of_streams_times_their_gaps() -> None:
    """The ideal wall time counts ceil(N/C) waves of M-1 gaps, and is zero without a delay."""
    assert BenchLoad(streams=1000, chunks=50, delay_ms=20, concurrency=500).ideal_s == pytest.approx(1.96)
    assert BenchLoad(streams=1001, chunks=50, delay_ms=20, concurrency=500).ideal_s == pytest.approx(2.94)
    assert BenchLoad(streams=10, chunks=200, delay_ms=0, concurrency=5).ideal_s == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("runner,httpx", ("runner", "httpx"), id="two"),
        pytest.param(" openai , runner,openai", ("openai", "runner"), id="spaces-and-duplicates"),
    ],
)
def test_parse_clients_keeps_order(text: str, expected: tuple[str, ...]) -> None:
    """Client names keep the order given, without duplicates."""
    assert parse_clients(text) == expected


def test_parse_clients_names_the_unknown_one() -> None:
    """An unknown client is a ConfigError naming it and the option."""
    with pytest.raises(ConfigError, match="aiohttp") as info:
        parse_clients("runner,aiohttp")
    assert info.value.key == "--clients"


def test_report_shows_ratio_and_failures() -> None:
    """The table carries wall/ideal, the runner/httpx ratio and each failed stream's message."""
    load = BenchLoad(streams=10, chunks=11, delay_ms=100, concurrency=5)
    rows = (
        ClientRow(
            client="runner",
            streams=10,
            streams_ok=9,
            chunks=99,
            cpu_us_per_chunk=30.0,
            wall_s=4.0,
            peak_rss_mib=100,
            errors=("stream incomplete after 3 content chunks",),
        ),
        ClientRow(
            client="httpx",
            streams=10,
            streams_ok=10,
            chunks=110,
            cpu_us_per_chunk=20.0,
            wall_s=2.0,
            peak_rss_mib=60,
        ),
    )
    report = BenchReport(load=load, repeat=3, rows=rows)
    text = format_report(report)
    assert not report.all_ok
    assert "median of 3 runs" in text
    assert "2.00x" in text  # runner's wall time over the 2 s ideal
    assert "runner / httpx CPU per chunk: 1.50x (misses the 1.2x target)" in text
    assert "runner: stream incomplete after 3 content chunks" in text
