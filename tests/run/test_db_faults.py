"""The database goes away during a run (issue 10, item 4): `runner run` as a real process while this
test holds SQLite's write lock, deletes the database file, or kills the PostgreSQL connections.

A transient fault (a dropped connection, a lock that is let go) is retried and the run finishes; a
lasting one stops the run with one line naming the database and the cause, exit 3, no traceback,
and `--resume` afterwards finishes every unit exactly once.
"""

from __future__ import annotations

import contextlib
import functools
import resource
import secrets
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
import trio
from sqlalchemy import text

from runner.store.db import Database, open_database
from tests.jobfile import sim_provider
from tests.run.processes import RunnerProcess, RunState, run_runner, start_runner, wait_for
from tests.store.conftest import PG_CONNINFO

pytestmark = pytest.mark.slow

DATABASE_FAILED = 3

# 40 units, 4 at a time, ~0.3 s each: the run takes ~3 s, long enough to pull the database away.
JOB = f"""
name = "db-faults"
[defaults]
repeats = 40
[defaults.retry]
max_attempts = 2
backoff_initial = 0.01
backoff_max = 0.05

{sim_provider(concurrency=4, output_tokens=8, ttft=0.15)}
[[cases]]
id = "c"
prompt = "Say something."
"""


@pytest.fixture
def job(tmp_path: Path) -> Path:
    """The job file every test here runs."""
    path = tmp_path / "job.toml"
    path.write_text(JOB)
    return path


@pytest.fixture
def sqlite_db(sqlite_file: Path) -> Iterator[Database]:
    with open_database(f"sqlite:///{sqlite_file}") as database:
        yield database


def error_lines(process: RunnerProcess) -> list[str]:
    return [line for line in process.stderr.splitlines() if line.startswith("error:")]


def assert_stopped_cleanly(process: RunnerProcess, *, url: str, causes: tuple[str, ...]) -> str:
    """Exit 3 with exactly one error line naming the database (``url``) and one of ``causes``;
    returns the run id."""
    assert process.process.returncode == DATABASE_FAILED, process.stderr
    assert "Traceback" not in process.stderr, process.stderr
    (line,) = error_lines(process)
    assert line.startswith(f"error: database {url}: "), line
    said = line.removeprefix(f"error: database {url}: ").split("; run ")[0]
    assert any(cause in said for cause in causes), line
    assert "finished" not in process.stderr
    assert "report:" not in process.stderr
    run_id = line.split("runner run --resume ")[-1].strip()
    assert run_id.startswith("r-"), line
    return run_id


def assert_done_exactly_once(state: RunState, run_id: str) -> None:
    """Every unit ok with one result and exactly one successful attempt, numbered without gaps."""
    units = state.units(run_id)
    assert len(units) == 40
    for unit in units.values():
        assert unit.status == "ok", unit
        assert unit.results == 1, unit
        assert unit.kinds.count(None) == 1, unit
        assert unit.numbers == tuple(range(1, unit.attempts + 1)), unit


def hold_write_lock(
    path: Path, release: trio.Event, held: trio.Event, token: trio.lowlevel.TrioToken
) -> None:
    """Hold SQLite's write lock (BEGIN IMMEDIATE) on a thread until ``release`` is set."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    try:
        conn.execute("BEGIN IMMEDIATE")
        token.run_sync_soon(held.set)
        trio.from_thread.run(release.wait, trio_token=token)
        conn.execute("ROLLBACK")
    finally:
        conn.close()


@contextlib.asynccontextmanager
async def write_lock_held(path: Path) -> AsyncIterator[None]:
    """SQLite's write lock on ``path``, held by a thread for as long as the block runs."""
    release, held = trio.Event(), trio.Event()
    token = trio.lowlevel.current_trio_token()
    async with trio.open_nursery() as locker:
        locker.start_soon(trio.to_thread.run_sync, hold_write_lock, path, release, held, token)
        try:
            await held.wait()
            yield
        finally:
            release.set()  # the holding thread cannot be cancelled: it must always be let go


async def test_sqlite_lock_held_past_the_busy_timeout_stops_the_run_then_resume_finishes(
    tmp_path: Path, job: Path, sqlite_file: Path, sqlite_db: Database, nursery: trio.Nursery
) -> None:
    state = RunState(sqlite_db)
    url = f"sqlite:///{sqlite_file}?timeout=0.2"
    process = await start_runner(nursery, "run", str(job), "--db", url, "--report", "-", cwd=tmp_path)
    await wait_for(lambda: state.done() >= 8, within=30)
    async with write_lock_held(sqlite_file):
        await process.wait(within=60)
    run_id = assert_stopped_cleanly(process, url=url, causes=("database is locked",))
    assert await trio.to_thread.run_sync(state.run_status, run_id) == "running"  # it could not be told
    resumed = await run_runner("run", "--resume", run_id, "--db", url, "--report", "-", cwd=tmp_path)
    assert resumed.process.returncode == 0, resumed.stderr
    assert await trio.to_thread.run_sync(state.run_status, run_id) == "finished"
    await trio.to_thread.run_sync(assert_done_exactly_once, state, run_id)


async def test_sqlite_lock_held_briefly_is_retried_and_the_run_finishes(
    tmp_path: Path, job: Path, sqlite_file: Path, sqlite_db: Database, nursery: trio.Nursery
) -> None:
    state = RunState(sqlite_db)
    url = f"sqlite:///{sqlite_file}?timeout=0.2"
    process = await start_runner(nursery, "run", str(job), "--db", url, "--report", "-", cwd=tmp_path)
    await wait_for(lambda: state.done() >= 8, within=30)
    async with write_lock_held(sqlite_file):
        await trio.sleep(1.0)  # past the busy timeout, within the retries
    assert await process.wait(within=60) == 0, process.stderr
    retried = [line for line in process.stderr.splitlines() if "trying again in" in line]
    assert retried, process.stderr
    assert all(f"database {url}: database is locked" in line for line in retried), retried
    (run_id,) = await trio.to_thread.run_sync(state.run_ids)
    await trio.to_thread.run_sync(assert_done_exactly_once, state, run_id)


async def test_deleted_sqlite_file_stops_the_run_and_claims_nothing(
    tmp_path: Path, job: Path, sqlite_file: Path, sqlite_db: Database, nursery: trio.Nursery
) -> None:
    """SQLite would go on writing to the deleted file: the run must not report `finished` or a report."""
    state = RunState(sqlite_db)
    report = tmp_path / "report.html"
    process = await start_runner(
        nursery, "run", str(job), "--db", f"sqlite:///{sqlite_file}", "--report", str(report), cwd=tmp_path
    )
    await wait_for(lambda: state.done() >= 8, within=30)
    sqlite_db.close()
    await trio.to_thread.run_sync(delete_database, sqlite_file)
    await process.wait(within=60)
    assert_stopped_cleanly(process, url=f"sqlite:///{sqlite_file}", causes=("the file was deleted",))
    assert not report.exists()


def limit_file_size(limit: int) -> None:
    """In the child: no file may grow past ``limit`` bytes (CPython ignores SIGXFSZ, so a write past
    it fails, short, and SQLite reports SQLITE_FULL: what a full disk does, without filling one)."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


async def test_full_disk_stops_the_run_then_resume_finishes(
    tmp_path: Path, job: Path, sqlite_file: Path, sqlite_db: Database, nursery: trio.Nursery
) -> None:
    state = RunState(sqlite_db)
    url = f"sqlite:///{sqlite_file}"
    # Room for the run and a few batches in the write-ahead log, not for all 40 units.
    limit = (await trio.Path(sqlite_file).stat()).st_size + 160 * 1024
    process = await start_runner(
        nursery,
        "run",
        str(job),
        "--db",
        url,
        "--report",
        "-",
        cwd=tmp_path,
        preexec_fn=functools.partial(limit_file_size, limit),
    )
    await process.wait(within=60)
    # A write that crosses the limit is short (SQLITE_FULL); one wholly past it fails with EFBIG,
    # which SQLite reports as an I/O error. Either way, the write did not happen.
    causes = ("database or disk is full", "SQLITE_FULL", "SQLITE_IOERR_WRITE")
    run_id = assert_stopped_cleanly(process, url=url, causes=causes)
    assert 0 < await trio.to_thread.run_sync(state.done, run_id) < 40  # what was written is kept
    resumed = await run_runner("run", "--resume", run_id, "--db", url, "--report", "-", cwd=tmp_path)
    assert resumed.process.returncode == 0, resumed.stderr
    assert await trio.to_thread.run_sync(state.run_status, run_id) == "finished"
    await trio.to_thread.run_sync(assert_done_exactly_once, state, run_id)


@pytest.mark.postgres
async def test_killed_postgresql_connections_are_replaced_and_the_run_finishes(
    tmp_path: Path, job: Path, pg_database: Database, nursery: trio.Nursery
) -> None:
    """pg_terminate_backend on every connection of the run, twice: reconnected, retried, done once."""
    state = RunState(pg_database)
    app = f"rt_kill_{secrets.token_hex(4)}"  # only this run's connections are killed
    url = f"{pg_database.url}&application_name={app}"
    process = await start_runner(nursery, "run", str(job), "--db", url, "--report", "-", cwd=tmp_path)
    for done in (8, 20):
        await wait_for(lambda: state.done() >= done, within=30)  # noqa: B023 - awaited at once
        killed = await trio.to_thread.run_sync(terminate_backends, app)
        assert killed > 0
    assert await process.wait(within=60) == 0, process.stderr
    assert "Traceback" not in process.stderr
    (run_id,) = await trio.to_thread.run_sync(state.run_ids)
    assert await trio.to_thread.run_sync(state.run_status, run_id) == "finished"
    await trio.to_thread.run_sync(assert_done_exactly_once, state, run_id)


def delete_database(path: Path) -> None:
    """Delete a SQLite database as a careless `rm runner.db*` would."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def terminate_backends(application_name: str) -> int:
    with psycopg.connect(PG_CONNINFO, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (application_name,),
        ).fetchall()
    return len(rows)


@pytest.mark.postgres
async def test_postgresql_refusing_writes_stops_the_run_marked_failed_then_resume_finishes(
    tmp_path: Path, job: Path, pg_database: Database, nursery: trio.Nursery
) -> None:
    """A lasting error while the database still answers (the attempts table renamed away, as a
    careless migration would): exit 3 and one line, the run marked `failed`, leases released;
    with the table back, --resume finishes every unit exactly once."""
    state = RunState(pg_database)
    url = pg_database.url
    process = await start_runner(nursery, "run", str(job), "--db", url, "--report", "-", cwd=tmp_path)
    await wait_for(lambda: state.done() >= 8, within=30)
    await trio.to_thread.run_sync(rename_table, pg_database, "attempts", "attempts_away")
    try:
        await process.wait(within=60)
    finally:
        await trio.to_thread.run_sync(rename_table, pg_database, "attempts_away", "attempts")
    run_id = assert_stopped_cleanly(process, url=url, causes=('relation "attempts" does not exist',))
    assert await trio.to_thread.run_sync(state.run_status, run_id) == "failed"
    assert await trio.to_thread.run_sync(state.running) == 0  # leases released
    resumed = await run_runner("run", "--resume", run_id, "--db", url, "--report", "-", cwd=tmp_path)
    assert resumed.process.returncode == 0, resumed.stderr
    assert await trio.to_thread.run_sync(state.run_status, run_id) == "finished"
    await trio.to_thread.run_sync(assert_done_exactly_once, state, run_id)


def rename_table(database: Database, old: str, new: str) -> None:
    with database.engine.begin() as conn:
        conn.execute(text(f'ALTER TABLE "{old}" RENAME TO "{new}"'))
