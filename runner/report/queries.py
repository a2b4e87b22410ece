"""Database -> report records: the store's read API mapped onto ``runner.report.data`` (no SQL here)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runner.grading.assertions import AssertionOutcome
from runner.report.data import AttemptFacts, CostFact, RunData, RunFacts, UnitFacts
from runner.store import repository
from runner.store.repository.reports import attempt_costs

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from sqlalchemy.orm import Session

    from runner.store.records import AttemptView, RunInfo, UnitView


def run_facts(info: RunInfo) -> RunFacts:
    return RunFacts(
        id=info.id,
        job_name=info.job_name,
        status=info.status,
        started_at=info.started_at,
        finished_at=info.finished_at,
        host=info.host,
        runner_version=info.runner_version,
        tags=info.tags,
        prices=dict(info.prices),
    )


def attempt_facts(view: AttemptView) -> AttemptFacts:
    return AttemptFacts(
        number=view.number,
        started_at=view.started_at,
        headers_s=view.headers_s,
        first_reasoning_s=view.first_reasoning_s,
        first_answer_s=view.first_answer_s,
        end_s=view.end_s,
        gap_p50_s=view.gap_p50_s,
        gap_p90_s=view.gap_p90_s,
        http_status=view.http_status,
        error=view.error,
        usage=view.usage,
        cost_reported=view.cost_reported,
        cost_computed=view.cost_computed,
    )


def _outcomes(stored: Sequence[object]) -> tuple[AssertionOutcome, ...]:
    """The first choice's stored outcomes (assertions read the first choice); None: not checked."""
    first = stored[0] if stored else None
    if not isinstance(first, list):
        return ()
    return tuple(AssertionOutcome.from_dict(item) for item in first if isinstance(item, dict))


def unit_facts(view: UnitView) -> UnitFacts:
    attempts = tuple(attempt_facts(a) for a in view.attempts)
    model = view.completion.model if view.completion else None
    if model is None:
        model = next((a.model for a in reversed(view.attempts) if a.model), None)
    return UnitFacts(
        key=view.key,
        provider=view.provider,
        case_id=view.case_id,
        repeat=view.repeat,
        status=view.status,
        attempts=attempts,
        completion=view.completion,
        assertions=_outcomes(view.assertions),
        model=model,
    )


def load_run(session: Session, ref: str) -> RunData:
    """A run (an id, or ``latest``) with all its units, attempts and results.

    Raises:
        StorageError: no such run.
    """
    info = repository.get_run(session, ref)
    units = tuple(unit_facts(view) for view in repository.iter_units(session, info.id))
    return RunData(run=run_facts(info), units=units)


def load_job_runs(session: Session, job_name: str, *, last: int) -> list[RunData]:
    """The last ``last`` runs of a job, oldest first."""
    infos = repository.list_runs(session, job_name=job_name, limit=last)
    return [load_run(session, info.id) for info in reversed(infos)]


def load_cost_facts(session: Session, *, since: datetime | None, until: datetime | None) -> list[CostFact]:
    """Every attempt started in ``[since, until)`` as a CostFact."""
    return [
        CostFact(
            run_id=row.run_id,
            job_name=row.job_name,
            tags=row.tags,
            provider=row.provider,
            model=row.model,
            started_at=row.started_at,
            ok=row.ok,
            input_tokens=row.input_tokens or 0,
            output_tokens=row.output_tokens or 0,
            reasoning_tokens=row.reasoning_tokens or 0,
            cached_input_tokens=row.cached_input_tokens or 0,
            cost_reported=row.cost_reported,
            cost_computed=row.cost_computed,
        )
        for row in attempt_costs(session, since=since, until=until)
    ]
