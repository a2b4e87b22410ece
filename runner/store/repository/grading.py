"""Grading units' SQL: the finished units still to be graded (``--resume``), queueing their grading,
and what grading cost in a run (shown apart from the job's own cost)."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from sqlalchemy import exists, func, select
from sqlalchemy.orm import aliased

from runner.store.records import GradedUnit, unit_verdict
from runner.store.repository.sql import (
    ATTEMPTS,
    CURRENT_RESULT,
    JOB_UNIT,
    RESULTS,
    UNITS,
    booked_cost_sql,
    transaction,
)
from runner.store.repository.writes import queue_gradings as _queue
from runner.store.rows import assertions_from_json, completion_from_results

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence

    from sqlalchemy.orm import Session

    from runner.store.records import GradingRequest

# Units read per transaction while looking for ungraded ones.
_PAGE = 500


def ungraded_units(session: Session, run_id: str, case_ids: Collection[str]) -> list[GradedUnit]:
    """The ``ok`` job units of ``case_ids`` (the judged cases) that no grading unit grades yet: a run
    stopped between a unit's result and its grading, or a result copied by ``--reuse``."""
    if not case_ids:
        return []
    grader = aliased(UNITS)
    query = (
        select(UNITS.c.id, UNITS.c.key, UNITS.c.case_id, UNITS.c.repeat)
        .where(
            UNITS.c.run_id == run_id,
            UNITS.c.status == "ok",
            UNITS.c.graded_unit_id.is_(None),
            UNITS.c.case_id.in_(list(case_ids)),
            ~exists().where(grader.c.graded_unit_id == UNITS.c.id),
        )
        .order_by(UNITS.c.id)
    )
    found: list[GradedUnit] = []
    with transaction(session, write=False) as conn:
        units = conn.execute(query).all()
        for start in range(0, len(units), _PAGE):
            page = units[start : start + _PAGE]
            results = defaultdict(list)
            for row in conn.execute(
                select(RESULTS)
                .where(RESULTS.c.unit_id.in_([u.id for u in page]), CURRENT_RESULT)
                .order_by(RESULTS.c.unit_id, RESULTS.c.choice_index)
            ).mappings():
                results[row["unit_id"]].append(row)
            found += [
                GradedUnit(
                    id=u.id,
                    key=u.key,
                    case_id=u.case_id,
                    repeat=u.repeat,
                    completion=completion_from_results(results[u.id], None),
                )
                for u in page
            ]
    return found


def queue_gradings(session: Session, gradings: Sequence[GradingRequest]) -> None:
    """Queue grading units as ``pending`` (idempotent by key)."""
    with transaction(session, write=True) as conn:
        _queue(conn, list(gradings))


def count_grading_pending(session: Session, run_id: str) -> int:
    """``ok`` units of a run's job whose judge has not answered yet (a ``pending`` judge outcome, and no
    failed assertion besides): their verdict is "not done" (``records.unit_verdict``)."""
    query = (
        select(UNITS.c.status, RESULTS.c.assertions)
        .join(UNITS, UNITS.c.id == RESULTS.c.unit_id)
        .where(UNITS.c.run_id == run_id, UNITS.c.status == "ok", JOB_UNIT, RESULTS.c.assertions.is_not(None))
        .where(CURRENT_RESULT)
    )
    with transaction(session, write=False) as conn:
        stored = conn.execute(query).all()
    return sum(1 for status, data in stored if unit_verdict(status, assertions_from_json(data)) == "not done")


def grading_cost(session: Session, run_id: str) -> float:
    """USD the run's grading units' attempts cost (by the one cost rule); part of the run's cost."""
    query = (
        select(func.coalesce(func.sum(booked_cost_sql()), 0.0))
        .select_from(ATTEMPTS.join(UNITS, ATTEMPTS.c.unit_id == UNITS.c.id))
        .where(UNITS.c.run_id == run_id, UNITS.c.graded_unit_id.is_not(None))
    )
    with transaction(session, write=False) as conn:
        return float(conn.execute(query).scalar_one())
