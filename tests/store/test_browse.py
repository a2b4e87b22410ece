"""The inspect reads (``runner runs`` / ``show``): tallies aggregated in SQL, one unit by key, captures with
their read times; on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from runner.errors import StorageError
from runner.grading.assertions import PENDING_JUDGE, AssertionOutcome
from runner.store import repository
from runner.store.records import AttemptWrite, UnitFinish
from runner.store.repository import browse
from runner.store.rows import decode_reads, encode_reads

from .factories import STARTED, failed_attempt, make_job, make_units, ok_attempt

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

HELD = AssertionOutcome(name="contains", passed=True, detail="all found")
BROKEN = AssertionOutcome(name="max_ttft_s", passed=False, detail="ttft 2.000 s")


def _mixed_run(session: Session, *, job: str = "nightly", minutes: int = 0) -> str:
    """A run of 5 units: passed, failed assertions, failed after a retry, and two not done."""
    run = repository.create_run(
        session, make_job(job), host="box", version="0.1.0", now=STARTED + timedelta(minutes=minutes)
    )
    repository.add_units(session, run.id, [*make_units(3), *make_units(2, provider="claude")])
    passed, broke, cut = repository.claim_units(session, run.id, "w", limit=3, lease_seconds=30.0)
    reads = ((0, 0.25), (10, 0.5))
    repository.write_batch(
        session,
        [
            UnitFinish(
                unit_id=passed.id, owner="w", status="ok", attempt=ok_attempt(passed.key), assertions=(HELD,)
            ),
            UnitFinish(
                unit_id=broke.id,
                owner="w",
                status="ok",
                attempt=ok_attempt(broke.key),
                assertions=(HELD, BROKEN),
            ),
            AttemptWrite(
                unit_id=cut.id,
                attempt=dataclasses.replace(failed_attempt(cut.key), raw_reads=reads),
                cost_computed=0.001,
            ),
            UnitFinish(
                unit_id=cut.id, owner="w", status="failed", attempt=failed_attempt(cut.key, 2, kind="timeout")
            ),
        ],
    )
    return run.id


def test_run_rows_count_verdicts_and_cost_newest_first(session: Session) -> None:
    """Each run's units by verdict, attempts and cost come from SQL; newest first, filtered by job."""
    old = _mixed_run(session, minutes=0)
    new = _mixed_run(session, minutes=5)
    other = _mixed_run(session, job="weekly", minutes=10)
    rows = browse.run_rows(session)
    assert [r.run.id for r in rows] == [other, new, old]
    tally = rows[1].tally
    assert (tally.units, tally.ok, tally.passed, tally.failed_assertions, tally.failed, tally.not_done) == (
        5,
        2,
        1,
        1,
        1,
        2,
    )
    assert (tally.checks_passed, tally.checks_total) == (2, 3)  # HELD twice, BROKEN once
    assert (tally.attempts, tally.failed_attempts, tally.retries) == (4, 2, 1)
    assert tally.error_kinds == {"early_close": 1, "timeout": 1}
    assert tally.cost_usd == pytest.approx(repository.spend_so_far(session, new))
    assert tally.wasted_usd == pytest.approx(0.001)  # the failed attempt's cost
    assert [r.run.id for r in browse.run_rows(session, job_name="nightly", limit=1)] == [new]


def test_a_judge_still_grading_is_no_check_evaluated(session: Session) -> None:
    """A pending judge outcome counts neither as passed nor in the checks evaluated (it was counted as a
    failed check), and its unit is not done, not failed."""
    run = repository.create_run(session, make_job("judged"), host="box", version="0.1.0", now=STARTED)
    repository.add_units(session, run.id, make_units(1))
    (unit,) = repository.claim_units(session, run.id, "w", limit=1, lease_seconds=30.0)
    finish = UnitFinish(
        unit_id=unit.id,
        owner="w",
        status="ok",
        attempt=ok_attempt(unit.key),
        assertions=(HELD, PENDING_JUDGE),
    )
    repository.write_batch(session, [finish])
    tally = browse.run_tally(session, run.id)
    assert (tally.checks_passed, tally.checks_total, tally.failed_assertions) == (1, 1, 0)


def test_provider_tallies_split_the_run(session: Session) -> None:
    """Per provider, the tallies add up to the run's; a provider with only pending units is listed."""
    run_id = _mixed_run(session)
    tallies = browse.provider_tallies(session, run_id)
    assert list(tallies) == ["claude", "mini"]
    assert (tallies["claude"].units, tallies["claude"].not_done, tallies["claude"].attempts) == (2, 2, 0)
    assert (tallies["mini"].units, tallies["mini"].failed_assertions) == (3, 1)
    assert browse.run_tally(session, run_id).units == 5
    timings = browse.provider_timings(session, run_id)
    assert timings["mini"].ttft_s == (0.9, 0.9)


def test_find_unit_by_key_and_suggest_near_keys(session: Session) -> None:
    """A key finds its unit with every attempt; an unknown key gets the closest keys of the run."""
    run_id = _mixed_run(session)
    unit = browse.find_unit(session, run_id, "mini/case-2/0")
    assert unit is not None
    assert [a.number for a in unit.attempts] == [1, 2]
    assert unit.status == "failed"
    assert browse.find_unit(session, run_id, "mini/case-9/0") is None
    assert browse.similar_unit_keys(session, run_id, "mini/case-1/1")[0] == "mini/case-1/0"
    assert len(browse.similar_unit_keys(session, run_id, "mini/case-1/1")) == 3
    assert browse.similar_unit_keys(session, run_id, "claud/case-1/0", limit=1) == ["claude/case-1/0"]


def test_capture_keeps_each_reads_arrival(session: Session) -> None:
    """A failed attempt's capture comes back with the offset and arrival time of each read."""
    run_id = _mixed_run(session)
    unit = browse.find_unit(session, run_id, "mini/case-2/0")
    assert unit is not None
    first, second = browse.attempt_bytes(session, unit.id)
    assert first.body is not None
    assert first.reads == ((0, 0.25), (10, 0.5))
    assert second.reads is None  # captured without read times (an attempt stored before 0006)
    assert [s.number for s in browse.attempt_bytes(session, unit.id, 2)] == [2]


def test_unknown_run_names_the_closest_ids(session: Session) -> None:
    """A mistyped run id fails with the nearest ids in the message."""
    run_id = _mixed_run(session)
    with pytest.raises(StorageError, match=f"closest: {run_id}"):
        browse.get_run_or_hint(session, run_id[:-1] + "0")


def test_reads_encoding_round_trips_in_milliseconds() -> None:
    """Read times are kept to the millisecond; offsets exactly; out-of-range values are clamped."""
    assert decode_reads(encode_reads([(0, 0.0), (17, 0.0123456), (40, 1.5)])) == (
        (0, 0.0),
        (17, 0.012),
        (40, 1.5),
    )
    assert decode_reads(encode_reads([(2**40, -1.0)])) == ((2**32 - 1, 0.0),)
