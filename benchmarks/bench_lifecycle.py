"""Flat-memory benchmark: `runner run` on jobs of growing size, peak RSS after the same work.

Run: .venv/bin/python -m benchmarks.bench_lifecycle [--units 10000,100000,300000] [--work 3000]
Each job (one simulated provider, no latency, tiny answers, concurrency 8) runs as a real process on
a fresh SQLite file until ``--work`` units are done, then gets SIGINT. Prints the peak RSS (VmHWM),
the most units ever 'running' in the database, and the time to plan. The target is a peak RSS that
does not grow with the number of planned units (tests/run/test_lifecycle.py checks 10k vs 100k).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import trio

from runner.store.db import open_database
from tests.jobfile import repeats_job
from tests.run.processes import RunState, start_runner, wait_for


async def measure(workdir: Path, units: int, work: int) -> tuple[int, int, float]:
    """(peak RSS KiB, most units running, seconds until the first unit was done) for one job."""
    url = f"sqlite:///{workdir / f'bench-{units}.db'}"
    job = workdir / f"bench-{units}.toml"
    job.write_text(repeats_job("bench-lifecycle", units))
    with open_database(url) as database:
        state = RunState(database)
        most_running = 0

        def reached(target: int) -> bool:
            nonlocal most_running
            most_running = max(most_running, state.running())
            return state.done() >= target

        async with trio.open_nursery() as nursery:
            process = await start_runner(nursery, "run", str(job), "--db", url, "--report", "-", cwd=workdir)
            started = trio.current_time()
            await wait_for(lambda: reached(1), within=600)
            planned = trio.current_time() - started
            await wait_for(lambda: reached(work), within=600, interval=0.1)
            rss = process.peak_rss_kib()
            process.send_signal(2)  # SIGINT
            await process.wait(within=30)
    return rss, most_running, planned


async def main(sizes: list[int], work: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'units':>9} {'peak RSS MiB':>13} {'max running':>12} {'plan+start s':>13}")
        for units in sizes:
            rss, running, planned = await measure(Path(tmp), units, work)
            print(f"{units:>9} {rss / 1024:>13.1f} {running:>12} {planned:>13.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", default="10000,100000,300000", help="Comma-separated job sizes.")
    parser.add_argument("--work", type=int, default=3000, help="Units done before the sample.")
    args = parser.parse_args()
    trio.run(main, [int(n) for n in args.units.split(",")], args.work)
