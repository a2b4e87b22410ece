"""Opening a run in-process on both databases: the run is announced before planning, planning reports
its progress, and a run left `planning` is finished planning by --resume and --join."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from sqlalchemy import text

from runner.job import load_job
from runner.run.planning import PlanningHooks, open_run
from runner.run.service import RunOptions
from runner.store import repository

if TYPE_CHECKING:
    from pathlib import Path

    from runner.spec import JobSpec
    from runner.store.db import Database
    from runner.store.records import RunInfo

JOB = """
name = "plan"
[defaults]
repeats = 2500
[[providers]]
name = "a"
dialect = "openai-chat"
model = "m"
simulator = {}
[[providers]]
name = "b"
dialect = "anthropic-messages"
model = "m"
simulator = {}

[[cases]]
id = "c"
prompt = "Hi."
"""


def _load(tmp_path: Path) -> JobSpec:
    path = tmp_path / "job.toml"
    path.write_text(JOB)
    return load_job(path)


def _stored(db: Database) -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM units")).scalar_one())


def test_the_run_is_announced_before_planning_then_progress(database: Database, tmp_path: Path) -> None:
    """announce sees the run `planning` with no unit stored; progress counts up to the total."""
    seen: list[tuple[str, int]] = []
    progress: list[tuple[int, int]] = []

    def announce(run: RunInfo, job: JobSpec) -> None:
        with database.session() as session:
            seen.append((repository.get_run(session, run.id).status, _stored(database)))

    run, _ = open_run(
        database,
        _load(tmp_path),
        RunOptions(),
        hooks=PlanningHooks(announce=announce, progress=lambda *p: progress.append(p), report_seconds=0),
    )
    assert seen == [("planning", 0)]
    assert progress == [(2000, 5000), (4000, 5000), (5000, 5000)]
    with database.session() as session:
        assert repository.get_run(session, run.id).status == "running"
    assert run.status == "running"


def test_resume_and_join_finish_an_unfinished_planning(database: Database, tmp_path: Path) -> None:
    """A run left `planning` with part of its units is completed by --join (then --resume is a no-op
    for planning): every unit stored once, the run `running`."""
    job = _load(tmp_path)
    with database.session() as session:
        run = repository.create_run(session, job, host="h", version="v", status="planning")
        repository.add_units(session, run.id, [])  # nothing yet: as if killed before the first batch
    for options in (RunOptions(join=run.id), RunOptions(resume=run.id)):
        reopened, _ = open_run(database, None, options)
        assert reopened.id == run.id
        with database.session() as session:
            assert repository.get_run(session, run.id).status == "running"
            assert sum(repository.unit_counts(session, run.id).values()) == 5000


def test_a_requested_stop_ends_planning_between_batches(database: Database, tmp_path: Path) -> None:
    """A stop asked for (a signal handler sets it) ends planning after a whole batch: the run stays
    `planning` with exactly the batches committed so far."""
    asked: list[int] = []

    def stop() -> bool:
        asked.append(1)
        return len(asked) == 2  # after the second batch

    with pytest.raises(KeyboardInterrupt):
        open_run(database, _load(tmp_path), RunOptions(), hooks=PlanningHooks(stop_requested=stop))
    assert _stored(database) == 4000
    with database.session() as session:
        (run,) = repository.list_runs(session)
    assert run.status == "planning"
