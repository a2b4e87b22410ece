"""A run killed while its judge grades: --resume grades exactly what was not graded, each unit once.

`runner run` as a real OS process, SIGKILLed once every answer is stored and the (slow) judge's grading
requests are in flight; one grading unit is also removed, as a run stopped between a result and its
grading's queueing would leave it.
"""

from __future__ import annotations

import json
import signal
from typing import TYPE_CHECKING, Any

import pytest
import trio
from sqlalchemy import text

from runner.run.summary import summarize
from tests.run.processes import run_runner, start_runner, wait_for

if TYPE_CHECKING:
    from pathlib import Path

    from runner.store.db import Database

pytestmark = pytest.mark.slow  # subprocesses, a kill and a slow judge: ~10 s

JOB = """\
name = "judged-kill"

[defaults]
repeats = 4

[[providers]]
name = "target"
dialect = "openai-chat"
model = "m"
simulator = { output_tokens = "5" }

[[providers]]
name = "grader"
dialect = "openai-chat"
model = "j"
role = "judge"
simulator = { judge = { pass_when = "." }, latency = "ttfb=2.5" }

[[cases]]
id = "c"
prompt = "Say something."
expect = { judge = { provider = "grader", rubric = "Says something." } }
"""


def rows(database: Database, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    """The rows of one SQL query, as tuples."""
    with database.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text(sql), params)]


def state(database: Database) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """(the job's units: key, status, judge outcome; the grading units: key, status, attempts)."""
    targets = rows(
        database,
        "SELECT u.key, u.status, r.assertions FROM units u LEFT JOIN results r ON r.unit_id = u.id"
        " WHERE u.graded_unit_id IS NULL ORDER BY u.key",
    )
    judged = [
        (key, status, next(o for o in (json.loads(a) if isinstance(a, str) else a) if o["name"] == "judge"))
        for key, status, a in targets
        if a is not None
    ]
    grading = rows(
        database,
        "SELECT u.key, u.status, count(a.id) FROM units u LEFT JOIN attempts a ON a.unit_id = u.id"
        " WHERE u.graded_unit_id IS NOT NULL GROUP BY u.key, u.status ORDER BY u.key",
    )
    return judged, grading


async def test_resume_grades_what_was_not_graded_exactly_once(
    tmp_path: Path, database: Database, nursery: trio.Nursery
) -> None:
    """Killed mid-grading: answers keep a pending judge outcome; --resume grades each unit once."""
    job = tmp_path / "job.toml"
    job.write_text(JOB)
    db = ["--db", database.url, "--report", "-"]
    process = await start_runner(nursery, "run", str(job), *db, cwd=tmp_path)

    def grading_in_flight() -> bool:
        judged, grading = state(database)
        return len(judged) == 4 and [g[1] for g in grading] == ["running"] * 4

    await wait_for(grading_in_flight, within=30)
    process.send_signal(signal.SIGKILL)
    assert await process.wait(within=10) == -signal.SIGKILL
    judged, grading = state(database)
    assert all(status == "ok" and outcome["pending"] for _, status, outcome in judged), judged
    assert [(g[1], g[2]) for g in grading] == [("running", 0)] * 4  # the judge had not answered
    ((run_id,),) = rows(database, "SELECT id FROM runs")
    stopped = await trio.to_thread.run_sync(summarize, database, run_id)
    assert stopped.verdicts == {"passed": 0, "failed assertions": 0, "failed": 0, "not done": 4}
    # As if the run had stopped between unit 4's result and the queueing of its grading.
    with database.engine.begin() as conn:
        conn.execute(text("DELETE FROM units WHERE key = 'target/c/4#judge'"))

    resumed = await run_runner("run", "--resume", "latest", *db, cwd=tmp_path, within=60)
    assert resumed.process.returncode == 0, resumed.stderr
    assert "1 finished units were not graded yet" in resumed.stderr
    judged, grading = state(database)
    assert [(key, outcome["passed"], outcome.get("pending", False)) for key, _, outcome in judged] == [
        (f"target/c/{n}", True, False) for n in range(1, 5)
    ]
    assert grading == [(f"target/c/{n}#judge", "ok", 1) for n in range(1, 5)]
    assert "units passed 4," in resumed.stderr
