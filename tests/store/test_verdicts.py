"""A unit's verdict as the store counts it: the failed-assertion count behind `runner run`'s exit code."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runner.grading.assertions import AssertionOutcome
from runner.store import repository
from runner.store.records import UnitFinish

from .factories import failed_attempt, make_job, make_units, ok_attempt

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

HELD = AssertionOutcome(name="contains", passed=True, detail="all found")
BROKEN = AssertionOutcome(name="max_ttft_s", passed=False, detail="ttft 2.000 s")


def test_failed_units_outcomes_are_not_counted_as_failed_assertions(session: Session) -> None:
    """Outcomes an older runner stored on a failed unit's partial output are not evaluated: not counted."""
    run = repository.create_run(session, make_job(), host="box", version="0.1.0")
    repository.add_units(session, run.id, make_units(3))
    answered, broke, cut = repository.claim_units(session, run.id, "w", limit=3, lease_seconds=30.0)
    repository.write_batch(
        session,
        [
            UnitFinish(
                unit_id=answered.id,
                owner="w",
                status="ok",
                attempt=ok_attempt(answered.key),
                assertions=(HELD,),
            ),
            UnitFinish(
                unit_id=broke.id,
                owner="w",
                status="ok",
                attempt=ok_attempt(broke.key),
                assertions=(HELD, BROKEN),
            ),
            # As runs made before grading only final results stored them: outcomes of partial output.
            UnitFinish(
                unit_id=cut.id,
                owner="w",
                status="failed",
                attempt=failed_attempt(cut.key),
                assertions=(BROKEN,),
            ),
        ],
    )
    assert repository.count_failed_assertions(session, run.id) == 1
    verdicts = {view.key: view.verdict for view in repository.iter_units(session, run.id)}
    assert verdicts == {answered.key: "passed", broke.key: "failed assertions", cut.key: "failed"}
