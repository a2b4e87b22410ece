"""A run's verdicts through the engine and the simulator: what is stored, what the run summary says, what
it exits with, and that the run report read from the same database agrees."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import trio

from runner.grading.assertions import parse_expect
from runner.report.api import build_run_report
from runner.spec import CaseSpec, RetryPolicy
from runner.store.db import open_database
from tests.run.helpers import make_job, provider_for, run_in_process

pytestmark = pytest.mark.usefixtures("transport")  # on both transports (tests/run/conftest.py)

if TYPE_CHECKING:
    from pathlib import Path

    from tests.conftest import StartSimulator

ONCE = RetryPolicy(max_attempts=1, backoff_initial=0.01, backoff_max=0.05)
CASES = [
    # Holds on any answer, partial output of a cut-off stream included.
    CaseSpec(
        id="holds",
        messages=({"role": "user", "content": "Say something."},),
        expect=parse_expect({"not_contains": "zzz-never-said"}),
    ),
    CaseSpec(
        id="misses",
        messages=({"role": "user", "content": "Say something else."},),
        expect=parse_expect({"contains": "zzz-never-said", "not_contains": "zzz-also-never"}),
    ),
]


async def test_verdicts_agree_in_store_summary_exit_code_and_report(
    tmp_path: Path, start_simulator: StartSimulator
) -> None:
    """A cut-off unit's partial output is not graded; summary, exit code and report count the same units."""
    simulator = await start_simulator()
    good = provider_for(simulator, "openai-chat", name="good", retry=ONCE)
    # Each answer is cut after 3 token events: the unit fails with partial output stored.
    cut = provider_for(
        simulator, "openai-chat", name="cut", retry=ONCE, headers={"x-sim-faults": "close_abrupt:3@1"}
    )
    with trio.fail_after(30):
        summary, units = await run_in_process(tmp_path, make_job([good, cut], CASES))
    by_key = {u.key: u for u in units}
    assert {k: u.verdict for k, u in by_key.items()} == {
        "good/holds/1": "passed",
        "good/misses/1": "failed assertions",
        "cut/holds/1": "failed",
        "cut/misses/1": "failed",
    }
    assert by_key["cut/holds/1"].completion is not None  # the partial output is kept ...
    assert by_key["cut/holds/1"].assertions == ()  # ... but not graded
    assert dict(summary.verdicts) == {"passed": 1, "failed assertions": 1, "failed": 2, "not done": 0}
    assert summary.exit_code == 1
    line = summary.describe()
    assert "units passed 1, units with failed assertions 1, failed (no result) 2, not done 0" in line
    assert "assertions failed" not in line
    with open_database(f"sqlite:///{tmp_path / 'runner.db'}") as db, db.session() as session:
        report = build_run_report(session, summary.run_id)
    stats = report.summary
    assert (stats.passed, stats.failed_assertions, stats.failed, stats.unfinished) == (1, 1, 2, 0)
    assert (stats.assertions_passed, stats.assertions_total, stats.assertions_not_evaluated) == (2, 3, 3)
    assert [c.verdict for c in report.cards[:3]] == ["failed assertions", "failed", "failed"]


async def test_a_run_whose_units_all_pass_exits_0(tmp_path: Path, start_simulator: StartSimulator) -> None:
    """Every unit ok with its assertions held: verdict passed, exit code 0."""
    simulator = await start_simulator()
    provider = provider_for(simulator, "openai-chat", name="good", retry=ONCE)
    with trio.fail_after(30):
        summary, _ = await run_in_process(tmp_path, make_job([provider], CASES[:1], repeats=2))
    assert dict(summary.verdicts) == {"passed": 2, "failed assertions": 0, "failed": 0, "not done": 0}
    assert summary.exit_code == 0
