"""``resume_run(retry_failed=True)`` on both backends: failed units reopened with their history kept."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runner.grading.assertions import AssertionOutcome
from runner.store import repository
from runner.store.records import UnitFinish

from .factories import failed_attempt, finished_run, ok_attempt

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

LEASE = 30.0
MISSED = (AssertionOutcome(name="contains", passed=False, detail="missing 'x'"),)


def ended_run(session: Session) -> str:
    """A run of three units ended: one ok, one ok with a failed assertion, one failed."""
    run_id, _ = finished_run(session, [("ok", None), ("ok", MISSED), ("failed", None)])
    repository.mark_run(session, run_id, "finished")
    return run_id


def test_retry_failed_reopens_only_failed_units(session: Session) -> None:
    """Only the failed unit becomes pending again; the ok one and the one with a failed assertion stay."""
    run_id = ended_run(session)
    assert repository.resume_run(session, run_id, retry_failed=True) == 1
    assert repository.get_run(session, run_id).status == "running"
    again = repository.claim_units(session, run_id, "new", limit=10, lease_seconds=LEASE)
    assert [u.key for u in again] == ["mini/case-2/0"]
    assert again[0].attempts == 1  # its earlier attempt still counts


def test_retried_unit_keeps_its_attempts_and_takes_the_new_result(session: Session) -> None:
    """The new attempt is number 2, the first stays stored, and the unit's result is the new one."""
    run_id = ended_run(session)
    repository.resume_run(session, run_id, retry_failed=True)
    views = {v.key: v for v in repository.iter_units(session, run_id)}
    reopened = views["mini/case-2/0"]
    assert (reopened.status, reopened.completion) == ("pending", None)  # the partial output's rows went
    assert reopened.attempts[0].partial_choices[0].text == "The wea"  # ... and stay with its attempt
    unit = repository.claim_units(session, run_id, "new", limit=1, lease_seconds=LEASE)[0]
    outcome = repository.write_batch(
        session, [UnitFinish(unit_id=unit.id, owner="new", status="ok", attempt=ok_attempt(unit.key))]
    )
    assert outcome.finished == (unit.id,)
    view = next(v for v in repository.iter_units(session, run_id) if v.key == "mini/case-2/0")
    assert view.status == "ok"
    assert view.verdict == "passed"
    assert [a.number for a in view.attempts] == [1, 2]
    assert view.attempts[0].error is not None
    assert view.completion is not None
    assert view.completion.choices[0].text == "The weather in Tokyo is sunny."
    assert view.attempt_count == 2


def test_plain_resume_leaves_failed_units_alone(session: Session) -> None:
    """Without retry_failed a resumed finished run has nothing to run."""
    run_id = ended_run(session)
    assert repository.resume_run(session, run_id) == 0
    assert repository.claim_units(session, run_id, "new", limit=10, lease_seconds=LEASE) == []


def test_failure_breakdown_counts_units_per_provider_by_kind_and_assertion(session: Session) -> None:
    """Failed units count under their final attempt's kind, ok units under each assertion they failed."""
    run_id = ended_run(session)
    assert repository.failure_breakdown(session, run_id) == (
        repository.ProviderFailures(
            provider="mini",
            failed=1,
            error_kinds={"early_close": 1},
            failed_units=("mini/case-2/0",),
            failed_assertions=1,
            assertions={"contains": 1},
            assertion_units=("mini/case-1/0",),
        ),
    )


def test_failure_breakdown_reads_the_retried_final_attempt(session: Session) -> None:
    """A failed unit retried into another failure counts under its latest attempt's kind; a run with
    no failure has an empty breakdown once its failed unit has passed."""
    run_id = ended_run(session)
    repository.resume_run(session, run_id, retry_failed=True)
    unit = repository.claim_units(session, run_id, "new", limit=1, lease_seconds=LEASE)[0]
    repository.write_batch(
        session,
        [
            UnitFinish(
                unit_id=unit.id,
                owner="new",
                status="failed",
                attempt=failed_attempt(unit.key, kind="timeout"),
            )
        ],
    )
    (mini,) = repository.failure_breakdown(session, run_id)
    assert mini.error_kinds == {"timeout": 1}
    repository.resume_run(session, run_id, retry_failed=True)
    unit = repository.claim_units(session, run_id, "new", limit=1, lease_seconds=LEASE)[0]
    repository.write_batch(
        session, [UnitFinish(unit_id=unit.id, owner="new", status="ok", attempt=ok_attempt(unit.key))]
    )
    (mini,) = repository.failure_breakdown(session, run_id)
    assert (mini.failed, mini.failed_assertions) == (0, 1)
