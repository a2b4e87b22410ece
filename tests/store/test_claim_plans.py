"""Claims in constant time: the queue's hot statements (claim, renew, release, "anything left?")
read by index ranges in the order they need, never the whole run and never a sort of it.

Checked on the plans the databases choose for the statements runner really sends (captured from
the engine with SQLAlchemy's ``before_cursor_execute`` event, then EXPLAINed with their parameters):
SQLite must not ``SCAN units`` or build a ``TEMP B-TREE``; PostgreSQL, told to avoid sequential
scans (an almost empty table would otherwise be scanned whatever the indexes), must not sort or scan
``units``. benchmarks/bench_claims.py measures the same at 1k to 1M units.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import event

from runner.store import repository
from tests.store.factories import make_job, make_units

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.orm import Session

    from runner.store.db import Database


@contextmanager
def _captured(database: Database) -> Iterator[list[tuple[str, Any]]]:
    statements: list[tuple[str, Any]] = []

    def keep(
        _conn: Connection, _cursor: object, sql: str, params: Any, _context: object, _many: bool
    ) -> None:
        if " units" in sql and not sql.startswith(("EXPLAIN", "INSERT")):
            statements.append((sql, params))

    event.listen(database.engine, "before_cursor_execute", keep)
    try:
        yield statements
    finally:
        event.remove(database.engine, "before_cursor_execute", keep)


def _plan(database: Database, sql: str, params: Any) -> str:
    raw = database.engine.raw_connection()
    try:
        cursor = raw.cursor()
        if database.is_sqlite:
            cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
            return "\n".join(str(row[-1]) for row in cursor.fetchall())
        cursor.execute("SET enable_seqscan = off")
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(str(row[0]) for row in cursor.fetchall())
    finally:
        raw.rollback()
        raw.close()


def _whole_run_reads(database: Database, plan: str) -> list[str]:
    if database.is_sqlite:
        return [line for line in plan.splitlines() if "SCAN units" in line or "TEMP B-TREE" in line]
    return [line for line in plan.splitlines() if "Sort" in line or "Seq Scan on units" in line]


def test_claim_renew_release_and_outstanding_read_no_whole_run(db: Database, session: Session) -> None:
    run = repository.create_run(session, make_job(), host="h", version="t")
    repository.add_units(session, run.id, make_units(50) + make_units(50, provider="other"))
    with _captured(db) as statements:
        claimed = repository.claim_units(session, run.id, "w", limit=5, lease_seconds=30, provider="mini")
        repository.claim_units(session, run.id, "w", limit=5, lease_seconds=30)  # any provider
        repository.renew_leases(session, run.id, "w", lease_seconds=30)
        repository.release_units(session, run.id, "w", unit_ids=[claimed[0].id])
        repository.release_units(session, run.id, "w")
        assert repository.any_outstanding(session, run.id, excluding_owner="w")
    assert len(claimed) == 5
    assert statements
    bad = {sql: _whole_run_reads(db, plan) for sql, params in statements if (plan := _plan(db, sql, params))}
    assert {sql: lines for sql, lines in bad.items() if lines} == {}
