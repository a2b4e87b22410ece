"""The unit queue's SQL: store a run's units (reusing earlier samples: ``reuse``), lease them out, renew and
release leases, reopen a run, and count what is still outstanding."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import and_, func, or_, select, update

from runner.store.records import ClaimedUnit
from runner.store.repository.limits import lapse_all
from runner.store.repository.reuse import reuse_results
from runner.store.repository.sql import (
    CURRENT_RESULT,
    RESULTS,
    RUNS,
    UNITS,
    insert_ignoring_conflicts,
    now_or_utc,
    transaction,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from datetime import datetime

    from sqlalchemy.engine import Connection
    from sqlalchemy.orm import Session

    from runner.job.plan import Unit
    from runner.store.records import ReuseGrader


def add_units(
    session: Session,
    run_id: str,
    units: Iterable[Unit],
    *,
    reuse: ReuseGrader | None = None,
    planned: bool = False,
    now: datetime | None = None,
) -> int:
    """Store units as ``pending``, idempotently by (run, key); return how many of them were reused.

    With ``reuse`` (the current job's grader), a new unit whose ``request_hash`` has an earlier sample
    (an ``ok`` unit of another run, see ``repository.reuse``) gets a copy of that sample's results,
    graded afresh by ``reuse``, status ``ok`` and ``reused_from`` set, and is never claimed; each
    sample goes to one unit only. With ``planned`` (the last batch), a ``planning`` run becomes
    ``running`` in the same transaction, so no run is ever ``running`` with only part of its units stored.
    """
    batch = list(units)
    rows = [
        {
            "run_id": run_id,
            "key": unit.key,
            "provider": unit.provider,
            "case_id": unit.case_id,
            "repeat": unit.repeat,
            "request_hash": unit.request_hash,
            "status": "pending",
            "lease_owner": None,
            "lease_expires_at": None,
            "attempts": 0,
            "reused_from": None,
            "finished_at": None,
        }
        for unit in batch
    ]
    with transaction(session, write=True) as conn:
        insert_ignoring_conflicts(conn, rows)
        if planned:
            conn.execute(
                update(RUNS).where(RUNS.c.id == run_id, RUNS.c.status == "planning").values(status="running")
            )
        if reuse is None:
            return 0
        hashes = {unit.request_hash for unit in batch}
        return reuse_results(conn, run_id, hashes, reuse, now_or_utc(now))


def claim_units(
    session: Session,
    run_id: str,
    owner: str,
    *,
    limit: int,
    lease_seconds: float,
    provider: str | None = None,
    now: datetime | None = None,
) -> list[ClaimedUnit]:
    """Lease up to ``limit`` claimable units of a run (of one ``provider``, if named) to ``owner``.

    Claimable: ``pending``, or ``running`` with an expired lease held by someone else (its holder
    died). A unit whose lease ``owner`` itself let expire is still in flight here: the owner is alive,
    since it is asking, and only its renewal came late (a saturated event loop delays it). Units come
    in unit order. Concurrent claimers never get the same unit: PostgreSQL skips rows another
    transaction has locked, SQLite serializes writers with ``BEGIN IMMEDIATE``.
    """
    moment = now_or_utc(now)
    expires = moment + timedelta(seconds=lease_seconds)
    stmt = (
        update(UNITS)
        # A new token per claim fences the previous holder's late writes (see write_batch).
        .values(
            status="running",
            lease_owner=owner,
            lease_expires_at=expires,
            lease_token=UNITS.c.lease_token + 1,
        )
        .returning(
            UNITS.c.id,
            UNITS.c.key,
            UNITS.c.provider,
            UNITS.c.case_id,
            UNITS.c.repeat,
            UNITS.c.request_hash,
            UNITS.c.attempts,
            UNITS.c.lease_token,
            UNITS.c.graded_unit_id,
            UNITS.c.grading_prompt,
        )
    )
    with transaction(session, write=True) as conn:
        ids = _claimable(conn, run_id, owner, provider, limit, moment)
        rows = conn.execute(stmt.where(UNITS.c.id.in_(ids))).mappings().all() if ids else []
    claimed = [ClaimedUnit(run_id=run_id, lease_expires_at=expires, **dict(row)) for row in rows]
    return sorted(claimed, key=lambda unit: unit.id)


def _claimable(
    conn: Connection, run_id: str, owner: str, provider: str | None, limit: int, moment: datetime
) -> list[int]:
    """Ids of up to ``limit`` claimable units: expired leases of others first (older units), then pending.

    Two index range reads, each in ``id`` order on (run_id, provider, status, id), so a claim reads
    about ``limit`` rows (plus the run's running ones) whatever the run's size. One query with
    ``status = 'pending' OR (status = 'running' AND ...)`` read every unit of the provider and sorted
    them (SQLite: a temp B-tree per claim), which made claims slow down as runs grew.
    """
    scope = UNITS.c.run_id == run_id
    if provider is not None:
        scope = and_(scope, UNITS.c.provider == provider)
    expired = and_(
        scope, UNITS.c.status == "running", UNITS.c.lease_expires_at < moment, UNITS.c.lease_owner != owner
    )
    found: list[int] = []
    for where in (expired, and_(scope, UNITS.c.status == "pending")):
        if len(found) >= limit:
            break
        query = select(UNITS.c.id).where(where).order_by(UNITS.c.id).limit(limit - len(found))
        found += conn.execute(query.with_for_update(skip_locked=True)).scalars().all()
    return found


def renew_leases(
    session: Session, run_id: str, owner: str, *, lease_seconds: float, now: datetime | None = None
) -> int:
    """Extend every lease ``owner`` holds in a run to ``now + lease_seconds``; return how many."""
    expires = now_or_utc(now) + timedelta(seconds=lease_seconds)
    with transaction(session, write=True) as conn:
        result = conn.execute(
            update(UNITS)
            .where(UNITS.c.run_id == run_id, UNITS.c.status == "running", UNITS.c.lease_owner == owner)
            .values(lease_expires_at=expires)
        )
        return result.rowcount


def release_units(session: Session, run_id: str, owner: str, *, unit_ids: Sequence[int] | None = None) -> int:
    """Give back ``owner``'s leased units (all, or ``unit_ids``) as ``pending``; return how many.

    The engine calls this after cancelling in-flight work, so no ``running`` row outlives a process.
    """
    query = update(UNITS).where(
        UNITS.c.run_id == run_id, UNITS.c.status == "running", UNITS.c.lease_owner == owner
    )
    if unit_ids is not None:
        query = query.where(UNITS.c.id.in_(list(unit_ids)))
    with transaction(session, write=True) as conn:
        return conn.execute(query.values(status="pending", lease_owner=None, lease_expires_at=None)).rowcount


def resume_run(
    session: Session, run_id: str, *, retry_failed: bool = False, now: datetime | None = None
) -> int:
    """Reopen a run: every unit without a result (pending or running) becomes pending, leases
    dropped; ``ok`` units are untouched, and ``failed`` ones too unless ``retry_failed``. Returns
    how many units will run.

    With ``retry_failed`` (``runner run --resume RUN --retry failed``) every ``failed`` unit is
    reopened as well, in the same transaction: its attempts stay (the next ones continue their
    numbering, see ``write_batch``), and so do its result rows (the partial output its last attempt
    ended with), stamped ``replaced_at`` so that the result of its new final attempt is the current
    one. An ``ok`` unit whose assertions failed is not
    ``failed`` and is never reopened: it has a result.

    Only for a run nobody works any more (crashed or interrupted); ``--join`` just claims.
    """
    with transaction(session, write=True) as conn:
        if retry_failed:
            failed = select(UNITS.c.id).where(UNITS.c.run_id == run_id, UNITS.c.status == "failed")
            conn.execute(
                update(RESULTS)
                .where(RESULTS.c.unit_id.in_(failed), CURRENT_RESULT)
                .values(replaced_at=now_or_utc(now))
            )
            conn.execute(
                update(UNITS)
                .where(UNITS.c.run_id == run_id, UNITS.c.status == "failed")
                .values(status="pending", lease_owner=None, lease_expires_at=None, finished_at=None)
            )
        conn.execute(
            update(UNITS)
            .where(UNITS.c.run_id == run_id, UNITS.c.status.in_(("pending", "running")))
            .values(status="pending", lease_owner=None, lease_expires_at=None)
        )
        conn.execute(update(RUNS).where(RUNS.c.id == run_id).values(status="running", finished_at=None))
        lapse_all(conn, run_id)
        return conn.execute(
            select(func.count()).where(UNITS.c.run_id == run_id, UNITS.c.status == "pending")
        ).scalar_one()


def live_leases(session: Session, run_id: str, *, now: datetime | None = None) -> dict[str, int]:
    """Units of a run held under a lease that has not expired, counted per lease owner."""
    query = (
        select(UNITS.c.lease_owner, func.count())
        .where(
            UNITS.c.run_id == run_id,
            UNITS.c.status == "running",
            UNITS.c.lease_expires_at >= now_or_utc(now),
        )
        .group_by(UNITS.c.lease_owner)
    )
    with transaction(session, write=False) as conn:
        return {owner: int(count) for owner, count in conn.execute(query) if owner is not None}


def any_outstanding(session: Session, run_id: str, *, excluding_owner: str | None = None) -> bool:
    """Whether a unit of the run is without a result: ``pending``, or ``running`` under another
    owner's lease.

    A process that has nothing in flight asks this to know whether to wait: its own ``running``
    units are only waiting for the writer's next commit. One row answers it, so it never counts a
    whole run: two index range reads on (run_id, status, id) that stop at their first row.
    """
    running_elsewhere = and_(UNITS.c.run_id == run_id, UNITS.c.status == "running")
    if excluding_owner is not None:
        running_elsewhere = and_(running_elsewhere, UNITS.c.lease_owner != excluding_owner)
    pending = and_(UNITS.c.run_id == run_id, UNITS.c.status == "pending")
    with transaction(session, write=False) as conn:
        return any(
            conn.execute(select(UNITS.c.id).where(where).limit(1)).first() is not None
            for where in (pending, running_elsewhere)
        )


def count_outstanding(session: Session, run_id: str, *, excluding_owner: str | None = None) -> int:
    """Units of a run without a result: ``pending``, or ``running`` under another owner's lease.

    Counts the run's unfinished units (a read of all of them): for reports and tests; the engine's
    hot path asks ``any_outstanding``.
    """
    running_elsewhere = UNITS.c.status == "running"
    if excluding_owner is not None:
        running_elsewhere = and_(running_elsewhere, UNITS.c.lease_owner != excluding_owner)
    query = (
        select(func.count())
        .select_from(UNITS)
        .where(UNITS.c.run_id == run_id, or_(UNITS.c.status == "pending", running_elsewhere))
    )
    with transaction(session, write=False) as conn:
        return int(conn.execute(query).scalar_one())
