"""Finishing a unit: status from the final attempt, assertions graded on it with the unit's spend."""

from __future__ import annotations

from datetime import UTC, datetime

from runner.grading.assertions import parse_expect
from runner.model import AttemptError, AttemptRecord, AttemptTiming, Choice, Completion, Usage
from runner.run.finish import computed_and_booked_cost, finish_unit
from runner.run.progress import Progress, ProviderCounters
from runner.spec import CaseSpec, Price
from runner.store.records import ClaimedUnit

NOW = datetime(2025, 1, 1, tzinfo=UTC)
UNIT = ClaimedUnit(
    id=7,
    run_id="r",
    key="p/c/0",
    provider="p",
    case_id="c",
    repeat=0,
    request_hash="h",
    attempts=0,
    lease_expires_at=NOW,
)


def _record(*, text: str = "hello world", error: AttemptError | None = None) -> AttemptRecord:
    """A final attempt that answered ``text`` in one second."""
    return AttemptRecord(
        unit_key=UNIT.key,
        number=2,
        http_status=200,
        error=error,
        completion=Completion(complete=True, choices=(Choice(index=0, text=text),)),
        timing=AttemptTiming(started_at=NOW, first_answer_s=0.2, end_s=1.0),
    )


def test_ok_unit_with_graded_assertions() -> None:
    """A successful final attempt finishes ok; each expect key is graded, cost against the unit's spend."""
    case = CaseSpec(id="c", messages=(), expect=parse_expect({"contains": "world", "max_cost_usd": 0.01}))
    final = _record()
    finish = finish_unit(UNIT, case, final, owner="me", cost_computed=0.004, unit_spent=0.02)
    assert (finish.unit_id, finish.owner, finish.status) == (7, "me", "ok")
    assert finish.attempt is final
    assert finish.cost_computed == 0.004
    assert finish.assertions is not None
    passed = {outcome.name: outcome.passed for outcome in finish.assertions}
    assert passed == {"contains": True, "max_cost_usd": False}


def test_failed_unit_without_expectations() -> None:
    """A final attempt with an error fails the unit; a case without expect has no assertions."""
    error = AttemptError(kind="server_error", message="HTTP 500", http_status=500, retryable=True)
    case = CaseSpec(id="c", messages=())
    finish = finish_unit(UNIT, case, _record(error=error), owner="me", cost_computed=None, unit_spent=0)
    assert finish.status == "failed"
    assert finish.assertions is None


def test_progress_needs_no_trio_loop() -> None:
    """A Progress is built from a given start time, outside trio, and counts each unit once."""
    progress = Progress(total=10, started_at=10.0, providers={"p": ProviderCounters(done=3, failed=2)})
    progress.of("q").in_flight = 2
    assert progress.outcomes() == (3, 2)
    assert progress.in_flight == 2
    assert progress.eta_seconds(20.0) == 10.0  # 5 units left at 5 units per 10 s


def _with_usage(usage: Usage | None) -> AttemptRecord:
    """A final attempt whose stream reported ``usage``."""
    return AttemptRecord(
        unit_key=UNIT.key,
        number=1,
        http_status=200,
        error=None,
        completion=Completion(complete=True, choices=(Choice(index=0, text="x"),), usage=usage),
        timing=AttemptTiming(started_at=NOW, end_s=1.0),
    )


def test_attempt_costs_follow_the_one_cost_rule() -> None:
    """Computed at the job's prices; booked as the reported cost where sent, else the computed one."""
    price = Price(input=1.0, output=2.0)
    plain = _with_usage(Usage(input_tokens=1_000_000, output_tokens=500_000))
    assert computed_and_booked_cost(plain, price) == (2.0, 2.0)
    reported = _with_usage(Usage(input_tokens=1_000_000, output_tokens=500_000, cost=0.5))
    assert computed_and_booked_cost(reported, price) == (2.0, 0.5)
    assert computed_and_booked_cost(reported, None) == (None, 0.5)
    assert computed_and_booked_cost(_with_usage(None), price) == (None, None)


def test_partial_output_of_a_failed_unit_is_not_graded() -> None:
    """A failed final attempt's partial output would pass ``contains``, but it is no result: no outcomes."""
    error = AttemptError(kind="early_close", message="stream ended early", retryable=True)
    case = CaseSpec(id="c", messages=(), expect=parse_expect({"contains": "world", "max_ttft_s": 5}))
    finish = finish_unit(UNIT, case, _record(error=error), owner="me", cost_computed=None, unit_spent=0)
    assert finish.status == "failed"
    assert finish.assertions is None
