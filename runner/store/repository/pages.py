"""The viewer's bounded reads: one page of a run's units, sorted and filtered in SQL, and the per-case
unit counts of its case x provider matrix. A 100,000-unit run costs an indexed scan, never 100,000
objects: only the page's units are loaded whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from sqlalchemy import ColumnElement, and_, case, func, literal_column, select, text

from runner.store.repository.reads import read_views
from runner.store.repository.sql import (
    HAS_FAILED_OUTCOME,
    JOB_UNIT,
    OUTCOME_FAILED,
    UNITS,
    transaction,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from runner.store.records import UnitView

# The unit filters: a unit status, or "failed_assertions" (ok, with a failed assertion outcome).
FAILED_ASSERTIONS: Final = "failed_assertions"
STATUSES: Final = ("failed", FAILED_ASSERTIONS, "running", "pending", "ok")
SORT_KEYS: Final = ("status", "provider", "case", "repeat", "attempts", "finished")


def _failed_assertions(dialect: str) -> ColumnElement[bool]:
    """An ok unit whose current result holds a failed assertion outcome (a pending judge is none)."""
    return and_(
        UNITS.c.status == "ok",
        literal_column(
            "EXISTS (SELECT 1 FROM results WHERE results.unit_id = units.id AND results.replaced_at IS NULL"
            f" AND {HAS_FAILED_OUTCOME[dialect]})"
        ),
    )


def _sorts(dialect: str, key: str) -> tuple[ColumnElement[object], ...]:
    """The ORDER BY of a sort key. "status": failures first, the order a reader looking for "what went
    wrong" wants: failed, failed assertions, running, pending, passed (then unit order)."""
    if key == "status":
        rank = case(
            (UNITS.c.status == "failed", 0),
            (_failed_assertions(dialect), 1),
            (UNITS.c.status == "running", 2),
            (UNITS.c.status == "pending", 3),
            else_=4,
        )
        return (rank, UNITS.c.id)
    return {
        "provider": (UNITS.c.provider, UNITS.c.case_id, UNITS.c.repeat),
        "case": (UNITS.c.case_id, UNITS.c.provider, UNITS.c.repeat),
        "repeat": (UNITS.c.repeat, UNITS.c.id),
        "attempts": (UNITS.c.attempts, UNITS.c.id),
        "finished": (UNITS.c.finished_at, UNITS.c.id),
    }[key]


# Per case and provider of one run: ok units with a failed assertion outcome (the outcomes are a JSON
# list on the unit's result row, walked with each backend's JSON function). The LIKE skips, cheaply,
# the rows with no "false" anywhere in them, which is most of a healthy run.
_FAILED_CHECKS_SQL: Final = {
    "sqlite": f"""
        SELECT u.case_id, u.provider, COUNT(DISTINCT u.id)
        FROM units u JOIN results r ON r.unit_id = u.id AND r.replaced_at IS NULL, json_each(r.assertions) o
        WHERE u.run_id = :run_id AND u.status = 'ok' AND r.assertions LIKE '%false%'
          AND {OUTCOME_FAILED["sqlite"]}
        GROUP BY u.case_id, u.provider""",
    "postgresql": f"""
        SELECT u.case_id, u.provider, COUNT(DISTINCT u.id)
        FROM units u JOIN results r ON r.unit_id = u.id AND r.replaced_at IS NULL
          CROSS JOIN LATERAL json_array_elements(
            CASE WHEN json_typeof(r.assertions) = 'array' THEN r.assertions ELSE '[]'::json END) o
        WHERE u.run_id = :run_id AND u.status = 'ok' AND r.assertions::text LIKE '%false%'
          AND {OUTCOME_FAILED["postgresql"]}
        GROUP BY u.case_id, u.provider""",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class UnitQuery:
    """Which units of a run to show, in which order: the viewer's query parameters, validated."""

    provider: str | None = None
    status: str | None = None  # one of STATUSES
    case_contains: str | None = None  # a substring of the case id
    sort: str = "status"  # one of SORT_KEYS
    descending: bool = False
    offset: int = 0
    limit: int = 100


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseCounts:
    """One case on one provider: its units by status, and the ok ones that failed an assertion."""

    case_id: str
    provider: str
    units: int
    ok: int
    failed_assertions: int  # of the ok ones
    failed: int
    not_done: int


def unit_page(session: Session, run_id: str, query: UnitQuery) -> tuple[list[UnitView], int]:
    """The units of ``query``'s page, whole (attempts and results), and how many units match in all."""
    where = [UNITS.c.run_id == run_id, JOB_UNIT]  # grading units are no units of the job
    if query.provider:
        where.append(UNITS.c.provider == query.provider)
    if query.case_contains:
        where.append(UNITS.c.case_id.contains(query.case_contains, autoescape=True))
    with transaction(session, write=False) as conn:
        dialect = conn.dialect.name
        if query.status == FAILED_ASSERTIONS:
            where.append(_failed_assertions(dialect))
        elif query.status:
            where.append(UNITS.c.status == query.status)
        order = [c.desc() if query.descending else c.asc() for c in _sorts(dialect, query.sort)]
        total = conn.execute(select(func.count()).select_from(UNITS).where(*where)).scalar_one()
        units = (
            conn.execute(select(UNITS).where(*where).order_by(*order).offset(query.offset).limit(query.limit))
            .mappings()
            .all()
        )
        return read_views(conn, units), total


def case_counts(session: Session, run_id: str) -> list[CaseCounts]:
    """Every (case, provider) pair of a run with its units by status, in case order (two GROUP BYs)."""
    ok = func.sum(case((UNITS.c.status == "ok", 1), else_=0))
    failed = func.sum(case((UNITS.c.status == "failed", 1), else_=0))
    query = (
        select(UNITS.c.case_id, UNITS.c.provider, func.count(), ok, failed)
        .where(UNITS.c.run_id == run_id, JOB_UNIT)
        .group_by(UNITS.c.case_id, UNITS.c.provider)
        .order_by(UNITS.c.case_id, UNITS.c.provider)
    )
    with transaction(session, write=False) as conn:
        rows = conn.execute(query).all()
        checks = text(_FAILED_CHECKS_SQL[conn.dialect.name])
        broke = {(c, p): int(n) for c, p, n in conn.execute(checks, {"run_id": run_id})}
    return [
        CaseCounts(
            case_id=case_id,
            provider=provider,
            units=int(n),
            ok=int(n_ok or 0),
            failed_assertions=broke.get((case_id, provider), 0),
            failed=int(n_failed or 0),
            not_done=int(n) - int(n_ok or 0) - int(n_failed or 0),
        )
        for case_id, provider, n, n_ok, n_failed in rows
    ]


def unit_keys_in_runs(session: Session, run_ids: list[str], key: str) -> set[str]:
    """The runs among ``run_ids`` that have a unit ``key`` (for links to the same unit elsewhere)."""
    query = select(UNITS.c.run_id).where(UNITS.c.run_id.in_(run_ids), UNITS.c.key == key)
    with transaction(session, write=False) as conn:
        return set(conn.execute(query).scalars())
