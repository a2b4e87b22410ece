"""Interrupted planning: `runner run` of a large job killed while it stores its units, then resumed.

A run is created ``planning`` and becomes ``running`` only with its last units, so a run cut off while
planning is known to be unplanned and ``--resume`` stores the rest before running anything.
"""

from __future__ import annotations

import re
import signal
import sqlite3
from pathlib import Path

import pytest
import trio
from sqlalchemy import text

from runner.store.db import Database, open_database
from tests.jobfile import sim_provider
from tests.run.processes import RunnerProcess, RunState, run_runner, start_runner, wait_for

# Slow (left out by `-m "not slow"`; CI runs them): 20,000 units planned, killed, then all run.
pytestmark = pytest.mark.slow

UNITS = 20_000
BIG_JOB = f"""
name = "big"
[defaults]
repeats = {UNITS}
{sim_provider(concurrency=64, output_tokens=2)}
[[cases]]
id = "c"
prompt = "Hi."
"""


def _stored(database: Database) -> int:
    with database.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM units")).scalar_one())


class WriteLock:
    """SQLite's write lock, held by the test: the planner's next batch waits for it (busy_timeout),
    so the signal is certain to land while planning, however fast the machine plans."""

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)

    def take(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")  # waits for the planner's batch in flight to commit

    def release(self) -> None:
        self._conn.execute("ROLLBACK")
        self._conn.close()


async def _signal_while_planning(
    process: RunnerProcess, database: Database, path: Path, signum: int
) -> tuple[int, int]:
    """Once a first batch is stored, hold the write lock, send ``signum``, let go; (exit code, units
    stored)."""
    await wait_for(lambda: _stored(database) > 0, within=60, interval=0.001)
    lock = WriteLock(path)
    await trio.to_thread.run_sync(lock.take)
    try:
        stored = await trio.to_thread.run_sync(_stored, database)
        assert 0 < stored < UNITS, "the signal must land while planning"
        process.send_signal(signum)
        # A planner blocked inside SQLite's busy wait sees SIGINT / SIGTERM when the wait returns.
        await trio.sleep(0.3)
    finally:
        await trio.to_thread.run_sync(lock.release)
    code = await process.wait(within=30)
    return code, await trio.to_thread.run_sync(_stored, database)


def _exactly_once(database: Database) -> tuple[int, int, int, int]:
    """(units, ok units, units with exactly one attempt, units with exactly one result row)."""
    with database.engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT count(*), sum(CASE WHEN status = 'ok' THEN 1 ELSE 0 END),"
                " sum(CASE WHEN (SELECT count(*) FROM attempts a WHERE a.unit_id = u.id) = 1"
                " THEN 1 ELSE 0 END),"
                " sum(CASE WHEN (SELECT count(*) FROM results r WHERE r.unit_id = u.id) = 1"
                " THEN 1 ELSE 0 END) FROM units u"
            )
        ).one()
    return (int(row[0]), int(row[1]), int(row[2]), int(row[3]))


@pytest.mark.parametrize(
    ("signum", "code"),
    [
        pytest.param(signal.SIGKILL, -signal.SIGKILL, id="SIGKILL"),
        pytest.param(signal.SIGINT, 130, id="SIGINT"),
    ],
)
async def test_planning_cut_off_then_resume_runs_every_unit_once(
    tmp_path: Path, nursery: trio.Nursery, signum: int, code: int
) -> None:
    """Killed or Ctrl-C'd after some of its units were stored, the run stays `planning`; --resume
    stores the rest, runs each of the 20,000 units exactly once and only then reports finished."""
    url = f"sqlite:///{tmp_path / 'runner.db'}"
    job = tmp_path / "big.toml"
    job.write_text(BIG_JOB)
    with open_database(url) as database:
        state = RunState(database)
        process = await start_runner(nursery, "run", str(job), "--db", url, "--report", "-", cwd=tmp_path)
        exited, stored = await _signal_while_planning(process, database, tmp_path / "runner.db", signum)
        assert exited == code, process.stderr
        assert 0 < stored < UNITS
        (run_id,) = await trio.to_thread.run_sync(state.run_ids)
        # The run id came first, before any unit was stored.
        assert re.search(rf"^run {run_id} \(big\)", process.stderr, re.MULTILINE), process.stderr
        assert await trio.to_thread.run_sync(state.run_status, run_id) == "planning"
        if signum == signal.SIGINT:
            assert f"resume with: runner run --resume {run_id}" in process.stderr
            assert "Traceback" not in process.stderr

        resumed = await run_runner(
            "run", "--resume", run_id, "--db", url, "--report", "-", "-q", cwd=tmp_path, within=400
        )
        assert resumed.process.returncode == 0, resumed.stderr
        assert (
            f"run {run_id}: finished; units passed {UNITS}, units with failed assertions 0, "
            "failed (no result) 0, not done 0" in resumed.stderr
        )
        assert await trio.to_thread.run_sync(state.run_status, run_id) == "finished"
        assert await trio.to_thread.run_sync(_exactly_once, database) == (UNITS,) * 4


async def test_sigterm_while_planning_exits_130_with_the_resume_line(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    """SIGTERM while the units are stored stops like Ctrl-C: exit 130, no traceback, run `planning`."""
    url = f"sqlite:///{tmp_path / 'runner.db'}"
    job = tmp_path / "big.toml"
    job.write_text(BIG_JOB)
    with open_database(url) as database:
        process = await start_runner(nursery, "run", str(job), "--db", url, "--report", "-", cwd=tmp_path)
        exited, stored = await _signal_while_planning(
            process, database, tmp_path / "runner.db", signal.SIGTERM
        )
        assert exited == 130, process.stderr
        assert 0 < stored < UNITS
        (run_id,) = await trio.to_thread.run_sync(RunState(database).run_ids)
        assert await trio.to_thread.run_sync(RunState(database).run_status, run_id) == "planning"
        assert f"run {run_id}: interrupted while planning its units" in process.stderr
        assert f"resume with: runner run --resume {run_id}" in process.stderr
        assert "Traceback" not in process.stderr
