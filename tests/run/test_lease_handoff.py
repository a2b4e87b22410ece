"""Lease handoff between real `runner` processes: a paused process wakes after another took its units.

The first process is stopped with SIGSTOP past its (1 s) lease while it has attempts in flight; a
second one ``--join``s and finishes every unit; then the first is continued with SIGCONT, its
in-flight attempts end, and it writes them late. Fencing must store those late attempts as
superseded: every unit keeps one result, unique attempt numbers, and ``units.attempts`` counts only
attempts that are not superseded. ``--resume`` of a run a live process is working is refused.
"""

from __future__ import annotations

import signal
import sqlite3
from pathlib import Path

import pytest
import trio
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from runner.store.db import Database
from tests.jobfile import sim_provider
from tests.run.processes import RunnerProcess, RunState, run_runner, start_runner, wait_for

# Slow (left out by `-m "not slow"`; CI runs them): two processes, SIGSTOP past a lease, SIGCONT.
pytestmark = pytest.mark.slow

UNITS = 16
# Each unit ~0.8 s (first token after 0.6 s), 4 at a time: the stop always finds attempts in flight.
JOB = f"""
name = "handoff"
[defaults]
repeats = {UNITS}
{sim_provider(concurrency=4, output_tokens=10, ttft=0.6)}
[[cases]]
id = "c"
prompt = "Say something."
"""

# The refused --resume must start while the first process still works: its own start (imports, the
# job) took over 3 s on a loaded 2-core machine, longer than JOB's whole run. ~13 s of work here.
LONG_JOB = JOB.replace(f"repeats = {UNITS}", "repeats = 64")


def _nobody_holds_a_lock(database: Database, run_id: str) -> bool:
    """True when no transaction blocks the run's writers (a process stopped inside one would)."""
    if database.is_sqlite:
        path = database.url.removeprefix("sqlite:///")
        raw = sqlite3.connect(path, timeout=0.2, isolation_level=None)
        try:
            raw.execute("BEGIN IMMEDIATE")
            raw.execute("ROLLBACK")
            return True
        except sqlite3.OperationalError:
            return False
        finally:
            raw.close()
    try:
        with database.engine.begin() as conn:
            conn.execute(text("SET LOCAL lock_timeout = '200ms'"))
            conn.execute(text("SELECT id FROM units WHERE run_id = :r FOR UPDATE NOWAIT"), {"r": run_id})
        return True
    except OperationalError:
        return False


async def _stop_outside_transactions(process: RunnerProcess, database: Database, run_id: str) -> None:
    """SIGSTOP the process at a moment it holds no database lock (else nobody could take over)."""
    for _ in range(50):
        process.send_signal(signal.SIGSTOP)
        if await trio.to_thread.run_sync(_nobody_holds_a_lock, database, run_id):
            return
        process.send_signal(signal.SIGCONT)
        await trio.sleep(0.01)
    raise AssertionError("the process was inside a transaction at every stop")


def _attempt_rows(database: Database, run_id: str) -> list[tuple[int, int, bool, str | None]]:
    """(unit id, number, superseded, error kind) of every attempt of the run."""
    with database.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT a.unit_id, a.number, a.superseded, a.error_kind FROM attempts a"
                " JOIN units u ON u.id = a.unit_id WHERE u.run_id = :r ORDER BY a.unit_id, a.number"
            ),
            {"r": run_id},
        )
        return [(unit_id, number, bool(superseded), kind) for unit_id, number, superseded, kind in rows]


def _units(database: Database, run_id: str) -> dict[int, tuple[str, int, int, bool]]:
    """unit id -> (status, units.attempts, result rows, whether the result's attempt is superseded)."""
    with database.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT u.id, u.status, u.attempts,"
                " (SELECT count(*) FROM results r WHERE r.unit_id = u.id),"
                " (SELECT count(*) FROM results r JOIN attempts a ON a.id = r.attempt_id"
                "  WHERE r.unit_id = u.id AND a.superseded)"
                " FROM units u WHERE u.run_id = :r"
            ),
            {"r": run_id},
        )
        return {row[0]: (row[1], row[2], row[3], row[4] > 0) for row in rows}


async def test_a_paused_process_that_lost_its_lease_stores_superseded_attempts(
    tmp_path: Path, database: Database, nursery: trio.Nursery
) -> None:
    """Stopped past its lease, the first process's late attempts are stored superseded: every unit
    has one result from a current attempt, unique numbers, and attempts = its current attempts."""
    state = RunState(database)
    job = tmp_path / "job.toml"
    job.write_text(JOB)
    db = ["--db", database.url, "--report", "-", "--lease", "1"]
    first = await start_runner(nursery, "run", str(job), *db, cwd=tmp_path)
    await wait_for(lambda: bool(state.run_ids()), within=30)
    (run_id,) = await trio.to_thread.run_sync(state.run_ids)
    await wait_for(lambda: state.done(run_id) >= 4 and state.running() >= 3, within=30, interval=0.02)
    await _stop_outside_transactions(first, database, run_id)
    try:
        await trio.sleep(2.0)  # past the 1 s lease: nothing renews it now
        second = await run_runner("run", "--join", run_id, *db, cwd=tmp_path, within=60)
        assert second.process.returncode == 0, second.stderr
    finally:
        first.send_signal(signal.SIGCONT)
    assert await first.wait(within=30) == 0, first.stderr

    attempts = await trio.to_thread.run_sync(_attempt_rows, database, run_id)
    units = await trio.to_thread.run_sync(_units, database, run_id)
    assert len(units) == UNITS
    superseded = [row for row in attempts if row[2]]
    assert superseded, "the first process's late attempts are marked"
    for unit_id, (status, count, results, from_superseded) in units.items():
        mine = [row for row in attempts if row[0] == unit_id]
        numbers = [row[1] for row in mine]
        assert numbers == list(range(1, len(mine) + 1)), (unit_id, mine)  # unique, no gaps
        assert (status, results, from_superseded) == ("ok", 1, False), (unit_id, mine)
        assert count == sum(not row[2] for row in mine), (unit_id, count, mine)
    assert "stored as superseded" in first.stderr  # the late process learns it lost the lease


async def test_resume_of_a_run_a_live_process_works_is_refused(
    tmp_path: Path, database: Database, nursery: trio.Nursery
) -> None:
    """--resume while another process holds live leases exits 2 naming --join; nothing runs twice."""
    state = RunState(database)
    job = tmp_path / "job.toml"
    job.write_text(LONG_JOB)
    db = ["--db", database.url, "--report", "-"]
    first = await start_runner(nursery, "run", str(job), *db, cwd=tmp_path)
    await wait_for(lambda: bool(state.run_ids()) and state.running() > 0, within=30, interval=0.02)
    (run_id,) = await trio.to_thread.run_sync(state.run_ids)
    refused = await run_runner("run", "--resume", run_id, *db, cwd=tmp_path, within=30)
    assert refused.process.returncode == 2, refused.stderr
    assert f"run {run_id} is being worked by another live process" in refused.stderr
    assert f"--join {run_id}" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert await first.wait(within=60) == 0, first.stderr
    units = await trio.to_thread.run_sync(state.units, run_id)
    assert all((u.status, u.attempts, u.results) == ("ok", 1, 1) for u in units.values()), units
