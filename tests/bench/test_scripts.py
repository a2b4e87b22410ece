"""The benchmark scripts the README names run, and print the figures it says they print."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # three reader processes and a simulator: ~10 s
def test_bench_simulator_prints_each_readers_wall_against_the_ideal() -> None:
    """README's "how close can any client get" command, on a small load: the plain epoll reader, the
    trio reader and the simulator's CPU, every event counted, each wall time against the ideal."""
    ran = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bench_simulator.py"),
            *("--streams", "20", "--chunks", "5", "--delay-ms", "5", "--concurrency", "10", "--raw-only"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    # 20 streams of 5 content events, a role, a finish, a usage event and [DONE] each; ideal 2 x 4 x 5 ms.
    for reader in (r"\(a0\) plain epoll reader", r"\(a\) raw socket reader"):
        line = re.search(rf"^{reader}: (\d+) events in .*, ([\d.]+)x the ideal 0\.04 s", ran.stdout, re.M)
        assert line is not None, ran.stdout
        assert int(line.group(1)) == 20 * 9
        assert float(line.group(2)) >= 1.0  # no reader beats the simulator's own pacing
    assert re.search(r"^simulator: .* us cpu/event", ran.stdout, re.M), ran.stdout
