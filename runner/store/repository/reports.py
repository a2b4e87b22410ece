"""The reports' own reads: every attempt's tokens and cost with its run's grouping fields.

Units and runs are read through ``reads.iter_units`` and ``runs.get_run``; this module holds only what
``runner cost`` needs across runs, without the answers' texts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select

from runner.store.records import AttemptCost
from runner.store.repository.sql import ATTEMPTS, RUNS, UNITS, transaction

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy.orm import Session


def attempt_costs(
    session: Session, *, since: datetime | None = None, until: datetime | None = None
) -> list[AttemptCost]:
    """Every attempt that started in ``[since, until)`` with its cost fields, oldest first."""
    query = (
        select(
            RUNS.c.id.label("run_id"),
            RUNS.c.job_name,
            RUNS.c.tags,
            UNITS.c.provider,
            ATTEMPTS.c.model,
            ATTEMPTS.c.started_at,
            ATTEMPTS.c.error_kind,
            ATTEMPTS.c.superseded,
            ATTEMPTS.c.input_tokens,
            ATTEMPTS.c.output_tokens,
            ATTEMPTS.c.reasoning_tokens,
            ATTEMPTS.c.cached_input_tokens,
            ATTEMPTS.c.cost_reported,
            ATTEMPTS.c.cost_computed,
        )
        .select_from(
            ATTEMPTS.join(UNITS, ATTEMPTS.c.unit_id == UNITS.c.id).join(RUNS, UNITS.c.run_id == RUNS.c.id)
        )
        .order_by(ATTEMPTS.c.started_at, ATTEMPTS.c.id)
    )
    if since is not None:
        query = query.where(ATTEMPTS.c.started_at >= since)
    if until is not None:
        query = query.where(ATTEMPTS.c.started_at < until)
    with transaction(session, write=False) as conn:
        rows = conn.execute(query).mappings().all()
    return [
        AttemptCost(
            run_id=row["run_id"],
            job_name=row["job_name"],
            tags=tuple(row["tags"] or ()),
            provider=row["provider"],
            model=row["model"],
            started_at=row["started_at"],
            # A superseded attempt's answer was never the result: its tokens are waste.
            ok=row["error_kind"] is None and not row["superseded"],
            superseded=bool(row["superseded"]),
            input_tokens=row["input_tokens"],
            output_tokens=row["output_tokens"],
            reasoning_tokens=row["reasoning_tokens"],
            cached_input_tokens=row["cached_input_tokens"],
            cost_reported=row["cost_reported"],
            cost_computed=row["cost_computed"],
        )
        for row in rows
    ]
