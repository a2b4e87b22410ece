"""Shared limits across real `runner` processes joined on one run: one RPM bucket, one concurrency
limit and one budget for the run, however many processes work it.

The simulator runs in the test's own loop, so it sees every request of every process: it times
their arrival (the aggregate rate) and counts the responses being sent at any moment (the aggregate
concurrency). The processes are exactly what a user runs: ``runner run JOB`` and two
``runner run --join RUN``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import trio
from sqlalchemy import text

from runner.simulator.config import SimulatorConfig
from tests.run.processes import RunnerProcess, RunState, start_runner, wait_for

if TYPE_CHECKING:
    from runner.simulator.server import SimulatorHandle
    from runner.store.db import Database
    from tests.conftest import StartSimulator

# Slow (left out by `-m "not slow"`): three processes for several seconds each.
pytestmark = pytest.mark.slow

PROCESSES = 3


def _job(base_url: str, *, repeats: int, limits: str, budget: str = "") -> str:
    return f"""
name = "shared"
{budget}
[defaults]
repeats = {repeats}
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


async def _three_processes(
    nursery: trio.Nursery, tmp_path: Path, database: Database, job_text: str
) -> tuple[str, list[RunnerProcess]]:
    """Start ``runner run JOB`` and, once its run exists, two ``--join`` processes on it."""
    job = tmp_path / "job.toml"
    job.write_text(job_text)
    db = ["--db", database.url, "--report", "-"]
    state = RunState(database)
    first = await start_runner(nursery, "run", str(job), *db, cwd=tmp_path)
    await wait_for(lambda: bool(state.run_ids()), within=30)
    (run_id,) = await trio.to_thread.run_sync(state.run_ids)
    joined = [await start_runner(nursery, "run", "--join", run_id, *db, cwd=tmp_path) for _ in range(2)]
    return run_id, [first, *joined]


async def _all_exit(processes: list[RunnerProcess], *, within: float, codes: tuple[int, ...] = (0,)) -> None:
    for process in processes:
        code = await process.wait(within)
        assert code in codes, process.stderr
        assert "Traceback" not in process.stderr, process.stderr


async def test_three_processes_share_one_rpm_budget(
    tmp_path: Path, database: Database, nursery: trio.Nursery, start_simulator: StartSimulator
) -> None:
    """rpm = 600 across three processes: the run sends 10 requests/s (within 1.05x), not 30."""
    handle: SimulatorHandle = await start_simulator(SimulatorConfig.from_dict({"output_tokens": "5"}))
    job = _job(handle.base_url("openai-chat"), repeats=120, limits="rpm = 600\nconcurrency = 16")
    _run_id, processes = await _three_processes(nursery, tmp_path, database, job)
    await _all_exit(processes, within=90)
    times = sorted(entry.time for entry in handle.log.entries)
    assert len(times) == 120
    # The bucket starts full (one second's worth, 10 requests): the rate is measured past that burst.
    burst = 10
    rate = (len(times) - burst - 1) / (times[-1] - times[burst])
    assert rate <= 10 * 1.05, f"{rate:.2f} requests/s with rpm = 600 over {PROCESSES} processes"
    assert rate >= 10 * 0.8, f"{rate:.2f} requests/s: the shared bucket starves its takers"


async def test_three_processes_share_one_concurrency_limit(
    tmp_path: Path, database: Database, nursery: trio.Nursery, start_simulator: StartSimulator
) -> None:
    """concurrency = 8 across three processes: at no moment does the simulator send more than 8."""
    config = SimulatorConfig.from_dict({"latency": "ttft=0.3,gap=0.02", "output_tokens": "5"})
    handle: SimulatorHandle = await start_simulator(config)
    job = _job(handle.base_url("openai-chat"), repeats=90, limits="concurrency = 8")
    _run_id, processes = await _three_processes(nursery, tmp_path, database, job)
    await _all_exit(processes, within=90)
    assert len(handle.log) == 90
    assert handle.log.peak_in_flight <= 8, f"{handle.log.peak_in_flight} streams at once"
    assert handle.log.peak_in_flight >= 6, "the shared limit is not used up"


def _spend(database: Database, run_id: str) -> tuple[float, float, int]:
    """(booked cost of every attempt of the run, the costliest attempt's, how many attempts)."""
    with database.engine.connect() as conn:
        total, most, count = conn.execute(
            text(
                "SELECT sum(coalesce(a.cost_reported, a.cost_computed, 0)),"
                " max(coalesce(a.cost_reported, a.cost_computed, 0)), count(*)"
                " FROM attempts a JOIN units u ON u.id = a.unit_id WHERE u.run_id = :r"
            ),
            {"r": run_id},
        ).one()
    return float(total or 0.0), float(most or 0.0), int(count)


async def test_three_processes_stop_at_one_budget(
    tmp_path: Path, database: Database, nursery: trio.Nursery, start_simulator: StartSimulator
) -> None:
    """max_cost_usd across three processes: they stop within one in-flight attempt each of the cap."""
    config = SimulatorConfig.from_dict(
        {"latency": "ttft=0.5", "output_tokens": "100", "cost": True, "price": {"output": 1000.0}}
    )
    handle: SimulatorHandle = await start_simulator(config)
    # 100 output tokens at $1000 per million: $0.1 (and a little input) per attempt, ~30 of 400 units.
    job = _job(
        handle.base_url("openai-chat"),
        repeats=400,
        limits=f"concurrency = {PROCESSES}",
        budget="max_cost_usd = 3.0",
    )
    run_id, processes = await _three_processes(nursery, tmp_path, database, job)
    await _all_exit(processes, within=90, codes=(0, 130))  # 130: stopped by the budget (README)
    total, most, attempts = await trio.to_thread.run_sync(_spend, database, run_id)
    assert total >= 3.0
    assert total <= 3.0 + PROCESSES * most, f"${total:.2f} over {attempts} attempts against a $3.00 cap"
