"""The LLM judge through the engine: grading units in the run's queue, verdicts as judge outcomes, cost apart.

On the simulator playing a judge (SQLite and PostgreSQL) and on a second local HTTP server acting as judge
(a fenced verdict, an answer without one, HTTP 500s).
"""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

import pytest
import trio
from sqlalchemy import text

from runner.job.load import parse_job
from runner.report.cost import build_cost_context
from runner.report.export import write_export
from runner.report.junit import write_junit
from runner.run.planning import open_run
from runner.run.service import RunOptions, execute_job
from runner.store import repository
from tests.fakes.judge_server import USAGE, judge_server

if TYPE_CHECKING:
    from runner.run.summary import RunSummary
    from runner.spec import JobSpec
    from runner.store.db import Database
    from runner.store.records import UnitView

SIM_JOB = """\
name = "judged"

[defaults]
repeats = 2

[[providers]]
name = "target"
dialect = "openai-chat"
model = "m"
price = { input = 1.0, output = 1.0 }
params = { stream_options = { include_usage = true } }
simulator = { seed = 3 }

[[providers]]
name = "grader"
dialect = "openai-chat"
model = "judge-model"
role = "judge"
price = { input = 10.0, output = 10.0 }
params = { stream_options = { include_usage = true } }
simulator = { judge = { pass_when = "PASS_WHEN" } }

[[cases]]
id = "judged"
prompt = "Tell me about {{ topic }}."
vars = [{ id = "fox", topic = "foxes" }]

[cases.expect]
judge = { provider = "grader", rubric = "The answer is about {{ topic }}." }
contains = ""

[[cases]]
id = "plain"
prompt = "Say hi."
"""


async def run_job(database: Database, job: JobSpec) -> tuple[RunSummary, list[UnitView]]:
    """Run ``job`` to its end in this trio run; return the summary and the job's units as stored."""
    options = RunOptions(display="quiet")
    run, job = await trio.to_thread.run_sync(open_run, database, job, options)
    with trio.fail_after(60):
        summary = await execute_job(database, run, job, options, api_keys={})

    def read() -> list[UnitView]:
        with database.session() as session:
            return list(repository.iter_units(session, run.id))

    return summary, await trio.to_thread.run_sync(read)


def grading_rows(database: Database, run_id: str) -> list[tuple[str, str, int, int]]:
    """(key, status, attempts, graded unit id) of the run's grading units."""
    with database.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT key, status, attempts, graded_unit_id FROM units"
                " WHERE run_id = :r AND graded_unit_id IS NOT NULL ORDER BY key"
            ),
            {"r": run_id},
        ).all()
    return [(str(key), str(status), int(attempts), int(graded)) for key, status, attempts, graded in rows]


@pytest.mark.parametrize(
    ("pass_when", "passed", "code"),
    [pytest.param(".", True, 0, id="pass"), pytest.param("^$", False, 1, id="fail")],
)
async def test_every_final_result_of_a_judged_case_is_graded_once(
    database: Database, pass_when: str, passed: bool, code: int
) -> None:
    """Each judged unit gets one grading unit whose verdict is its judge outcome; exit 1 when it fails."""
    job = parse_job(SIM_JOB.replace("PASS_WHEN", pass_when), path="job.toml")
    summary, units = await run_job(database, job)
    assert sorted(u.key for u in units) == [
        "target/judged/fox/1",
        "target/judged/fox/2",
        "target/plain/1",
        "target/plain/2",
    ]
    judged = [u for u in units if u.case_id == "judged/fox"]
    for unit in judged:
        judge, contains = unit.assertions  # the verdict takes the pending outcome's place: table order
        assert contains.name == "contains"
        assert (judge.name, judge.passed, judge.error, judge.pending) == ("judge", passed, False, False)
        assert judge.score == (1.0 if passed else 0.0)
        assert pass_when in judge.detail  # the judge's reason
    assert all(not u.assertions for u in units if u.case_id == "plain")
    grading = grading_rows(database, summary.run_id)
    assert [(key, status, attempts) for key, status, attempts, _ in grading] == [
        ("target/judged/fox/1#judge", "ok", 1),
        ("target/judged/fox/2#judge", "ok", 1),
    ]
    assert sorted(g[3] for g in grading) == sorted(u.id for u in judged)
    # Not units of the job: counts, verdicts and the exit code are the job's units'.
    assert sum(summary.counts.values()) == 4
    assert summary.verdicts == {
        "passed": 4 if passed else 2,
        "failed assertions": 0 if passed else 2,
        "failed": 0,
        "not done": 0,
    }
    assert summary.exit_code == code
    # Grading cost is part of the run's spend, and shown apart.
    assert summary.grading_usd > 0
    job_cost = sum(a.cost_usd or 0.0 for u in units for a in u.attempts)
    assert summary.spent_usd == pytest.approx(job_cost + summary.grading_usd)
    assert f"(grading ${summary.grading_usd:.6f})" in summary.describe()

    def costs() -> dict[tuple[str, ...], float]:
        with database.session() as session:
            context = build_cost_context(repository.attempt_costs(session), by=("provider",))
        return {row.keys: row.cost for row in context.rows}

    # `runner cost` files the judge's attempts apart; together they are the run's spend.
    by_provider = await trio.to_thread.run_sync(costs)
    assert set(by_provider) == {("target",), ("grader (grading)",)}
    assert by_provider[("grader (grading)",)] == pytest.approx(summary.grading_usd)
    assert sum(by_provider.values()) == pytest.approx(summary.spent_usd)


async def test_exports_and_junit_leave_grading_units_out(database: Database) -> None:
    """JSONL rows and JUnit test cases are the job's units only; the judge outcome is in their assertions."""
    job = parse_job(SIM_JOB.replace("PASS_WHEN", "."), path="job.toml")
    summary, _ = await run_job(database, job)

    def export() -> tuple[list[dict[str, object]], ET.Element]:
        with database.session() as session:
            jsonl, junit = io.StringIO(), io.StringIO()
            write_export(repository.iter_units(session, summary.run_id), jsonl, "jsonl")
            write_junit(repository.iter_units(session, summary.run_id), junit, name="judged")
        return [json.loads(line) for line in jsonl.getvalue().splitlines()], ET.fromstring(junit.getvalue())

    records, tree = await trio.to_thread.run_sync(export)
    assert sorted(r["unit"] for r in records) == [  # type: ignore[type-var]
        "target/judged/fox/1",
        "target/judged/fox/2",
        "target/plain/1",
        "target/plain/2",
    ]
    names = {a["name"] for r in records for a in r["assertions"]}  # type: ignore[attr-defined]
    assert names == {"contains", "judge"}
    assert len(tree.findall(".//testcase")) == 4
    assert {s.get("name") for s in tree.findall("testsuite")} == {"target"}


JUDGE_SERVER_JOB = """\
name = "http-judge"

[[providers]]
name = "target"
dialect = "openai-chat"
model = "m"
simulator = {{}}

[[providers]]
name = "grader"
dialect = "openai-chat"
model = "judge"
role = "judge"
base_url = "{base_url}"
price = {{ input = 1.0, output = 2.0 }}
retry = {{ max_attempts = 3, backoff_initial = 0.01, backoff_max = 0.02 }}

[[cases]]
id = "fenced"
prompt = "fenced"
expect = {{ judge = {{ provider = "grader", rubric = "r", threshold = 0.75 }} }}

[[cases]]
id = "fenced-strict"
prompt = "fenced strict"
expect = {{ judge = {{ provider = "grader", rubric = "r", threshold = 0.9 }} }}

[[cases]]
id = "garbage"
prompt = "garbage"
expect = {{ judge = {{ provider = "grader", rubric = "r" }} }}

[[cases]]
id = "broken"
prompt = "broken"
expect = {{ judge = {{ provider = "grader", rubric = "r" }} }}
"""


async def test_a_judge_on_its_own_http_server(database: Database, nursery: trio.Nursery) -> None:
    """Fenced verdicts are read (threshold decides), prose without one and a failing judge are errors."""
    server = await nursery.start(judge_server().serve)
    job = parse_job(JUDGE_SERVER_JOB.format(base_url=server.base_url), path="job.toml")
    summary, units = await run_job(database, job)
    outcomes = {u.case_id: u.assertions[0] for u in units}
    assert set(outcomes) == {"fenced", "fenced-strict", "garbage", "broken"}
    fenced, strict = outcomes["fenced"], outcomes["fenced-strict"]
    assert (fenced.passed, fenced.score, fenced.error) == (True, 0.8, False)
    assert fenced.detail == "score 0.8 >= 0.75: names the city"
    assert (strict.passed, strict.error) == (False, False)
    assert (outcomes["garbage"].passed, outcomes["garbage"].error) == (False, True)
    assert "holds no JSON object" in outcomes["garbage"].detail
    broken = outcomes["broken"]
    assert (broken.passed, broken.error) == (False, True)
    assert "grading request failed" in broken.detail
    assert "judge overloaded" in broken.detail
    # Every attempt went through the engine: retried 500s are stored, the judge's limits applied.
    grading = {key: (status, attempts) for key, status, attempts, _ in grading_rows(database, summary.run_id)}
    assert grading == {
        "target/fenced/1#judge": ("ok", 1),
        "target/fenced-strict/1#judge": ("ok", 1),
        "target/garbage/1#judge": ("ok", 1),
        "target/broken/1#judge": ("failed", 3),
    }
    assert len(server.bodies) == 6
    bodies = [json.loads(body) for body in server.bodies]
    assert all(b["model"] == "judge" and len(b["messages"]) == 1 for b in bodies)
    # Three answered requests, each with the server's usage, at $1 / $2 per million tokens.
    answered = USAGE["prompt_tokens"] * 1.0 + USAGE["completion_tokens"] * 2.0
    assert summary.grading_usd == pytest.approx(3 * answered / 1e6)
    assert summary.verdicts["failed assertions"] == 3
    assert summary.exit_code == 1

    def breakdown() -> tuple[repository.ProviderFailures, ...]:
        with database.session() as session:
            return repository.failure_breakdown(session, summary.run_id)

    # The failed grading request is the target unit's judge error, not a failed unit of the judge.
    (failures,) = await trio.to_thread.run_sync(breakdown)
    assert (failures.provider, failures.failed, dict(failures.assertions)) == ("target", 0, {"judge": 3})
