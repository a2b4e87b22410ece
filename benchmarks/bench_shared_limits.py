"""Shared limits benchmark: three `runner run --join` processes on one run, one set of limits.

Run: .venv/bin/python -m benchmarks.bench_shared_limits [--db URL] [--seconds 60] [--rpm 120]
The simulator is served from this process (it sees every request of every runner process: their
arrival times and the streams in flight at any moment); the runners are real processes on one
database (a fresh SQLite file unless --db names a PostgreSQL database). Prints:
- the aggregate request rate with ``rpm`` over ``--seconds`` (target: within 1.05x of rpm / 60);
- the most streams in flight at once with ``concurrency = 8`` (target: at most 8);
- the spend with ``max_cost_usd`` (target: within one in-flight attempt per process of the cap);
- what one take + give of a shared slot costs (the per-attempt price of sharing), against the
  database.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import trio
from sqlalchemy import text

from runner.simulator.config import SimulatorConfig
from runner.simulator.server import SimulatorHandle, serve_simulator
from runner.spec import JobSpec, ProviderSpec
from runner.store import repository
from runner.store.db import Database, open_database
from runner.store.shared_limits import SharedLimits
from tests.run.processes import RunnerProcess, RunState, start_runner, wait_for

PROCESSES = 3

JOB = """
name = "bench-shared"
{budget}
[defaults]
repeats = {units}
[[providers]]
name = "sim"
dialect = "openai-chat"
base_url = "{base_url}"
model = "sim-model"
{limits}

[[cases]]
id = "c"
prompt = "Say something."
"""


async def _three(workdir: Path, database: Database, job_text: str) -> tuple[str, float]:
    """Run the job with ``runner run`` plus two ``--join``; (run id, wall seconds) once all exit."""
    job = workdir / "job.toml"
    job.write_text(job_text)
    args = ["--db", database.url, "--report", "-"]
    state = RunState(database)
    before = set(await trio.to_thread.run_sync(state.run_ids))
    started = time.monotonic()
    async with trio.open_nursery() as nursery:
        first = await start_runner(nursery, "run", str(job), *args, cwd=workdir)
        await wait_for(lambda: bool(set(state.run_ids()) - before), within=60)
        (run_id,) = set(await trio.to_thread.run_sync(state.run_ids)) - before
        processes: list[RunnerProcess] = [first]
        for _ in range(PROCESSES - 1):
            processes.append(await start_runner(nursery, "run", "--join", run_id, *args, cwd=workdir))
        for process in processes:
            code = await process.wait(600)
            if code not in (0, 130):
                raise SystemExit(f"runner exited {code}: {process.stderr[-2000:]}")
    return run_id, time.monotonic() - started


async def _serve(nursery: trio.Nursery, config: SimulatorConfig) -> SimulatorHandle:
    handle: SimulatorHandle = await nursery.start(serve_simulator, config)
    return handle


async def rate(workdir: Path, database: Database, seconds: float, rpm: float) -> None:
    async with trio.open_nursery() as nursery:
        handle = await _serve(nursery, SimulatorConfig.from_dict({"output_tokens": "5"}))
        burst = max(1, int(rpm / 60))
        units = int(rpm / 60 * seconds) + burst
        job = JOB.format(
            budget="",
            units=units,
            base_url=handle.base_url("openai-chat"),
            limits=f"rpm = {rpm}\nconcurrency = 16",
        )
        await _three(workdir, database, job)
        times = sorted(entry.time for entry in handle.log.entries)
        nursery.cancel_scope.cancel()
    measured = (len(times) - burst - 1) / (times[-1] - times[burst])
    target = rpm / 60
    print(
        f"rate: {PROCESSES} processes, rpm = {rpm:g}, {len(times)} requests"
        f" over {times[-1] - times[0]:.1f} s:"
        f" {measured:.3f} requests/s past the first second's burst, {measured / target:.3f}x of {target:g}/s"
    )


async def concurrency(workdir: Path, database: Database) -> None:
    async with trio.open_nursery() as nursery:
        config = SimulatorConfig.from_dict({"latency": "ttft=0.5,gap=0.02", "output_tokens": "10"})
        handle = await _serve(nursery, config)
        job = JOB.format(
            budget="", units=240, base_url=handle.base_url("openai-chat"), limits="concurrency = 8"
        )
        _, wall = await _three(workdir, database, job)
        nursery.cancel_scope.cancel()
    print(
        f"concurrency: {PROCESSES} processes, concurrency = 8, 240 streams of ~0.7 s in {wall:.1f} s:"
        f" at most {handle.log.peak_in_flight} streams in flight at the simulator"
    )


async def budget(workdir: Path, database: Database) -> None:
    async with trio.open_nursery() as nursery:
        config = SimulatorConfig.from_dict(
            {"latency": "ttft=0.5", "output_tokens": "100", "cost": True, "price": {"output": 1000.0}}
        )
        handle = await _serve(nursery, config)
        job = JOB.format(
            budget="max_cost_usd = 3.0",
            units=400,
            base_url=handle.base_url("openai-chat"),
            limits=f"concurrency = {PROCESSES}",
        )
        run_id, _ = await _three(workdir, database, job)
        nursery.cancel_scope.cancel()
    with database.engine.connect() as conn:
        total, most, count = conn.execute(
            text(
                "SELECT sum(coalesce(a.cost_reported, a.cost_computed, 0)),"
                " max(coalesce(a.cost_reported, a.cost_computed, 0)), count(*)"
                " FROM attempts a JOIN units u ON u.id = a.unit_id WHERE u.run_id = :r"
            ),
            {"r": run_id},
        ).one()
    over = (total - 3.0) / most
    print(
        f"budget: {PROCESSES} processes, max_cost_usd = 3, concurrency = {PROCESSES}: spent ${total:.4f} in"
        f" {count} attempts of ${most:.4f}: {over:.2f} attempts past the cap (allowed: {PROCESSES})"
    )


def take_give_cost(database: Database, pairs: int = 2000) -> None:
    """Microseconds per take + give of a shared slot (two transactions), the per-attempt price."""
    job = JobSpec(
        name="bench-take",
        providers=(ProviderSpec(name="p", dialect="openai-chat", base_url="http://x", model="m"),),
        cases=(),
    )
    with database.session() as session:
        run_id = repository.create_run(session, job, host="h", version="bench").id
    provider = ProviderSpec(
        name="p", dialect="openai-chat", base_url="http://x", model="m", rpm=1e9, tpm=1e12
    )
    gate = SharedLimits.of([provider], database=database, run_id=run_id, owner="bench")
    started = time.perf_counter()
    for _ in range(pairs):
        gate.take("p", 100)
        gate.give("p", 0.0, (False, 0), 0.0)
    per_pair = (time.perf_counter() - started) / pairs * 1e6
    print(f"take + give: {per_pair:.0f} us per attempt on {database.engine.dialect.name} ({pairs} pairs)")


async def main(url: str | None, seconds: float, rpm: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        with open_database(url or f"sqlite:///{workdir / 'bench.db'}") as database:
            take_give_cost(database)
            await concurrency(workdir, database)
            await budget(workdir, database)
            await rate(workdir, database, seconds, rpm)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=None, help="database URL (default: a fresh SQLite file)")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rpm", type=float, default=120.0)
    options = parser.parse_args()
    trio.run(main, options.db, options.seconds, options.rpm)
