"""A unit's verdict as the store counts it: the failed-assertion count behind `runner run`'s exit code."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runner.grading.assertions import AssertionOutcome
from runner.store import repository

from .factories import HELD, finished_run

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

BROKEN = AssertionOutcome(name="max_ttft_s", passed=False, detail="ttft 2.000 s")


def test_failed_units_outcomes_are_not_counted_as_failed_assertions(session: Session) -> None:
    """Outcomes an older runner stored on a failed unit's partial output are not evaluated: not counted."""
    # The third as runs made before grading only final results stored them: outcomes of partial output.
    run_id, (answered, broke, cut) = finished_run(
        session, [("ok", (HELD,)), ("ok", (HELD, BROKEN)), ("failed", (BROKEN,))]
    )
    assert repository.count_failed_assertions(session, run_id) == 1
    verdicts = {view.key: view.verdict for view in repository.iter_units(session, run_id)}
    assert verdicts == {answered.key: "passed", broke.key: "failed assertions", cut.key: "failed"}


GRADING = AssertionOutcome(name="judge", passed=False, detail="grading", pending=True)


def test_a_judge_still_grading_is_no_failed_assertion_in_any_count(session: Session) -> None:
    """A pending judge outcome (stored with passed false) is neither a pass nor a failed assertion: the
    run's tallies (`runner runs` / `show`), the failure breakdown and the viewer's matrix agree."""
    from runner.store.repository import browse, pages

    run_id, (grading, broke) = finished_run(session, [("ok", (HELD, GRADING)), ("ok", (HELD, BROKEN))])
    verdicts = {view.key: view.verdict for view in repository.iter_units(session, run_id)}
    assert verdicts == {grading.key: "not done", broke.key: "failed assertions"}
    assert repository.count_failed_assertions(session, run_id) == 1
    assert browse.run_tally(session, run_id).failed_assertions == 1
    breakdown = repository.failure_breakdown(session, run_id)
    assert [(p.failed_assertions, p.assertion_units) for p in breakdown] == [(1, (broke.key,))]
    assert sum(c.failed_assertions for c in pages.case_counts(session, run_id)) == 1
