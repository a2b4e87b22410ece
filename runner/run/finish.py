"""Finishing attempts and units (pure): what an attempt cost; the final attempt graded -> ``UnitFinish``;
a reused result graded against the current job (``--reuse``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runner.grading.assertions import evaluate
from runner.pricing import booked_cost, compute_cost
from runner.store.records import UnitFinish

if TYPE_CHECKING:
    from collections.abc import Mapping

    from runner.grading.assertions import AssertionOutcome
    from runner.model import AttemptRecord, Usage
    from runner.spec import CaseSpec, Price
    from runner.store.records import ClaimedUnit, ReusedSample, ReuseGrader


def finish_unit(
    unit: ClaimedUnit,
    case: CaseSpec,
    final: AttemptRecord,
    *,
    owner: str,
    cost_computed: float | None,
    unit_spent: float,
) -> UnitFinish:
    """The unit's end: ``ok`` when its final attempt succeeded, with the case's assertions graded.

    Only a final result is graded: a failed attempt's partial output is kept but not checked (a cut-off
    answer that happens to pass ``not_contains`` has not passed anything), so a failed unit has its
    assertions not evaluated and stores no outcomes.

    Args:
        cost_computed: the final attempt's cost at the job's prices, stored with it.
        unit_spent: what all the unit's attempts in this process cost (the ``max_cost_usd`` assertion).
    """
    ok = final.error is None
    assertions = None
    if case.expect and ok:
        timing = final.timing
        outcomes = evaluate(
            case.expect,
            final.completion,
            ttft_s=timing.ttft_s,
            duration_s=timing.end_s,
            cost_usd=unit_spent,
            variables=case.vars,
        )
        assertions = tuple(outcomes)
    # The final attempt, the result rows and the unit's status commit in one transaction.
    return UnitFinish(
        unit_id=unit.id,
        owner=owner,
        status="ok" if ok else "failed",
        attempt=final,
        cost_computed=cost_computed,
        assertions=assertions,
        lease_token=unit.lease_token,  # fences the finish: a claim since then makes it superseded
    )


def reuse_grader(cases: Mapping[str, CaseSpec]) -> ReuseGrader:
    """How ``--reuse`` grades a copied result: by the current job's expectation of the unit's case,
    never the one the sample was graded by when it ran.

    Time and cost limits read the sample's own figures (its final attempt's TTFT and duration, what
    its attempts cost): a copy is not sent, so those are the only measurements its answer has.
    """

    def grade(sample: ReusedSample) -> tuple[AssertionOutcome, ...] | None:
        case = cases[sample.case_id]
        if not case.expect:
            return None
        return evaluate(
            case.expect,
            sample.completion,
            ttft_s=sample.ttft_s,
            duration_s=sample.duration_s,
            cost_usd=sample.cost_usd,
            variables=case.vars,
        )

    return grade


def usage_of(record: AttemptRecord) -> Usage | None:
    """The attempt's token usage, when its stream reported one."""
    return record.completion.usage if record.completion is not None else None


def computed_and_booked_cost(record: AttemptRecord, price: Price | None) -> tuple[float | None, float | None]:
    """(computed, booked): the attempt's cost at the job's prices (None without usage or price), and
    what it cost by the one cost rule (``pricing.booked_cost``), which the budget counts."""
    usage = usage_of(record)
    if usage is None:
        return None, None
    computed = compute_cost(usage, price)
    return computed, booked_cost(usage.cost, computed)
