"""The writes: a batch of attempts and unit ends (with their results and assertion outcomes) in one
transaction."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, insert, select, text, update

from runner.pricing import booked_cost
from runner.store.records import BatchOutcome, UnitFinish
from runner.store.repository.sql import ATTEMPTS, RESULTS, UNITS, now_or_utc, transaction
from runner.store.rows import attempt_row, result_rows

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from sqlalchemy.engine import Connection
    from sqlalchemy.orm import Session

    from runner.store.records import RawCapturePolicy, WriteItem


def write_batch(
    session: Session,
    items: Sequence[WriteItem],
    *,
    raw_capture: RawCapturePolicy = "failed",
    now: datetime | None = None,
) -> BatchOutcome:
    """Store a batch of attempts and unit ends in ONE transaction (the writer's unit of work).

    Every attempt is stored. A ``UnitFinish`` also writes its result rows and sets the unit's status
    and ``finished_at``, but only if the unit is still ``running`` under the finisher's lease: a
    unit is finished exactly once even if a lease expired and another process took it over.
    """
    moment = now_or_utc(now)
    finishes = [item for item in items if isinstance(item, UnitFinish)]
    with transaction(session, write=True) as conn:
        held: set[int] = set()
        if finishes:
            owners = {item.unit_id: item.owner for item in finishes}
            current = conn.execute(
                select(UNITS.c.id, UNITS.c.lease_owner).where(
                    UNITS.c.id.in_(list(owners)), UNITS.c.status == "running"
                )
            )
            held = {unit_id for unit_id, lease_owner in current if owners[unit_id] == lease_owner}
        attempt_rows: list[dict[str, Any]] = []
        attempt_of: dict[int, int] = {}  # position in items -> position in attempt_rows
        for position, item in enumerate(items):
            if item.attempt is not None:
                attempt_of[position] = len(attempt_rows)
                attempt_rows.append(attempt_row(item.unit_id, item.attempt, item.cost_computed, raw_capture))
        attempt_ids: list[int] = []
        if attempt_rows:
            attempt_ids = _insert_attempts(conn, attempt_rows)
            conn.execute(
                update(UNITS)
                .where(UNITS.c.id == bindparam("uid"), UNITS.c.attempts < bindparam("n"))
                .values(attempts=bindparam("n")),
                [{"uid": row["unit_id"], "n": row["number"]} for row in attempt_rows],
            )
        finished: list[int] = []
        lost: list[int] = []
        results: list[dict[str, Any]] = []
        for position, item in enumerate(items):
            if not isinstance(item, UnitFinish):
                continue
            if item.unit_id not in held:
                lost.append(item.unit_id)
                continue
            held.discard(item.unit_id)  # a second finish of one unit in one batch is lost too
            finished.append(item.unit_id)
            completion = item.completion or (item.attempt.completion if item.attempt else None)
            if completion is not None:
                attempt_id = attempt_ids[attempt_of[position]] if position in attempt_of else None
                results += result_rows(
                    item.unit_id, attempt_id, completion, item.cost_computed, moment, item.assertions
                )
        if results:
            conn.execute(insert(RESULTS), results)
        if finished:
            status_of = {item.unit_id: item.status for item in finishes}
            conn.execute(
                update(UNITS)
                .where(UNITS.c.id == bindparam("uid"))
                .values(status=bindparam("st"), lease_owner=None, lease_expires_at=None, finished_at=moment),
                [{"uid": unit_id, "st": status_of[unit_id]} for unit_id in finished],
            )
    cost = sum(booked_cost(row["cost_reported"], row["cost_computed"]) or 0.0 for row in attempt_rows)
    return BatchOutcome(attempts=len(attempt_rows), finished=tuple(finished), lost=tuple(lost), cost_usd=cost)


def _insert_attempts(conn: Connection, rows: list[dict[str, Any]]) -> list[int]:
    """Insert attempt rows; return their ids in order."""
    if conn.dialect.name == "postgresql":
        # Take the ids from the sequence in one round trip, then insert with a plain pipelined
        # executemany: psycopg re-parses a long multi-VALUES INSERT ... RETURNING on every batch,
        # which made PostgreSQL batches CPU-bound on the client.
        ids = list(
            conn.execute(
                text("SELECT nextval(pg_get_serial_sequence('attempts', 'id')) FROM generate_series(1, :n)"),
                {"n": len(rows)},
            ).scalars()
        )
        conn.execute(insert(ATTEMPTS), [{**row, "id": id_} for row, id_ in zip(rows, ids, strict=True)])
        return ids
    returning = insert(ATTEMPTS).returning(ATTEMPTS.c.id, sort_by_parameter_order=True)
    return list(conn.execute(returning, rows).scalars())
