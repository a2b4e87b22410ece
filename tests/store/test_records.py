"""The store's read records: the figures they derive and what they read back of an error."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from runner.model import AttemptError, Completion
from runner.store.records import AttemptView, ErrorView, UnitView
from runner.store.rows import assertions_from_json

STARTED = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
ATTEMPT = AttemptView(
    id=1,
    number=1,
    started_at=STARTED,
    headers_s=0.1,
    first_byte_s=0.2,
    first_reasoning_s=0.3,
    first_answer_s=0.9,
    end_s=2.0,
    gap_p50_s=None,
    gap_p90_s=None,
    gap_max_s=None,
    http_status=200,
    error=None,
    stream_error=None,
    bytes_received=10,
    chunks=2,
    heartbeats=0,
    model="attempt-model",
    complete=True,
    partial_choices=(),
    usage=None,
    cost_reported=None,
    cost_computed=0.002,
    has_raw_capture=False,
)


@pytest.mark.parametrize(
    ("reported", "computed", "expected"),
    [
        pytest.param(0.005, 0.002, 0.005, id="reported-wins"),
        pytest.param(0.0, 0.002, 0.0, id="reported-zero-wins"),
        pytest.param(None, 0.002, 0.002, id="computed"),
        pytest.param(None, None, None, id="unknown"),
    ],
)
def test_attempt_cost_follows_the_one_rule(
    reported: float | None, computed: float | None, expected: float | None
) -> None:
    """An attempt's cost is the provider's figure where sent, else the computed one."""
    assert replace(ATTEMPT, cost_reported=reported, cost_computed=computed).cost_usd == expected


def test_ttft_is_the_first_answer_token() -> None:
    """Time to first token reads the first answer token, not the first reasoning token."""
    assert ATTEMPT.ttft_s == 0.9


def test_unit_model_prefers_the_result_then_the_latest_attempt() -> None:
    """A unit's model is its stored result's, else that of the latest attempt that named one."""
    unit = UnitView(
        id=1,
        run_id="r-1",
        key="p/c/0",
        provider="p",
        case_id="c",
        repeat=0,
        request_hash="h",
        status="failed",
        attempt_count=2,
        reused_from=None,
        finished_at=None,
        attempts=(ATTEMPT, replace(ATTEMPT, number=2, model=None)),
    )
    assert unit.model == "attempt-model"
    assert unit.final is unit.attempts[-1]
    # A superseded attempt (a late write of a lost lease) is never the one the outcome came from.
    late = replace(ATTEMPT, number=3, superseded=True)
    assert replace(unit, attempts=(*unit.attempts, late)).final is unit.attempts[-1]
    assert replace(unit, completion=Completion(model="result-model")).model == "result-model"
    assert replace(unit, attempts=()).model is None


def test_error_view_exports_like_the_attempt_error() -> None:
    """A read-back error exports the same fields as the AttemptError that was stored."""
    error = AttemptError(
        kind="rate_limited", message="slow down", http_status=429, retry_after=2.0, retryable=True
    )
    view = ErrorView(
        kind="rate_limited", message="slow down", http_status=429, retry_after=2.0, retryable=True
    )
    assert view.to_dict() == error.to_dict()
    assert view.to_dict()["retryable"] is True


def test_a_malformed_stored_outcome_is_skipped_not_fatal() -> None:
    """A hand-edited assertions row keeps its good outcomes; the bad items do not stop a report."""
    stored: list[Any] = [
        {"name": "contains", "passed": True, "detail": "found"},
        "not an outcome",
        {"name": "regex"},
        {"name": "max_ttft_s", "passed": False, "detail": "ttft 3 s"},
    ]
    outcomes = assertions_from_json(stored)
    assert [(o.name, o.passed) for o in outcomes] == [("contains", True), ("max_ttft_s", False)]
