"""`runner run --workers N` and runs worked by several processes, with `runner` as real OS processes:
one simulator for all workers, one progress for the whole run, Ctrl-C stops all, a crashed worker's units
taken over, and three `--join` processes on one PostgreSQL run (README: "Running it on many machines").
"""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest
import trio

from runner.store.db import Database
from tests.jobfile import write_job
from tests.run.processes import RunnerProcess, RunState, run_runner, start_runner, wait_for
from tests.run.test_lifecycle import (
    BUDGET_JOB,
    SLOW_JOB,
    assert_consistent,
    sqlite_db,
    summary_run_id,
)

__all__ = ["sqlite_db"]  # the fixture, used here by name

# Slow: subprocesses (each worker is a Python process importing runner).
pytestmark = [pytest.mark.slow]

# 60 units, 3 at a time per process, ~0.4 s each.
JOB = SLOW_JOB.replace("repeats = 40", "repeats = 60").replace("concurrency = 4", "concurrency = 3")


def children_of(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of the processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:  # ended meanwhile
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            found.append((int(entry.name), cmdline))
    return found


def owners_of(state: RunState, run_id: str) -> dict[str, int]:
    """Finished units per lease owner (the process that finished them)."""
    rows = state._all(
        "SELECT lease_owner, count(*) FROM units WHERE run_id = :r AND status IN ('ok', 'failed')"
        " GROUP BY lease_owner",
        r=run_id,
    )
    return {str(owner): int(count) for owner, count in rows}


def last_progress_line(process: RunnerProcess) -> str:
    lines = [line for line in process.stderr.splitlines() if " units | " in line]
    assert lines, process.stderr
    return lines[-1]


async def test_workers_share_one_simulator_and_finish_every_unit_once(
    tmp_path: Path, sqlite_db: Database, nursery: trio.Nursery
) -> None:
    """--workers 2: two `runner run --join RUN` workers and one simulator process, started by the
    command; each unit done once, by one of the two; one progress counting the whole run; exit 0."""
    state = RunState(sqlite_db)
    job = write_job(tmp_path, JOB)
    args = ["run", str(job), "--db", sqlite_db.url, "--workers", "2", "--progress-interval", "0.5"]
    args += ["--capture", "all", "--concurrency", "5"]  # passed on to the workers (5 split as 3 + 2)
    process = await start_runner(nursery, *args, "--report", str(tmp_path / "r.html"), cwd=tmp_path)
    await wait_for(lambda: state.done() >= 4, within=30)
    children = await trio.to_thread.run_sync(children_of, process.pid)
    workers = [pid for pid, cmd in children if "--join" in cmd]
    simulators = [pid for pid, cmd in children if "runner.simulator.child" in cmd]
    assert (len(workers), len(simulators)) == (2, 1), children
    shares = sorted(re.findall(r"--concurrency (\d+)", cmd)[0] for _, cmd in children if "--join" in cmd)
    assert shares == ["2", "3"], children  # --concurrency holds for the run, not per worker
    for pid in workers:  # given the simulator's URL: none serves one of its own
        assert not await trio.to_thread.run_sync(children_of, pid)
    assert await process.wait(within=60) == 0, process.stderr
    run_id = summary_run_id(process)
    units = await trio.to_thread.run_sync(state.units, run_id)
    assert len(units) == 60
    assert all((u.status, u.attempts, u.results) == ("ok", 1, 1) for u in units.values()), units
    assert len(await trio.to_thread.run_sync(state.raw_captures)) == 60
    owners = await trio.to_thread.run_sync(owners_of, state, run_id)
    assert len(owners) == 2, owners
    assert sum(owners.values()) == 60, owners
    assert {owner.split(":")[1] for owner in owners} == {str(pid) for pid in workers}
    final = last_progress_line(process)
    assert " 60/60 units | " in final, final
    assert "run: ok 60 failed 0 in flight 0; by 2 processes" in final, final
    assert "passed 60" in process.stderr.splitlines()[-1]
    report = (tmp_path / "r.html").read_text()
    for owner in owners:  # the report names the processes that worked the run
        assert owner in report


async def test_ctrl_c_stops_every_worker_then_resume_with_workers_finishes(
    tmp_path: Path, sqlite_db: Database, nursery: trio.Nursery
) -> None:
    """SIGINT to the command reaches every worker once: 130, the resume line, no lease left held;
    --resume RUN --workers 2 does the rest, each unit once."""
    state = RunState(sqlite_db)
    job = write_job(tmp_path, JOB)
    db = ["--db", sqlite_db.url, "--report", "-"]
    process = await start_runner(nursery, "run", str(job), *db, "--workers", "2", cwd=tmp_path)
    await wait_for(lambda: state.done() >= 6, within=30)
    workers = [pid for pid, cmd in await trio.to_thread.run_sync(children_of, process.pid) if "--join" in cmd]
    process.send_signal(signal.SIGINT)
    assert await process.wait(within=30) == 130, process.stderr
    run_id = summary_run_id(process)
    assert f"resume with: runner run --resume {run_id}" in process.stderr
    for pid in workers:  # every worker ended (reaped by the command)
        assert not await trio.to_thread.run_sync(Path(f"/proc/{pid}").exists)
    before = await trio.to_thread.run_sync(state.units, run_id)
    assert sum(u.status == "running" for u in before.values()) == 0  # leases released
    assert 6 <= sum(u.status == "ok" for u in before.values()) < 60
    assert await trio.to_thread.run_sync(state.run_status, run_id) == "interrupted"

    resumed = await run_runner("run", "--resume", run_id, *db, "--workers", "2", cwd=tmp_path, within=60)
    assert resumed.process.returncode == 0, resumed.stderr
    after = await trio.to_thread.run_sync(state.units, run_id)
    assert all((u.status, u.results) == ("ok", 1) for u in after.values()), after
    assert_consistent(after)


async def test_a_crashed_worker_is_reported_and_the_others_finish_its_units(
    tmp_path: Path, sqlite_db: Database, nursery: trio.Nursery
) -> None:
    """A worker killed with SIGKILL is named; the other takes its units when their leases lapse; the
    run finishes and the exit code is the run's (0)."""
    state = RunState(sqlite_db)
    job = write_job(tmp_path, JOB)
    args = ["run", str(job), "--db", sqlite_db.url, "--report", "-", "--workers", "2", "--lease", "1"]
    process = await start_runner(nursery, *args, cwd=tmp_path)
    await wait_for(lambda: state.done() >= 4, within=30)
    children = await trio.to_thread.run_sync(children_of, process.pid)
    victim = next(pid for pid, cmd in children if "--join" in cmd)
    os.kill(victim, signal.SIGKILL)
    assert await process.wait(within=60) == 0, process.stderr
    crashed = rf"worker \d \(pid {victim}\) exited with code -9; the other workers go on"
    assert re.search(crashed, process.stderr), process.stderr
    run_id = summary_run_id(process)
    units = await trio.to_thread.run_sync(state.units, run_id)
    assert all((u.status, u.results) == ("ok", 1) for u in units.values()), units
    assert_consistent(units)


async def test_every_worker_crashed_with_units_left_exits_4_with_the_resume_line(
    tmp_path: Path, sqlite_db: Database, nursery: trio.Nursery
) -> None:
    """No worker left to take over: exit 4, one line naming the workers and their codes, then
    --resume finishes the run (README: exit codes)."""
    state = RunState(sqlite_db)
    job = write_job(tmp_path, JOB)
    args = ["run", str(job), "--db", sqlite_db.url, "--report", "-", "--workers", "2"]
    process = await start_runner(nursery, *args, cwd=tmp_path)
    await wait_for(lambda: state.done() >= 4, within=30)
    children = await trio.to_thread.run_sync(children_of, process.pid)
    for pid in (pid for pid, cmd in children if "--join" in cmd):
        os.kill(pid, signal.SIGKILL)
    assert await process.wait(within=30) == 4, process.stderr
    run_id = summary_run_id(process)
    last = process.stderr.strip().splitlines()[-1]
    assert re.fullmatch(
        rf"error: run {run_id}: workers stopped with \d+ units not done \(worker 1 with code -9, "
        rf"worker 2 with code -9 exited\); resume with: runner run --resume {run_id}",
        last,
    ), process.stderr
    resumed = await run_runner(
        "run", "--resume", run_id, "--db", sqlite_db.url, "--report", "-", cwd=tmp_path
    )
    assert resumed.process.returncode == 0, resumed.stderr
    units = await trio.to_thread.run_sync(state.units, run_id)
    assert all((u.status, u.results) == ("ok", 1) for u in units.values()), units


async def test_the_budget_stops_every_worker_and_says_so(tmp_path: Path, sqlite_db: Database) -> None:
    """Workers stopped by the budget (each its own today): exit 130 with the budget's line, as
    without --workers; units in flight when it was reached finish."""
    state = RunState(sqlite_db)
    job = write_job(tmp_path, BUDGET_JOB)
    args = ["run", str(job), "--db", sqlite_db.url, "--report", "-", "--workers", "2"]
    process = await run_runner(*args, cwd=tmp_path, within=60)
    assert process.process.returncode == 130, process.stderr
    assert ": stopped: budget of $6 reached;" in process.stderr
    assert "resume with a larger budget: runner run --resume r-" in process.stderr
    counts = await trio.to_thread.run_sync(state.counts, summary_run_id(process))
    assert 3 <= counts["ok"] < 30, counts  # per worker: at most 2 x (3 + 2 in flight)
    assert counts["running"] == 0


@pytest.mark.parametrize("value", ["0", "two", "-1"])
async def test_a_bad_worker_count_is_one_line_and_exit_2(tmp_path: Path, value: str) -> None:
    job = write_job(tmp_path, JOB)
    process = await run_runner("run", str(job), "--workers", value, cwd=tmp_path)
    assert process.process.returncode == 2
    assert "is not a number of workers (1, 2, ... or auto)" in process.stderr
    assert "Traceback" not in process.stderr
    assert not (tmp_path / "runner.db").exists()  # refused before anything was stored


@pytest.mark.postgres
async def test_three_joined_processes_on_postgresql_each_show_the_whole_run(
    tmp_path: Path, pg_database: Database, nursery: trio.Nursery
) -> None:
    """README "Running it on many machines": one process starts the run, two more `runner run --join
    RUN --db postgresql+psycopg://...`; every unit exactly once, and each process's last progress line
    counts the whole run (not only its own units) and names the processes working it."""
    state = RunState(pg_database)
    job = write_job(tmp_path, JOB.replace("repeats = 60", "repeats = 90"))
    db = ["--db", pg_database.url, "--report", "-", "--progress-interval", "0.5"]
    first = await start_runner(nursery, "run", str(job), *db, cwd=tmp_path)
    await wait_for(lambda: bool(state.run_ids()), within=30)
    (run_id,) = await trio.to_thread.run_sync(state.run_ids)
    joined = [await start_runner(nursery, "run", "--join", run_id, *db, cwd=tmp_path) for _ in range(2)]
    for process in (first, *joined):
        assert await process.wait(within=60) == 0, process.stderr
    units = await trio.to_thread.run_sync(state.units, run_id)
    assert len(units) == 90
    assert all((u.status, u.attempts, u.results) == ("ok", 1, 1) for u in units.values()), units
    owners = await trio.to_thread.run_sync(owners_of, state, run_id)
    assert sum(owners.values()) == 90, owners
    assert len(owners) == 3, owners
    for process in (first, *joined):
        final = last_progress_line(process)
        assert " 90/90 units | " in final, final
        assert "run: ok 90 failed 0 in flight 0; by 3 processes" in final, final
