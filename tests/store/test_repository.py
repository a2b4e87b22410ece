"""The repository on both backends: runs, the unit queue and its leases, batched writes, reads."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import text

from runner.errors import StorageError
from runner.grading.assertions import AssertionOutcome
from runner.store import repository
from runner.store.leases import RunQueue
from runner.store.records import AttemptWrite, ErrorView, ReusedSample, UnitFinish

from .factories import FAKE_KEY, failed_attempt, make_completion, make_job, make_units, ok_attempt

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from runner.model import AttemptError
    from runner.store.db import Database

LEASE = 30.0


def new_run(session: Session, units: int = 5) -> str:
    """A run with ``units`` pending units; its id."""
    run = repository.create_run(session, make_job(), host="box", version="0.1.0")
    repository.add_units(session, run.id, make_units(units))
    return run.id


def test_create_run_stores_frozen_inputs_without_secrets(db: Database, session: Session) -> None:
    """A run stores its spec, prices, tags and host, and redacts secret-looking header values."""
    run = repository.create_run(session, make_job(), host="box", version="0.1.0")
    loaded = repository.get_run(session, run.id)
    assert loaded == run
    assert loaded.id.startswith("r-")
    assert len(loaded.id) == 8
    assert loaded.status == "running"
    assert loaded.started_at.tzinfo is not None
    assert loaded.tags == ("nightly", "smoke")
    # Frozen with defaults resolved: cache writes unpriced in the job fall back to the input price.
    assert loaded.prices["mini"] == {
        "model": "gpt-4o-mini",
        "currency": "USD",
        "per_tokens": 1_000_000,
        "input": 0.15,
        "output": 0.60,
        "cached_input": 0.075,
        "cache_write": 0.15,
    }
    assert loaded.prices["claude"] is None
    assert loaded.job_spec["providers"][0]["headers"] == {"Authorization": "<redacted>", "X-Team": "evals"}
    assert FAKE_KEY not in str(loaded.job_spec)


def test_get_run_latest_and_unknown(session: Session) -> None:
    """``latest`` names the most recently started run and an unknown id raises StorageError."""
    first = repository.create_run(
        session, make_job(), host="h", version="v", now=datetime(2025, 1, 1, tzinfo=UTC)
    )
    second = repository.create_run(
        session, make_job(), host="h", version="v", now=datetime(2025, 1, 2, tzinfo=UTC)
    )
    assert repository.get_run(session, "latest").id == second.id
    assert repository.get_run(session, first.id).id == first.id
    with pytest.raises(StorageError, match="no run"):
        repository.get_run(session, "r-nope00")
    repository.mark_run(session, first.id, "finished")
    assert repository.get_run(session, first.id).finished_at is not None
    assert [r.id for r in repository.list_runs(session, job_name="nightly")] == [second.id, first.id]


def test_add_units_is_idempotent(session: Session) -> None:
    """Adding the same units twice stores each (run, key) once."""
    run_id = new_run(session, 5)
    repository.add_units(session, run_id, make_units(7))
    assert repository.unit_counts(session, run_id) == {"pending": 7, "running": 0, "ok": 0, "failed": 0}


def test_claim_leases_distinct_units_in_order(session: Session) -> None:
    """Claims hand out each pending unit once, in unit order, with the lease's expiry."""
    run_id = new_run(session, 5)
    now = datetime.now(UTC)
    first = repository.claim_units(session, run_id, "a", limit=3, lease_seconds=LEASE, now=now)
    second = repository.claim_units(session, run_id, "b", limit=3, lease_seconds=LEASE, now=now)
    assert [u.key for u in first] == ["mini/case-0/0", "mini/case-1/0", "mini/case-2/0"]
    assert [u.key for u in second] == ["mini/case-3/0", "mini/case-4/0"]
    assert first[0].lease_expires_at == now + timedelta(seconds=LEASE)
    assert repository.claim_units(session, run_id, "c", limit=3, lease_seconds=LEASE, now=now) == []


def test_expired_leases_are_claimable_and_renewed_ones_are_not(session: Session) -> None:
    """After its lease expires a unit is claimable again, unless its owner renewed the lease."""
    run_id = new_run(session, 4)
    now = datetime.now(UTC)
    repository.claim_units(session, run_id, "a", limit=2, lease_seconds=LEASE, now=now)
    repository.claim_units(session, run_id, "b", limit=2, lease_seconds=LEASE, now=now)
    later = now + timedelta(seconds=LEASE - 1)
    assert repository.renew_leases(session, run_id, "a", lease_seconds=LEASE, now=later) == 2
    expired = now + timedelta(seconds=LEASE + 1)
    taken = repository.claim_units(session, run_id, "c", limit=10, lease_seconds=LEASE, now=expired)
    assert [u.key for u in taken] == ["mini/case-2/0", "mini/case-3/0"]
    assert repository.renew_leases(session, run_id, "b", lease_seconds=LEASE, now=expired) == 0


def test_an_owner_never_reclaims_its_own_expired_leases(session: Session) -> None:
    """A late renewal does not make a process claim (and send again) units it still has in flight."""
    run_id = new_run(session, 3)
    now = datetime.now(UTC)
    held = repository.claim_units(session, run_id, "a", limit=2, lease_seconds=LEASE, now=now)
    expired = now + timedelta(seconds=LEASE + 1)
    again = repository.claim_units(session, run_id, "a", limit=10, lease_seconds=LEASE, now=expired)
    assert [u.key for u in again] == ["mini/case-2/0"]  # only the pending one
    assert repository.renew_leases(session, run_id, "a", lease_seconds=LEASE, now=expired) == 3
    other = repository.claim_units(session, run_id, "b", limit=10, lease_seconds=LEASE, now=expired)
    assert other == []
    assert {u.key for u in held} == {"mini/case-0/0", "mini/case-1/0"}


def test_release_units_gives_back_only_the_owners(session: Session) -> None:
    """An owner gives its own units back as pending; another owner's leases stay held."""
    run_id = new_run(session, 4)
    now = datetime.now(UTC)
    repository.claim_units(session, run_id, "a", limit=2, lease_seconds=LEASE, now=now)
    repository.claim_units(session, run_id, "b", limit=2, lease_seconds=LEASE * 10, now=now)
    assert repository.release_units(session, run_id, "b") == 2
    counts = repository.unit_counts(session, run_id)
    assert (counts["pending"], counts["running"]) == (2, 2)


def test_finish_stores_attempts_results_and_status(session: Session) -> None:
    """A retried then successful unit stores both attempts, its result rows and status ok."""
    run_id = new_run(session, 1)
    (unit,) = repository.claim_units(session, run_id, "w", limit=1, lease_seconds=LEASE)
    completion = make_completion(choices=2)
    outcome = repository.write_batch(
        session,
        [
            AttemptWrite(unit_id=unit.id, attempt=failed_attempt(unit.key, 1), cost_computed=0.00002),
            UnitFinish(
                unit_id=unit.id,
                owner="w",
                status="ok",
                attempt=ok_attempt(unit.key, 2, completion),
                cost_computed=0.0001,
            ),
        ],
    )
    assert outcome.finished == (unit.id,)
    assert outcome.lost == ()
    assert outcome.attempts == 2
    assert outcome.cost_usd == pytest.approx(0.00002 + 0.000123)
    (view,) = repository.iter_units(session, run_id)
    assert view.status == "ok"
    assert view.attempt_count == 2
    assert view.completion == completion
    assert [a.number for a in view.attempts] == [1, 2]
    failed, ok = view.attempts
    assert failed.error == _error_view(failed_attempt(unit.key).error)
    assert failed.partial_choices == failed_attempt(unit.key).completion.choices  # type: ignore[union-attr]
    assert failed.usage is not None
    assert failed.usage.output_tokens == 3
    assert failed.has_raw_capture
    assert not ok.has_raw_capture
    assert ok.started_at == ok_attempt(unit.key).timing.started_at
    assert (ok.first_answer_s, ok.end_s, ok.gap_p90_s) == (0.9, 2.5, 0.08)
    assert repository.raw_capture(session, failed.id) == failed_attempt(unit.key).raw_capture
    assert repository.spend_so_far(session, run_id) == pytest.approx(0.00002 + 0.000123)


def test_raw_capture_policy_all(session: Session) -> None:
    """With the ``all`` policy successful attempts keep their raw stream bytes too."""
    run_id = new_run(session, 1)
    (unit,) = repository.claim_units(session, run_id, "w", limit=1, lease_seconds=LEASE)
    item = UnitFinish(unit_id=unit.id, owner="w", status="ok", attempt=ok_attempt(unit.key))
    assert repository.write_batch(session, [item], raw_capture="all").finished
    (view,) = repository.iter_units(session, run_id)
    assert repository.raw_capture(session, view.attempts[0].id) == ok_attempt(unit.key).raw_capture


def test_finish_after_lost_lease_is_dropped(session: Session) -> None:
    """A finish from a process whose lease passed to another stores its attempt but not its result."""
    run_id = new_run(session, 1)
    now = datetime.now(UTC)
    (unit,) = repository.claim_units(session, run_id, "slow", limit=1, lease_seconds=LEASE, now=now)
    later = now + timedelta(seconds=LEASE + 1)
    (again,) = repository.claim_units(session, run_id, "fast", limit=1, lease_seconds=LEASE, now=later)
    assert again.id == unit.id
    assert repository.write_batch(
        session, [UnitFinish(unit_id=unit.id, owner="fast", status="ok", attempt=ok_attempt(unit.key))]
    ).finished
    late = UnitFinish(unit_id=unit.id, owner="slow", status="ok", attempt=ok_attempt(unit.key))
    assert not repository.write_batch(session, [late]).finished
    (view,) = repository.iter_units(session, run_id)
    assert view.status == "ok"
    assert len(view.attempts) == 2
    assert view.completion is not None
    assert len(view.completion.choices) == 1


def test_result_and_status_commit_together(session: Session) -> None:
    """A batch whose result rows cannot be stored leaves no attempt, no result and the unit running."""
    run_id = new_run(session, 2)
    first, second = repository.claim_units(session, run_id, "w", limit=2, lease_seconds=LEASE)
    good = make_completion()
    clashing = dataclasses.replace(good, choices=good.choices * 2)  # two rows with choice index 0
    with pytest.raises(StorageError):
        repository.write_batch(
            session,
            [
                UnitFinish(unit_id=first.id, owner="w", status="ok", attempt=ok_attempt(first.key)),
                UnitFinish(
                    unit_id=second.id,
                    owner="w",
                    status="ok",
                    attempt=ok_attempt(second.key, completion=clashing),
                ),
            ],
        )
    views = list(repository.iter_units(session, run_id))
    assert [(v.status, v.attempts, v.completion) for v in views] == [("running", (), None)] * 2


def test_failed_unit_keeps_error_and_partial_output(session: Session) -> None:
    """A unit that fails for good is stored failed, with its last error and partial output."""
    run_id = new_run(session, 1)
    (unit,) = repository.claim_units(session, run_id, "w", limit=1, lease_seconds=LEASE)
    attempt = failed_attempt(unit.key, kind="server_error")
    repository.write_batch(
        session, [UnitFinish(unit_id=unit.id, owner="w", status="failed", attempt=attempt)]
    )
    (view,) = repository.iter_units(session, run_id)
    assert view.status == "failed"
    assert view.attempts[-1].error == _error_view(attempt.error)
    assert view.completion is not None
    assert attempt.completion is not None
    assert view.completion.error == attempt.completion.error


def test_resume_requeues_only_units_without_result(session: Session) -> None:
    """Resume returns running and pending units to pending and leaves ok and failed ones alone."""
    run_id = new_run(session, 4)
    claimed = repository.claim_units(session, run_id, "dead", limit=3, lease_seconds=3600)
    repository.write_batch(
        session, [UnitFinish(unit_id=claimed[0].id, owner="dead", status="ok", attempt=ok_attempt("k"))]
    )
    repository.write_batch(
        session,
        [UnitFinish(unit_id=claimed[1].id, owner="dead", status="failed", attempt=failed_attempt("k"))],
    )
    repository.mark_run(session, run_id, "interrupted")
    assert repository.resume_run(session, run_id) == 2
    assert repository.get_run(session, run_id).status == "running"
    again = repository.claim_units(session, run_id, "new", limit=10, lease_seconds=LEASE)
    assert [u.key for u in again] == ["mini/case-2/0", "mini/case-3/0"]


def test_reuse_copies_ok_results_from_earlier_runs(session: Session) -> None:
    """With reuse, a unit whose exact request has an ok result elsewhere is copied and never claimed."""
    old_run = new_run(session, 2)
    unit = repository.claim_units(session, old_run, "w", limit=1, lease_seconds=LEASE)[0]
    repository.write_batch(
        session, [UnitFinish(unit_id=unit.id, owner="w", status="ok", attempt=ok_attempt(unit.key))]
    )
    run = repository.create_run(session, make_job(), host="h", version="v")
    assert repository.add_units(session, run.id, make_units(2), reuse=no_expectation) == 1
    views = list(repository.iter_units(session, run.id))
    assert views[0].status == "ok"
    assert views[0].reused_from == unit.id
    assert views[0].attempts == ()
    assert views[0].completion == make_completion()
    assert views[1].status == "pending"
    assert [u.key for u in repository.claim_units(session, run.id, "w", limit=5, lease_seconds=LEASE)] == [
        "mini/case-1/0"
    ]
    assert repository.spend_so_far(session, run.id) == 0.0


def no_expectation(sample: ReusedSample) -> None:
    """A reuse grader for a job whose cases expect nothing."""


def test_assertion_outcomes_round_trip_typed(session: Session) -> None:
    """A finish's assertion outcomes are read back as AssertionOutcomes and counted when one failed."""
    run_id = new_run(session, 3)
    first, second, third = repository.claim_units(session, run_id, "w", limit=3, lease_seconds=LEASE)
    passed = AssertionOutcome(name="contains", passed=True, detail="all found")
    failed = AssertionOutcome(name="max_ttft_s", passed=False, detail="ttft 2.000 s")
    repository.write_batch(
        session,
        [
            UnitFinish(
                unit_id=first.id,
                owner="w",
                status="ok",
                attempt=ok_attempt(first.key, completion=make_completion(choices=2)),
                assertions=(passed, failed),
            ),
            UnitFinish(
                unit_id=second.id,
                owner="w",
                status="ok",
                attempt=ok_attempt(second.key),
                assertions=(passed,),
            ),
            UnitFinish(unit_id=third.id, owner="w", status="ok", attempt=ok_attempt(third.key)),
        ],
    )
    views = list(repository.iter_units(session, run_id))
    assert [view.assertions for view in views] == [(passed, failed), (passed,), ()]
    assert repository.count_failed_assertions(session, run_id) == 1


def test_iter_units_pages_through_large_runs(session: Session) -> None:
    """Reading a run page by page yields every unit once, in order."""
    run_id = new_run(session, 23)
    keys = [view.key for view in repository.iter_units(session, run_id, page_size=5)]
    assert keys == [u.key for u in make_units(23)]


def test_sqlalchemy_errors_become_storage_errors(session: Session) -> None:
    """A database error surfaces as StorageError, never as a SQLAlchemy exception."""
    run_id = new_run(session, 1)
    (unit,) = repository.claim_units(session, run_id, "w", limit=1, lease_seconds=LEASE)
    with pytest.raises(StorageError):
        repository.write_batch(session, [AttemptWrite(unit_id=unit.id + 999, attempt=ok_attempt("x"))])


def test_fake_key_never_reaches_the_database(db: Database, session: Session) -> None:
    """The fake API key in a provider header appears nowhere in any table."""
    run_id = new_run(session, 2)
    (unit,) = repository.claim_units(session, run_id, "w", limit=1, lease_seconds=LEASE)
    repository.write_batch(
        session, [UnitFinish(unit_id=unit.id, owner="w", status="ok", attempt=ok_attempt(unit.key))]
    )
    with db.engine.connect() as conn:
        for table in ("runs", "units", "attempts", "results"):
            for row in conn.execute(text(f"SELECT * FROM {table}")):
                assert FAKE_KEY not in repr(tuple(row))
    if db.is_sqlite:
        db.close()
        path = db.engine.url.database
        assert path is not None
        for suffix in ("", "-wal"):
            try:
                with open(path + suffix, "rb") as f:
                    assert FAKE_KEY.encode() not in f.read()
            except FileNotFoundError:
                pass


def _error_view(error: AttemptError | None) -> ErrorView | None:
    """What the store reads back of an AttemptError: all of it, the retry layer's verdict included."""
    if error is None:
        return None
    return ErrorView(
        kind=error.kind,
        message=error.message,
        http_status=error.http_status,
        retry_after=error.retry_after,
        retryable=error.retryable,
    )


def test_a_run_is_planning_until_its_last_units_are_stored(session: Session) -> None:
    """A run created ``planning`` stays so through earlier batches and is ``running`` with the last."""
    run = repository.create_run(session, make_job(), host="h", version="v", status="planning")
    units = make_units(4)
    repository.add_units(session, run.id, units[:2])
    assert repository.get_run(session, run.id).status == "planning"
    repository.add_units(session, run.id, units, planned=True)  # idempotent by key: a resume re-plans
    assert repository.get_run(session, run.id).status == "running"
    assert sum(repository.unit_counts(session, run.id).values()) == 4


def test_finished_units_keep_the_process_that_finished_them(session: Session) -> None:
    """counts_by_owner: who holds units and who finished them (the report's "worked by"); the queue
    still sees a finished unit as finished, and a released one as nobody's."""
    run_id = new_run(session, 5)
    a = repository.claim_units(session, run_id, "h1:10:aa", limit=2, lease_seconds=LEASE)
    repository.claim_units(session, run_id, "h2:20:bb", limit=2, lease_seconds=LEASE)
    finishes = [UnitFinish(unit_id=u.id, owner="h1:10:aa", status="ok", attempt=ok_attempt(u.key)) for u in a]
    assert len(repository.write_batch(session, finishes).finished) == 2
    by_owner = repository.counts_by_owner(session, run_id)
    assert by_owner["h1:10:aa"] == {"pending": 0, "running": 0, "ok": 2, "failed": 0}
    assert by_owner["h2:20:bb"] == {"pending": 0, "running": 2, "ok": 0, "failed": 0}
    assert by_owner[""] == {"pending": 1, "running": 0, "ok": 0, "failed": 0}
    # Finished units are no one's lease: not live, not outstanding, never claimed again.
    assert repository.live_leases(session, run_id) == {"h2:20:bb": 2}
    assert repository.count_outstanding(session, run_id, excluding_owner="h2:20:bb") == 1
    assert repository.release_units(session, run_id, "h1:10:aa") == 0
    assert len(repository.claim_units(session, run_id, "h3:30:cc", limit=5, lease_seconds=LEASE)) == 1


def test_queue_gives_back_held_units_by_id(db: Database, session: Session) -> None:
    """A queue gives back only the named units it claimed (held, never started) as pending, so the
    next claim, its own or a peer's, gets them; its other leases stay."""
    run_id = new_run(session, 4)
    queue = RunQueue(database=db, run_id=run_id, owner="a", lease_seconds=LEASE)
    held = queue.claim("mini", 4)[2:]
    queue.give_back([unit.id for unit in held])
    counts = repository.unit_counts(session, run_id)
    assert (counts["pending"], counts["running"]) == (2, 2)
    peer = RunQueue(database=db, run_id=run_id, owner="b", lease_seconds=LEASE)
    assert [unit.id for unit in peer.claim("mini", 4)] == [unit.id for unit in held]
