"""The writes: a batch of attempts and unit ends (with their results and assertion outcomes) in one
transaction, fenced by each claim's lease token."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, func, insert, select, text, update

from runner.pricing import booked_cost
from runner.store.records import BatchOutcome, UnitFinish
from runner.store.repository.sql import (
    ATTEMPTS,
    CURRENT_RESULT,
    RESULTS,
    UNITS,
    insert_ignoring_conflicts,
    now_or_utc,
    transaction,
)
from runner.store.rows import attempt_row, result_rows

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from sqlalchemy.engine import Connection, RowMapping
    from sqlalchemy.orm import Session

    from runner.grading.outcome import AssertionOutcome
    from runner.store.records import GradingRequest, RawCapturePolicy, StoredItem


def write_batch(
    session: Session,
    items: Sequence[StoredItem],
    *,
    raw_capture: RawCapturePolicy = "failed",
    now: datetime | None = None,
) -> BatchOutcome:
    """Store a batch of attempts and unit ends in ONE transaction (the writer's unit of work).

    Every attempt is stored, numbered here (the unit's highest stored number + 1, under the unit's
    row lock) so numbers stay unique per unit whichever process writes. An attempt made under a
    lease the unit has since passed on (its ``lease_token`` is no longer the unit's) is stored as
    *superseded*: its tokens count as spent, it never becomes the result nor counts in
    ``units.attempts``. A ``UnitFinish`` also writes its result rows and sets the unit's status and
    ``finished_at``, but only if the unit is still ``running`` under the finisher's lease (owner and
    token): a unit is finished exactly once even if a lease expired and another process took it over.
    """
    moment = now_or_utc(now)
    with transaction(session, write=True) as conn:
        units = _lock_units(conn, sorted({item.unit_id for item in items}))
        next_number = _next_numbers(conn, list(units))
        held = _held_finishes(items, units)
        attempt_rows: list[dict[str, Any]] = []
        attempt_of: dict[int, int] = {}  # position in items -> position in attempt_rows
        counted: dict[int, int] = {}  # unit id -> attempts that count (not superseded)
        for position, item in enumerate(items):
            if item.attempt is None:
                continue
            row = attempt_row(item.unit_id, item.attempt, item.cost_computed, raw_capture)
            row["number"] = next_number.get(item.unit_id, 1)
            next_number[item.unit_id] = row["number"] + 1
            current = position in held if isinstance(item, UnitFinish) else _token_current(item, units)
            row["superseded"] = not current
            if current:
                counted[item.unit_id] = counted.get(item.unit_id, 0) + 1
            attempt_of[position] = len(attempt_rows)
            attempt_rows.append(row)
        attempt_ids = _insert_attempts(conn, attempt_rows) if attempt_rows else []
        if counted:
            conn.execute(
                update(UNITS)
                .where(UNITS.c.id == bindparam("uid"))
                .values(attempts=UNITS.c.attempts + bindparam("n")),
                [{"uid": unit_id, "n": n} for unit_id, n in counted.items()],
            )
        finished, lost = _finish_units(conn, items, held, attempt_of, attempt_ids, moment)
    cost = sum(booked_cost(row["cost_reported"], row["cost_computed"]) or 0.0 for row in attempt_rows)
    return BatchOutcome(
        attempts=len(attempt_rows),
        finished=tuple(finished),
        lost=tuple(lost),
        cost_usd=cost,
        superseded=sum(1 for row in attempt_rows if row["superseded"]),
    )


def _lock_units(conn: Connection, unit_ids: list[int]) -> dict[int, RowMapping]:
    """The batch's units, row-locked on PostgreSQL (in id order: two writers cannot deadlock) so the
    token check and the number allocation hold until commit; SQLite's BEGIN IMMEDIATE already
    serializes writers."""
    if not unit_ids:
        return {}
    query = (
        select(UNITS.c.id, UNITS.c.status, UNITS.c.lease_owner, UNITS.c.lease_token)
        .where(UNITS.c.id.in_(unit_ids))
        .order_by(UNITS.c.id)
        .with_for_update()
    )
    return {row["id"]: row for row in conn.execute(query).mappings()}


def _next_numbers(conn: Connection, unit_ids: list[int]) -> dict[int, int]:
    """Each unit's next attempt number: its highest stored one + 1 (superseded attempts included)."""
    if not unit_ids:
        return {}
    query = (
        select(ATTEMPTS.c.unit_id, func.max(ATTEMPTS.c.number))
        .where(ATTEMPTS.c.unit_id.in_(unit_ids))
        .group_by(ATTEMPTS.c.unit_id)
    )
    numbers = dict.fromkeys(unit_ids, 1)
    numbers.update({unit_id: highest + 1 for unit_id, highest in conn.execute(query)})
    return numbers


def _token_current(item: StoredItem, units: dict[int, RowMapping]) -> bool:
    """The write's claim is still the unit's latest (a write without a token is not fenced; a
    missing unit is left to the insert's foreign key to refuse)."""
    unit = units.get(item.unit_id)
    return item.lease_token is None or unit is None or unit["lease_token"] == item.lease_token


def _held_finishes(items: Sequence[StoredItem], units: dict[int, RowMapping]) -> set[int]:
    """Positions of the finishes that may end their unit: still ``running`` under the finisher's
    lease (owner, and token when it carries one); a second finish of one unit in a batch may not."""
    held: set[int] = set()
    seen: set[int] = set()
    for position, item in enumerate(items):
        if not isinstance(item, UnitFinish) or item.unit_id in seen:
            continue
        unit = units.get(item.unit_id)
        if unit is None or unit["status"] != "running" or unit["lease_owner"] != item.owner:
            continue
        if _token_current(item, units):
            held.add(position)
            seen.add(item.unit_id)
    return held


def _finish_units(
    conn: Connection,
    items: Sequence[StoredItem],
    held: set[int],
    attempt_of: dict[int, int],
    attempt_ids: list[int],
    moment: datetime,
) -> tuple[list[int], list[int]]:
    """Write the held finishes' result rows and statuses; return (finished, lost) unit ids."""
    finished: list[int] = []
    lost: list[int] = []
    results: list[dict[str, Any]] = []
    statuses: list[dict[str, Any]] = []
    for position, item in enumerate(items):
        if not isinstance(item, UnitFinish):
            continue
        if position not in held:
            lost.append(item.unit_id)
            continue
        finished.append(item.unit_id)
        statuses.append({"uid": item.unit_id, "st": item.status})
        completion = item.completion or (item.attempt.completion if item.attempt else None)
        if completion is not None:
            attempt_id = attempt_ids[attempt_of[position]] if position in attempt_of else None
            results += result_rows(
                item.unit_id, attempt_id, completion, item.cost_computed, moment, item.assertions
            )
    if results:
        conn.execute(insert(RESULTS), results)
    held_items = [
        item for position, item in enumerate(items) if position in held and isinstance(item, UnitFinish)
    ]
    queue_gradings(conn, [item.grading for item in held_items if item.grading is not None])
    for item in held_items:
        if item.verdict is not None and item.graded_unit_id is not None:
            apply_verdict(conn, item.graded_unit_id, item.verdict)
    if statuses:
        conn.execute(
            update(UNITS)
            .where(UNITS.c.id == bindparam("uid"))
            # lease_owner stays: a finished unit keeps the name of the process that finished it, which
            # is how the report tells which hosts / processes worked a run (every query of the queue
            # reads lease_owner only on `running` units).
            .values(status=bindparam("st"), lease_expires_at=None, finished_at=moment),
            statuses,
        )
    return finished, lost


def queue_gradings(conn: Connection, gradings: list[GradingRequest]) -> None:
    """Queue grading units as ``pending`` in the graded units' run (a key already queued is kept)."""
    if not gradings:
        return
    runs = dict(
        conn.execute(
            select(UNITS.c.id, UNITS.c.run_id).where(UNITS.c.id.in_([g.graded_unit_id for g in gradings]))
        ).all()
    )
    rows = [
        {
            "run_id": runs[g.graded_unit_id],
            "key": g.key,
            "provider": g.provider,
            "case_id": g.case_id,
            "repeat": g.repeat,
            "request_hash": g.request_hash,
            "status": "pending",
            "attempts": 0,
            "graded_unit_id": g.graded_unit_id,
            "grading_prompt": g.prompt,
        }
        for g in gradings
        if g.graded_unit_id in runs
    ]
    insert_ignoring_conflicts(conn, rows)


def apply_verdict(conn: Connection, graded_unit_id: int, verdict: AssertionOutcome) -> None:
    """Make ``verdict`` the graded unit's ``judge`` outcome, on its first choice's result row where its
    other outcomes are: in the place of the one it had (the pending one, in the table's key order)."""
    row = conn.execute(
        select(RESULTS.c.id, RESULTS.c.assertions)
        .where(RESULTS.c.unit_id == graded_unit_id, CURRENT_RESULT)
        .order_by(RESULTS.c.choice_index)
        .limit(1)
    ).first()
    if row is None:
        return  # the graded unit has no result row (nothing to attach a verdict to)
    outcomes = list(row.assertions or [])
    at = next((i for i, o in enumerate(outcomes) if o.get("name") == verdict.name), len(outcomes))
    outcomes[at : at + 1] = [verdict.to_dict()]
    conn.execute(update(RESULTS).where(RESULTS.c.id == row.id).values(assertions=outcomes))


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
