"""The reads: a run's spend, status counts, failed assertions and reuse counts, its units page by page, and an
attempt's captured bytes."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from sqlalchemy import case, func, select

from runner.errors import StorageError
from runner.store.records import UnitStatus, UnitView, unit_verdict
from runner.store.repository.sql import ATTEMPTS, CURRENT_RESULT, RESULTS, UNITS, booked_cost_sql, transaction
from runner.store.rows import (
    assertions_from_json,
    attempt_view,
    completion_error_from_dict,
    completion_from_results,
    decompress_raw,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from sqlalchemy.engine import RowMapping
    from sqlalchemy.orm import Session


def spend_so_far(session: Session, run_id: str) -> float:
    """USD spent by a run's attempts, each booked by ``runner.pricing.booked_cost``."""
    with transaction(session, write=False) as conn:
        total = conn.execute(
            select(func.coalesce(func.sum(booked_cost_sql()), 0.0))
            .select_from(ATTEMPTS.join(UNITS, ATTEMPTS.c.unit_id == UNITS.c.id))
            .where(UNITS.c.run_id == run_id)
        ).scalar_one()
    return float(total)


def unit_counts(session: Session, run_id: str) -> dict[UnitStatus, int]:
    """How many units of a run are in each status (every status present, zero included)."""
    with transaction(session, write=False) as conn:
        rows = conn.execute(
            select(UNITS.c.status, func.count()).where(UNITS.c.run_id == run_id).group_by(UNITS.c.status)
        ).all()
    counts: dict[UnitStatus, int] = {"pending": 0, "running": 0, "ok": 0, "failed": 0}
    counts.update({cast("UnitStatus", status): count for status, count in rows})
    return counts


def counts_by_owner(session: Session, run_id: str) -> dict[str, dict[UnitStatus, int]]:
    """A run's units per lease owner (``host:pid:random``) and status: the processes working it
    (``running``) and those that finished units (``ok`` / ``failed`` keep their finisher's name).
    Units no process holds (``pending``, reused or finished before owners were kept) come under ""."""
    query = (
        select(UNITS.c.lease_owner, UNITS.c.status, func.count())
        .where(UNITS.c.run_id == run_id)
        .group_by(UNITS.c.lease_owner, UNITS.c.status)
    )
    with transaction(session, write=False) as conn:
        rows = conn.execute(query).all()
    owners: dict[str, dict[UnitStatus, int]] = {}
    for owner, status, count in rows:
        counts = owners.setdefault(owner or "", {"pending": 0, "running": 0, "ok": 0, "failed": 0})
        counts[cast("UnitStatus", status)] += int(count)
    return owners


def reuse_counts(session: Session, run_id: str) -> tuple[int, int]:
    """(reused, sent): a run's units given a copy of an earlier sample (``--reuse``), and its units
    that sent at least one request (an attempt that counts). A unit not yet worked is neither."""
    query = select(
        func.count(UNITS.c.reused_from),
        func.coalesce(func.sum(case((UNITS.c.attempts > 0, 1), else_=0)), 0),
    ).where(UNITS.c.run_id == run_id)
    with transaction(session, write=False) as conn:
        reused, sent = conn.execute(query).one()
    return int(reused), int(sent)


def raw_capture(session: Session, attempt_id: int) -> bytes | None:
    """The exact bytes an attempt received, if they were captured (for ``runner parse`` replay)."""
    with transaction(session, write=False) as conn:
        data = conn.execute(select(ATTEMPTS.c.raw_capture).where(ATTEMPTS.c.id == attempt_id)).scalar()
    return decompress_raw(data) if data is not None else None


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredCapture:
    """An attempt's raw body as received, with what is needed to replay it.

    The dialect that reads it is the run's business (its job spec), not the store's: the caller
    looks it up from ``run_id`` and ``provider``.
    """

    attempt_id: int
    run_id: str
    unit_key: str
    provider: str
    body: bytes | None  # None when the attempt's bytes were not captured
    http_status: int | None  # a non-2xx status means the body is an error body, not a stream


def stored_capture(session: Session, attempt_id: int) -> StoredCapture:
    """The captured bytes of attempt ``attempt_id`` and the unit they belong to."""
    query = (
        select(ATTEMPTS.c.raw_capture, ATTEMPTS.c.http_status, UNITS.c.run_id, UNITS.c.key, UNITS.c.provider)
        .join(UNITS, UNITS.c.id == ATTEMPTS.c.unit_id)
        .where(ATTEMPTS.c.id == attempt_id)
    )
    with transaction(session, write=False) as conn:
        row = conn.execute(query).mappings().first()
    if row is None:
        raise StorageError(f"no attempt {attempt_id} in this database")
    data = row["raw_capture"]
    return StoredCapture(
        attempt_id=attempt_id,
        run_id=row["run_id"],
        unit_key=row["key"],
        provider=row["provider"],
        body=decompress_raw(data) if data is not None else None,
        http_status=row["http_status"],
    )


def count_failed_assertions(session: Session, run_id: str) -> int:
    """Units of a run whose verdict is ``failed assertions`` (``records.unit_verdict``): ok units with
    at least one failed assertion. A failed unit's stored outcomes (an older runner graded partial
    output) are not evaluated and do not count."""
    query = (
        select(UNITS.c.status, RESULTS.c.assertions)
        .join(UNITS, UNITS.c.id == RESULTS.c.unit_id)
        .where(UNITS.c.run_id == run_id, UNITS.c.status == "ok", RESULTS.c.assertions.is_not(None))
        .where(CURRENT_RESULT)
    )
    with transaction(session, write=False) as conn:
        stored = conn.execute(query).all()
    return sum(
        1
        for status, data in stored
        if unit_verdict(status, assertions_from_json(data)) == "failed assertions"
    )


def graded_verdicts(session: Session, run_id: str) -> list[tuple[str, str, bool]]:
    """``(case_id, provider, passed)`` of every graded unit of a run (ok, with stored outcomes), in unit
    order: what pass rates over repeats are counted from (``runner.grading.rates``)."""
    query = (
        select(UNITS.c.case_id, UNITS.c.provider, RESULTS.c.assertions)
        .join(UNITS, UNITS.c.id == RESULTS.c.unit_id)
        .where(UNITS.c.run_id == run_id, UNITS.c.status == "ok", RESULTS.c.assertions.is_not(None))
        .where(CURRENT_RESULT)
        .order_by(UNITS.c.id)
    )
    with transaction(session, write=False) as conn:
        stored = conn.execute(query).all()
    return [
        (case_id, provider, unit_verdict("ok", assertions_from_json(data)) == "passed")
        for case_id, provider, data in stored
    ]


def iter_units(session: Session, run_id: str, *, page_size: int = 500) -> Iterator[UnitView]:
    """Every unit of a run in unit order, with its attempts and stored completion.

    Reads page by page, one short transaction per page, so a 100,000-unit run streams in flat memory.
    """
    last_id = 0
    while True:
        with transaction(session, write=False) as conn:
            units = (
                conn.execute(
                    select(UNITS)
                    .where(UNITS.c.run_id == run_id, UNITS.c.id > last_id)
                    .order_by(UNITS.c.id)
                    .limit(page_size)
                )
                .mappings()
                .all()
            )
            if not units:
                return
            ids = [row["id"] for row in units]
            attempts = defaultdict(list)
            columns = [c for c in ATTEMPTS.c if c.name != "raw_capture"]
            has_raw = ATTEMPTS.c.raw_capture.is_not(None).label("has_raw_capture")
            for row in conn.execute(
                select(*columns, has_raw)
                .where(ATTEMPTS.c.unit_id.in_(ids))
                .order_by(ATTEMPTS.c.unit_id, ATTEMPTS.c.number, ATTEMPTS.c.id)
            ).mappings():
                attempts[row["unit_id"]].append(row)
            results = defaultdict(list)
            for row in conn.execute(
                select(RESULTS)
                .where(RESULTS.c.unit_id.in_(ids), CURRENT_RESULT)
                .order_by(RESULTS.c.unit_id, RESULTS.c.choice_index)
            ).mappings():
                results[row["unit_id"]].append(row)
        last_id = ids[-1]
        for unit in units:
            yield _unit_view(unit, attempts[unit["id"]], results[unit["id"]])


def _unit_view(unit: RowMapping, attempts: Sequence[RowMapping], results: Sequence[RowMapping]) -> UnitView:
    final_attempt = (
        next((row for row in attempts if row["id"] == results[0]["attempt_id"]), None) if results else None
    )
    stream_error = completion_error_from_dict(final_attempt["stream_error"]) if final_attempt else None
    return UnitView(
        id=unit["id"],
        run_id=unit["run_id"],
        key=unit["key"],
        provider=unit["provider"],
        case_id=unit["case_id"],
        repeat=unit["repeat"],
        request_hash=unit["request_hash"],
        status=unit["status"],
        attempt_count=unit["attempts"],
        reused_from=unit["reused_from"],
        finished_at=unit["finished_at"],
        attempts=tuple(attempt_view(row) for row in attempts),
        completion=completion_from_results(results, stream_error),
        cost_reported=results[0]["cost_reported"] if results else None,
        cost_computed=results[0]["cost_computed"] if results else None,
        assertions=assertions_from_json(results[0]["assertions"]) if results else (),
    )
