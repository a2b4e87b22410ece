"""The lean read model: a unit and its attempts as the run report's scan tallies them, without texts.

``repository.stream_units`` makes one per unit straight from its SQL rows; ``lean_unit`` makes one from a
whole ``UnitView`` (a run held in memory), so both feed the same tallies and give the same figures.
They are named tuples, not frozen dataclasses: a 100,000-unit report builds 220,000 of them, and a
tuple is made in a tenth of a 25-field frozen dataclass's time (``benchmarks/bench_report.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from runner.pricing import booked_cost

if TYPE_CHECKING:
    from datetime import datetime

    from runner.grading.assertions import AssertionOutcome
    from runner.store.records import AttemptView, UnitStatus, UnitView, Verdict


class LeanAttempt(NamedTuple):
    """One attempt's figures. The fields are in the order ``stream_units`` selects its columns."""

    unit_id: int
    number: int
    started_at: datetime
    end_s: float | None
    ttft_s: float | None  # the first answer token (``AttemptView.ttft_s``)
    first_reasoning_s: float | None
    gap_p50_s: float | None
    gap_p90_s: float | None
    error_kind: str | None  # None: the attempt succeeded
    input_tokens: int | None
    output_tokens: int | None
    reasoning_tokens: int | None
    cached_input_tokens: int | None
    cost_reported: float | None
    cost_computed: float | None
    model: str | None  # the model the attempt's stream named

    @property
    def cost_usd(self) -> float | None:
        """What this attempt cost, by the one cost rule (``runner.pricing.booked_cost``)."""
        return booked_cost(self.cost_reported, self.cost_computed)


class LeanUnit(NamedTuple):
    """One unit's facts and attempts (in order); ``view`` is the whole unit when it was at hand."""

    id: int
    key: str
    provider: str
    case_id: str
    repeat: int
    status: UnitStatus
    attempt_count: int  # attempts that count (``units.attempts``)
    reused_from: int | None
    model: str | None  # ``UnitView.model``
    assertions: tuple[AssertionOutcome, ...]
    verdict: Verdict  # ``records.unit_verdict`` of the status and assertions
    attempts: tuple[LeanAttempt, ...]
    view: UnitView | None = None  # None when read lean from the store: read it by id when needed

    @property
    def evaluated(self) -> tuple[AssertionOutcome, ...]:
        """The assertion outcomes that count: those on a final result (an ok unit), else none."""
        return self.assertions if self.status == "ok" else ()


def lean_attempt(unit_id: int, attempt: AttemptView) -> LeanAttempt:
    usage = attempt.usage
    return LeanAttempt(
        unit_id=unit_id,
        number=attempt.number,
        started_at=attempt.started_at,
        end_s=attempt.end_s,
        ttft_s=attempt.ttft_s,
        first_reasoning_s=attempt.first_reasoning_s,
        gap_p50_s=attempt.gap_p50_s,
        gap_p90_s=attempt.gap_p90_s,
        error_kind=attempt.error.kind if attempt.error else None,
        input_tokens=usage.input_tokens if usage else None,
        output_tokens=usage.output_tokens if usage else None,
        reasoning_tokens=usage.reasoning_tokens if usage else None,
        cached_input_tokens=usage.cached_input_tokens if usage else None,
        cost_reported=attempt.cost_reported,
        cost_computed=attempt.cost_computed,
        model=attempt.model,
    )


def lean_unit(unit: UnitView) -> LeanUnit:
    """The lean form of a whole unit, keeping the unit itself as ``view``."""
    return LeanUnit(
        id=unit.id,
        key=unit.key,
        provider=unit.provider,
        case_id=unit.case_id,
        repeat=unit.repeat,
        status=unit.status,
        attempt_count=unit.attempt_count,
        reused_from=unit.reused_from,
        model=unit.model,
        assertions=unit.assertions,
        verdict=unit.verdict,
        attempts=tuple(lean_attempt(unit.id, a) for a in unit.attempts),
        view=unit,
    )
