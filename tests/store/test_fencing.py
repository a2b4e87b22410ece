"""Lease fencing on both backends: a claim's token, superseded late writes, numbers allocated by the write."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import text

from runner.store import repository
from runner.store.records import AttemptWrite, UnitFinish

from .factories import failed_attempt, make_completion, make_job, make_units, ok_attempt

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from runner.store.db import Database

LEASE = 30.0


def _one_unit_run(session: Session) -> str:
    run = repository.create_run(session, make_job(), host="box", version="0.1.0")
    repository.add_units(session, run.id, make_units(1))
    return run.id


def test_every_claim_hands_out_a_new_token(session: Session) -> None:
    """A unit claimed, expired and claimed again carries a higher token the second time."""
    run_id = _one_unit_run(session)
    now = datetime.now(UTC)
    (first,) = repository.claim_units(session, run_id, "a", limit=1, lease_seconds=LEASE, now=now)
    later = now + timedelta(seconds=LEASE + 1)
    (second,) = repository.claim_units(session, run_id, "b", limit=1, lease_seconds=LEASE, now=later)
    assert (first.lease_token, second.lease_token) == (1, 2)


def test_late_writes_of_a_taken_lease_are_superseded(db: Database, session: Session) -> None:
    """The paused holder's retry and finish, written after another process finished the unit, are
    stored superseded with fresh numbers; the unit's result, status and attempt count stay the winner's."""
    run_id = _one_unit_run(session)
    now = datetime.now(UTC)
    (slow,) = repository.claim_units(session, run_id, "slow", limit=1, lease_seconds=LEASE, now=now)
    later = now + timedelta(seconds=LEASE + 1)
    (fast,) = repository.claim_units(session, run_id, "fast", limit=1, lease_seconds=LEASE, now=later)
    winner = make_completion("the winner's answer")
    won = repository.write_batch(
        session,
        [
            UnitFinish(
                unit_id=fast.id,
                owner="fast",
                status="ok",
                attempt=ok_attempt(fast.key, 1, winner),
                lease_token=fast.lease_token,
            )
        ],
    )
    assert won.finished == (fast.id,)
    late = repository.write_batch(
        session,
        [
            AttemptWrite(unit_id=slow.id, attempt=failed_attempt(slow.key, 1), lease_token=slow.lease_token),
            UnitFinish(
                unit_id=slow.id,
                owner="slow",
                status="ok",
                attempt=ok_attempt(slow.key, 2, make_completion("the late answer")),
                lease_token=slow.lease_token,
            ),
        ],
    )
    assert (late.finished, late.lost, late.attempts, late.superseded) == ((), (slow.id,), 2, 2)
    (view,) = repository.iter_units(session, run_id)
    assert view.status == "ok"
    assert view.completion == winner
    assert [(a.number, a.superseded) for a in view.attempts] == [(1, False), (2, True), (3, True)]
    assert view.attempt_count == 1  # the attempts that count: not the superseded ones
    assert view.final is not None
    assert view.final.number == 1
    with db.engine.connect() as conn:
        stored = conn.execute(text("SELECT count(*) FROM attempts WHERE superseded")).scalar_one()
    assert stored == 2


def test_a_write_under_the_current_token_is_applied_even_after_expiry(session: Session) -> None:
    """A holder whose lease ran out but was not taken over still finishes its unit (token unchanged)."""
    run_id = _one_unit_run(session)
    past = datetime.now(UTC) - timedelta(seconds=LEASE * 10)
    (unit,) = repository.claim_units(session, run_id, "w", limit=1, lease_seconds=LEASE, now=past)
    outcome = repository.write_batch(
        session,
        [UnitFinish(unit_id=unit.id, owner="w", status="ok", attempt=ok_attempt(unit.key), lease_token=1)],
    )
    assert (outcome.finished, outcome.superseded) == ((unit.id,), 0)


def test_attempt_numbers_are_allocated_by_the_write(session: Session) -> None:
    """Two writers that both believe they make attempt 1 get numbers 1 and 2, never two 1s."""
    run_id = _one_unit_run(session)
    (unit,) = repository.claim_units(session, run_id, "w", limit=1, lease_seconds=LEASE)
    for _ in range(2):
        repository.write_batch(session, [AttemptWrite(unit_id=unit.id, attempt=failed_attempt(unit.key, 1))])
    (view,) = repository.iter_units(session, run_id)
    assert [a.number for a in view.attempts] == [1, 2]
    assert view.attempt_count == 2


def test_superseded_attempts_are_waste_in_the_cost_rows(session: Session) -> None:
    """A superseded successful attempt's cost is spent (spend_so_far) but not an ok attempt's."""
    run_id = _one_unit_run(session)
    now = datetime.now(UTC)
    (slow,) = repository.claim_units(session, run_id, "slow", limit=1, lease_seconds=LEASE, now=now)
    later = now + timedelta(seconds=LEASE + 1)
    (fast,) = repository.claim_units(session, run_id, "fast", limit=1, lease_seconds=LEASE, now=later)
    for claim, owner in ((fast, "fast"), (slow, "slow")):
        item = UnitFinish(
            unit_id=claim.id,
            owner=owner,
            status="ok",
            attempt=ok_attempt(claim.key),
            cost_computed=0.5,
            lease_token=claim.lease_token,
        )
        repository.write_batch(session, [item])
    costs = [c for c in repository.attempt_costs(session) if c.run_id == run_id]
    assert sorted((c.ok, c.superseded) for c in costs) == [(False, True), (True, False)]
    assert repository.spend_so_far(session, run_id) == 2 * costs[0].cost_usd  # type: ignore[operator]


def test_live_leases_counts_unexpired_leases_per_owner(session: Session) -> None:
    """Only leases that have not expired count as a live process's work."""
    run = repository.create_run(session, make_job(), host="box", version="0.1.0")
    repository.add_units(session, run.id, make_units(5))
    now = datetime.now(UTC)
    repository.claim_units(session, run.id, "old", limit=2, lease_seconds=1, now=now - timedelta(seconds=60))
    repository.claim_units(session, run.id, "live", limit=3, lease_seconds=LEASE, now=now)
    assert repository.live_leases(session, run.id, now=now) == {"live": 3}
