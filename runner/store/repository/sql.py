"""What every repository module shares: the table handles, one transaction per call, the clock.

Plumbing of the ``runner.store.repository`` package only; its ``__init__`` does not re-export it.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import func
from sqlalchemy.dialects import postgresql, sqlite

from runner.store.db import map_exceptions
from runner.store.models import Base

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sqlalchemy.engine import Connection
    from sqlalchemy.orm import Session
    from sqlalchemy.sql.elements import ColumnElement

RUNS: Final = Base.metadata.tables["runs"]
UNITS: Final = Base.metadata.tables["units"]
ATTEMPTS: Final = Base.metadata.tables["attempts"]
RESULTS: Final = Base.metadata.tables["results"]
INSERT_CHUNK: Final = 2000
# A unit of the job, not a grading unit (a judge's request grading another unit).
JOB_UNIT: Final = UNITS.c.graded_unit_id.is_(None)


def insert_ignoring_conflicts(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert unit rows; a row whose (run, key) is stored already is left as it is (idempotent)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    for start in range(0, len(rows), INSERT_CHUNK):
        stmt = dialect.insert(UNITS).on_conflict_do_nothing(index_elements=["run_id", "key"])
        conn.execute(stmt, rows[start : start + INSERT_CHUNK])


# A condition on one assertion outcome ``o`` of a results row's JSON list, per backend: it failed. A judge
# still grading is stored with ``passed`` false and ``pending`` true: neither a pass nor a failure.
OUTCOME_FAILED: Final = {
    "sqlite": "json_extract(o.value, '$.passed') = 0 AND json_extract(o.value, '$.pending') IS NULL",
    "postgresql": "o->>'passed' = 'false' AND o->>'pending' IS NULL",
}

# A WHERE condition on a ``results`` row: its assertion outcomes hold one that failed. Each backend
# walks the JSON list with its own function; the rows without one are never sent to Python.
HAS_FAILED_OUTCOME: Final = {
    "sqlite": f"EXISTS (SELECT 1 FROM json_each(results.assertions) o WHERE {OUTCOME_FAILED['sqlite']})",
    "postgresql": "json_typeof(results.assertions) = 'array' AND EXISTS (SELECT 1 FROM "
    f"json_array_elements(results.assertions) o WHERE {OUTCOME_FAILED['postgresql']})",
}
# A unit's current result rows; ``--retry failed`` keeps the ones it replaced, with ``replaced_at``.
CURRENT_RESULT: Final = RESULTS.c.replaced_at.is_(None)


def booked_cost_sql() -> ColumnElement[float]:
    """An attempt's booked cost in SQL, zero when unknown: ``runner.pricing.booked_cost`` mirrored.

    The one SQL statement of the cost rule (provider-reported where sent, else computed from the
    run's frozen prices); change both together.
    """
    return func.coalesce(ATTEMPTS.c.cost_reported, ATTEMPTS.c.cost_computed, 0.0)


def now_or_utc(now: datetime | None) -> datetime:
    """``now`` if the caller decided it (tests), else the local UTC clock."""
    return now if now is not None else datetime.now(UTC)


@contextlib.contextmanager
def transaction(session: Session, *, write: bool) -> Iterator[Connection]:
    """One transaction on ``session``; a write one takes SQLite's write lock at BEGIN."""
    with map_exceptions(), session.begin():
        options = {"sqlite_begin": "IMMEDIATE"} if write else {}
        yield session.connection(execution_options=options)
