"""What every repository module shares: the table handles, one transaction per call, the clock.

Plumbing of the ``runner.store.repository`` package only; its ``__init__`` does not re-export it.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

from sqlalchemy import func

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
