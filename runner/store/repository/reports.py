"""Read queries of the reports that the repository does not already answer (SQL stays in runner.store).

Kept apart from the ``repository`` package so the reports can grow their reads without touching the
queue's modules; same rules: a Session in, one short read transaction, frozen records out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from sqlalchemy import select

from runner.store.db import storage_errors
from runner.store.models import Base

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy.orm import Session

RUNS: Final = Base.metadata.tables["runs"]
UNITS: Final = Base.metadata.tables["units"]
ATTEMPTS: Final = Base.metadata.tables["attempts"]


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptCost:
    """One attempt's tokens and cost with its run's grouping fields (no texts: cheap at any scale)."""

    run_id: str
    job_name: str
    tags: tuple[str, ...]
    provider: str
    model: str | None
    started_at: datetime
    ok: bool
    input_tokens: int | None
    output_tokens: int | None
    reasoning_tokens: int | None
    cached_input_tokens: int | None
    cost_reported: float | None
    cost_computed: float | None


@storage_errors
def attempt_costs(
    session: Session, *, since: datetime | None = None, until: datetime | None = None
) -> list[AttemptCost]:
    """Every attempt that started in ``[since, until)`` with its cost fields, oldest first."""
    query = (
        select(
            RUNS.c.id,
            RUNS.c.job_name,
            RUNS.c.tags,
            UNITS.c.provider,
            ATTEMPTS.c.model,
            ATTEMPTS.c.started_at,
            ATTEMPTS.c.error_kind,
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
    with session.begin():
        rows = session.execute(query).all()
    return [
        AttemptCost(
            run_id=row[0],
            job_name=row[1],
            tags=tuple(row[2] or ()),
            provider=row[3],
            model=row[4],
            started_at=row[5],
            ok=row[6] is None,
            input_tokens=row[7],
            output_tokens=row[8],
            reasoning_tokens=row[9],
            cached_input_tokens=row[10],
            cost_reported=row[11],
            cost_computed=row[12],
        )
        for row in rows
    ]
