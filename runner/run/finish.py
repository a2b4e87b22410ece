"""Finishing attempts and units (pure): what an attempt cost; the final attempt graded -> ``UnitFinish``;
a reused result graded against the current job (``--reuse``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runner.errors import ConfigError
from runner.grading import judge as verdicts
from runner.grading.assertions import evaluate
from runner.job.judge import answer_text, grading_prompt
from runner.job.plan import request_hash
from runner.pricing import booked_cost, compute_cost
from runner.spec import CaseSpec
from runner.store.records import GradingRequest, UnitFinish

if TYPE_CHECKING:
    from collections.abc import Mapping

    from runner.grading.assertions import AssertionOutcome
    from runner.model import AttemptRecord, Completion, Usage
    from runner.spec import Price, ProviderSpec
    from runner.store.records import ClaimedUnit, GradedUnit, ReusedSample, ReuseGrader


def finish_unit(
    unit: ClaimedUnit,
    case: CaseSpec,
    final: AttemptRecord,
    *,
    owner: str,
    cost_computed: float | None,
    unit_spent: float,
    judges: Mapping[str, ProviderSpec] | None = None,
) -> UnitFinish:
    """The unit's end: ``ok`` when its final attempt succeeded, with the case's assertions graded.

    Only a final result is graded: a failed attempt's partial output is kept but not checked (a cut-off
    answer that happens to pass ``not_contains`` has not passed anything), so a failed unit has its
    assertions not evaluated and stores no outcomes.

    Args:
        cost_computed: the final attempt's cost at the job's prices, stored with it.
        unit_spent: what all the unit's attempts in this process cost (the ``max_cost_usd`` assertion).
        judges: the run's judge providers by name; a judged case's ok unit queues its grading unit.
    """
    ok = final.error is None
    assertions = None
    grading = None
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
        judge = case.expect.judge
        if judge is not None and judges is not None and judge.provider in judges:
            grading = grading_request(unit, case, judges[judge.provider], final.completion)
    # The final attempt, the result rows and the unit's status commit in one transaction.
    return UnitFinish(
        unit_id=unit.id,
        owner=owner,
        status="ok" if ok else "failed",
        attempt=final,
        cost_computed=cost_computed,
        assertions=assertions,
        lease_token=unit.lease_token,  # fences the finish: a claim since then makes it superseded
        grading=grading,
    )


def grading_request(
    graded: ClaimedUnit | GradedUnit, case: CaseSpec, judge: ProviderSpec, completion: Completion | None
) -> GradingRequest | None:
    """The grading unit of a judged case's unit with this final ``completion`` (None: the case has
    no judge, or its templates fail, which the loader has already ruled out)."""
    expectation = case.expect.judge if case.expect is not None else None
    if expectation is None:
        return None
    try:
        prompt = grading_prompt(expectation, case, answer=answer_text(completion))
    except ConfigError:
        return None
    return GradingRequest(
        graded_unit_id=graded.id,
        key=f"{graded.key}#judge",
        provider=judge.name,
        case_id=case.id,
        repeat=graded.repeat,
        request_hash=request_hash(judge, grading_case(case.id, prompt)),
        prompt=prompt,
    )


def grading_case(case_id: str, prompt: str) -> CaseSpec:
    """The request a grading unit sends: its grading prompt as one user message (no params, tools)."""
    return CaseSpec(id=case_id, messages=({"role": "user", "content": prompt},))


def finish_grading(
    unit: ClaimedUnit,
    case: CaseSpec,
    final: AttemptRecord,
    *,
    owner: str,
    cost_computed: float | None,
) -> UnitFinish:
    """A grading unit's end: its own result, and its verdict as the graded unit's ``judge`` outcome
    (an error outcome when the judge's answer holds no verdict or the grading request failed)."""
    threshold = case.expect.judge.threshold if case.expect and case.expect.judge else None
    if final.error is not None:
        verdict = verdicts.failed_grading(f"{final.error.kind}: {final.error.message}")
    else:
        verdict = verdicts.verdict_outcome(answer_text(final.completion), threshold=threshold)
    return UnitFinish(
        unit_id=unit.id,
        owner=owner,
        status="ok" if final.error is None else "failed",
        attempt=final,
        cost_computed=cost_computed,
        lease_token=unit.lease_token,
        graded_unit_id=unit.graded_unit_id,
        verdict=verdict,
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
