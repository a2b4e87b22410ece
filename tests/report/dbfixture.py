"""Synthetic report inputs written into a migrated database through the store's own API."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import TYPE_CHECKING

from runner.job.plan import Unit
from runner.model import AttemptError, AttemptRecord, AttemptTiming, Completion, Usage
from runner.spec import CaseSpec, JobSpec, Price, ProviderSpec
from runner.store import repository
from runner.store.records import AttemptWrite, StoredItem, UnitFinish

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from sqlalchemy.orm import Session

    from runner.report.common import RunData
    from runner.store.records import AttemptView, UnitView


def _record(unit: UnitView, attempt: AttemptView, completion: Completion | None) -> AttemptRecord:
    usage = replace(attempt.usage or Usage(), cost=attempt.cost_reported)
    base = completion or Completion(complete=False)
    error = attempt.error
    return AttemptRecord(
        unit_key=unit.key,
        number=attempt.number,
        http_status=attempt.http_status,
        error=AttemptError(
            kind=error.kind,
            message=error.message,
            http_status=error.http_status,
            retry_after=error.retry_after,
        )
        if error
        else None,
        completion=replace(base, usage=usage, model=unit.model),
        timing=AttemptTiming(
            started_at=attempt.started_at,
            headers_s=attempt.headers_s,
            first_byte_s=attempt.headers_s,
            first_reasoning_s=attempt.first_reasoning_s,
            first_answer_s=attempt.first_answer_s,
            end_s=attempt.end_s,
            gap_p50_s=attempt.gap_p50_s,
            gap_p90_s=attempt.gap_p90_s,
        ),
    )


def store_run(session: Session, data: RunData) -> str:
    """Write ``data`` as a finished run (units, attempts, results, assertions); return the new run id."""
    run_id = create_fixture_run(session, data, sorted({u.case_id for u in data.units}))
    store_units(session, run_id, data.units, now=data.run.finished_at)
    repository.mark_run(session, run_id, "finished", now=data.run.finished_at)
    return run_id


def create_fixture_run(session: Session, data: RunData, case_ids: Sequence[str]) -> str:
    """Create the run of ``data`` (its job, prices and start) with no units yet; return its id."""
    prices = {
        name: Price(**price) if isinstance(price, dict) else None for name, price in data.run.prices.items()
    }
    job = JobSpec(
        name=data.run.job_name,
        providers=tuple(
            ProviderSpec(
                name=name, dialect="openai-chat", base_url="https://api.example/v1", model="m", price=price
            )
            for name, price in prices.items()
        ),
        cases=tuple(CaseSpec(id=case, messages=({"role": "user", "content": case},)) for case in case_ids),
        tags=data.run.tags,
    )
    run = repository.create_run(
        session,
        job,
        host=data.run.host,
        version=data.run.runner_version,
        prices=prices,
        now=data.run.started_at,
    )
    return run.id


def store_units(session: Session, run_id: str, units: Sequence[UnitView], *, now: datetime | None) -> None:
    """Add ``units`` to run ``run_id``, claim them and write their attempts and results (one batch:
    a benchmark calls this once per slice of a huge run)."""
    repository.add_units(
        session,
        run_id,
        [
            Unit(
                key=u.key,
                provider=u.provider,
                case_id=u.case_id,
                repeat=u.repeat,
                request_hash=hashlib.sha256(f"{run_id}/{u.key}".encode()).hexdigest(),
            )
            for u in units
        ],
    )
    start = min((a.started_at for u in units for a in u.attempts), default=now)
    claimed = repository.claim_units(
        session, run_id, "fixture", limit=len(units) or 1, lease_seconds=86400 * 365, now=start
    )
    ids = {c.key: c.id for c in claimed}
    items: list[StoredItem] = []
    for unit in units:
        for attempt in unit.attempts[:-1]:
            items.append(
                AttemptWrite(
                    unit_id=ids[unit.key],
                    attempt=_record(unit, attempt, None),
                    cost_computed=attempt.cost_computed,
                )
            )
        final = unit.attempts[-1]
        items.append(
            UnitFinish(
                unit_id=ids[unit.key],
                owner="fixture",
                status="ok" if unit.status == "ok" else "failed",
                attempt=_record(unit, final, unit.completion),
                cost_computed=final.cost_computed,
                assertions=unit.assertions,
            )
        )
    repository.write_batch(session, items, now=now)
