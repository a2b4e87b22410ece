"""``--reuse`` through the engine and the simulator on both databases: repeat n of a case takes the n-th
distinct earlier sample of its request, repeats with no sample left are sent, a reused result is graded
afresh against the current job, and the summary and the run report count units reused and sent."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import trio

from runner.grading.assertions import parse_expect
from runner.report.api import build_run_report, write_run_report
from runner.run.planning import PlanningHooks, open_run
from runner.run.service import RunOptions, execute_job
from runner.spec import CaseSpec, ProviderSpec
from runner.store import repository
from runner.store.records import UnitFinish
from tests.run.helpers import make_job, provider_for, stored_units
from tests.store.factories import ok_attempt

if TYPE_CHECKING:
    from pathlib import Path

    from runner.run.summary import RunSummary
    from runner.simulator.server import SimulatorHandle
    from runner.spec import JobSpec
    from runner.store.db import Database
    from runner.store.records import UnitView
    from tests.conftest import StartSimulator


async def run_on(
    database: Database, job: JobSpec, *, reuse: bool = False
) -> tuple[RunSummary, list[UnitView]]:
    """Run ``job`` to its end in this trio run on ``database``; return the summary and stored units."""
    options = RunOptions(display="quiet", reuse=reuse)
    with trio.fail_after(30):
        run, job = await trio.to_thread.run_sync(open_run, database, job, options)
        summary = await execute_job(database, run, job, options, api_keys={})
    return summary, await stored_units(database, run.id)


def sampled_job(
    simulator: SimulatorHandle, *, repeats: int, expect: dict[str, object] | None = None
) -> JobSpec:
    """One case sampled at temperature 0.9 ``repeats`` times from the test's simulator."""
    provider = provider_for(simulator, "openai-chat", name="sim", params={"temperature": 0.9})
    case = CaseSpec(
        id="c",
        messages=({"role": "user", "content": "Say something."},),
        expect=parse_expect(expect) if expect is not None else None,
    )
    return make_job([provider], [case], repeats=repeats)


def by_repeat(units: list[UnitView]) -> dict[int, UnitView]:
    """A run's units by repeat (the jobs here have one provider and one case)."""
    return {u.repeat: u for u in units}


async def test_each_repeat_reuses_its_own_earlier_sample(
    database: Database, start_simulator: StartSimulator
) -> None:
    """repeats = 3 reuses 3 distinct samples, repeat n the n-th; a third run maps to the originals too."""
    simulator = await start_simulator()
    job = sampled_job(simulator, repeats=3)
    _, first = await run_on(database, job)
    originals = {repeat: unit.id for repeat, unit in by_repeat(first).items()}
    sent = len(simulator.log)

    summary, second = await run_on(database, job, reuse=True)
    assert {r: u.reused_from for r, u in by_repeat(second).items()} == originals
    assert len(simulator.log) == sent  # nothing sent
    assert (summary.reused, summary.sent) == (3, 0)

    # The second run's copies are not samples of their own: a third run maps onto the originals again.
    _, third = await run_on(database, job, reuse=True)
    assert {r: u.reused_from for r, u in by_repeat(third).items()} == originals


async def test_repeats_beyond_the_earlier_samples_are_sent(
    database: Database, start_simulator: StartSimulator, tmp_path: Path
) -> None:
    """2 earlier samples, repeats = 3: repeats 1, 2 reuse them, 3 is sent; summary and report say so."""
    simulator = await start_simulator()
    _, first = await run_on(database, sampled_job(simulator, repeats=2))
    sent = len(simulator.log)

    summary, second = await run_on(database, sampled_job(simulator, repeats=3), reuse=True)
    units = by_repeat(second)
    assert [units[r].reused_from for r in (1, 2)] == [u.id for u in sorted(first, key=lambda u: u.repeat)]
    assert (units[3].reused_from, units[3].status, units[3].attempt_count) == (None, "ok", 1)
    assert len(simulator.log) == sent + 1
    assert (summary.reused, summary.sent) == (2, 1)
    assert "units reused 2, sent 1" in summary.describe()

    def report() -> str:
        with database.session() as session:
            context = build_run_report(session, summary.run_id)
            assert (context.reused, context.sent) == (2, 1)
            return write_run_report(session, summary.run_id, tmp_path / "run.html").read_text()

    html = await trio.to_thread.run_sync(report)
    assert "units reused / sent" in html


async def test_a_reused_result_is_graded_against_the_current_expectation(
    database: Database, start_simulator: StartSimulator
) -> None:
    """Flipping json_valid between runs flips a reused unit's verdict: outcomes are not copied."""
    simulator = await start_simulator()
    first_summary, first = await run_on(
        database, sampled_job(simulator, repeats=2, expect={"json_valid": False, "max_ttft_s": 60})
    )
    assert {u.verdict for u in first} == {"passed"}  # the simulator's answers are prose
    assert first_summary.exit_code == 0

    flipped = sampled_job(simulator, repeats=2, expect={"json_valid": True, "max_ttft_s": 60})
    summary, second = await run_on(database, flipped, reuse=True)
    assert all(u.reused_from is not None for u in second)
    assert {u.verdict for u in second} == {"failed assertions"}
    for unit in second:
        outcomes = {o.name: o.passed for o in unit.assertions}
        assert outcomes == {"json_valid": False, "max_ttft_s": True}  # timings: the sample's own
    assert summary.assertions_failed == 2
    assert summary.exit_code == 1

    # And back: with no expectation at all, a reused unit carries no outcomes of an earlier job.
    _, third = await run_on(database, sampled_job(simulator, repeats=2), reuse=True)
    assert [(u.verdict, u.assertions) for u in third] == [("passed", ()), ("passed", ())]


@pytest.mark.slow  # ~3 s on PostgreSQL: 2,500 earlier answers written, 2,500 copied
def test_the_mapping_holds_across_batches_and_a_resumed_planning(database: Database) -> None:
    """2,500 repeats (two planning batches), planning stopped after the first and resumed: every repeat
    n takes the n-th sample, each graded by the job."""
    provider = ProviderSpec(name="p", dialect="openai-chat", base_url="http://127.0.0.1:9/v1", model="m")
    case = CaseSpec(
        id="c", messages=({"role": "user", "content": "Hi."},), expect=parse_expect({"contains": "sunny"})
    )
    job = make_job([provider], [case], repeats=2500)
    earlier, _ = open_run(database, job, RunOptions())
    with database.session() as session:  # the earlier run's answers, written as its engine would
        claimed = repository.claim_units(session, earlier.id, "w", limit=2500, lease_seconds=60)
        repository.write_batch(
            session,
            [UnitFinish(unit_id=u.id, owner="w", status="ok", attempt=ok_attempt(u.key)) for u in claimed],
        )
    samples = {u.repeat: u.id for u in claimed}

    with pytest.raises(KeyboardInterrupt):  # as a Ctrl-C after the first batch of 2,000
        open_run(database, job, RunOptions(reuse=True), hooks=PlanningHooks(stop_requested=lambda: True))
    with database.session() as session:
        run = repository.list_runs(session)[0]
        first_batch = [u.reused_from for u in repository.iter_units(session, run.id)]
    assert run.status == "planning"
    assert first_batch == [samples[n] for n in range(1, 2001)]
    open_run(database, None, RunOptions(resume=run.id, reuse=True))
    with database.session() as session:
        units = list(repository.iter_units(session, run.id))
    assert {u.repeat: u.reused_from for u in units} == samples
    assert {(u.status, u.verdict, tuple(o.name for o in u.assertions)) for u in units} == {
        ("ok", "passed", ("contains",))
    }
