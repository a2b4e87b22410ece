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
