"""The reads: a run's spend, status counts, failed assertions and reuse counts, its units page by page, and an
attempt's captured bytes."""

from __future__ import annotations

import functools
import json
from collections import defaultdict
from dataclasses import dataclass
from itertools import chain, groupby
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Final, cast

from sqlalchemy import Text, and_, case, func, select
from sqlalchemy import cast as sql_cast

from runner.errors import NotFoundError
from runner.store.escape import unescape_json
from runner.store.lean import LeanAttempt, LeanUnit
from runner.store.records import UnitStatus, UnitView, unit_verdict
from runner.store.repository.sql import (
    ATTEMPTS,
    CURRENT_RESULT,
    JOB_UNIT,
    RESULTS,
    UNITS,
    booked_cost_sql,
    transaction,
)
from runner.store.rows import (
    assertions_from_json,
    decompress_raw,
    unit_view,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from sqlalchemy.engine import Connection, Result, RowMapping
    from sqlalchemy.orm import Session

    from runner.grading.assertions import AssertionOutcome
    from runner.store.records import Verdict


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
            select(UNITS.c.status, func.count())
            .where(UNITS.c.run_id == run_id, JOB_UNIT)
            .group_by(UNITS.c.status)
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
        .where(UNITS.c.run_id == run_id, JOB_UNIT)
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
    ).where(UNITS.c.run_id == run_id, JOB_UNIT)
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
        raise NotFoundError(f"no attempt {attempt_id} in this database")
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
    """Every unit of a run's job in unit order, with its attempts and stored completion. Grading units
    are no units of the job: left out (their verdicts are the graded units' ``judge`` outcomes).

    Reads page by page, one short transaction per page, so a 100,000-unit run streams in flat memory.
    """
    last_id = 0
    while True:
        with transaction(session, write=False) as conn:
            units = (
                conn.execute(
                    select(*_UNIT_COLUMNS)
                    .where(UNITS.c.run_id == run_id, UNITS.c.id > last_id, JOB_UNIT)
                    .order_by(UNITS.c.id)
                    .limit(page_size)
                )
                .mappings()
                .all()
            )
            if not units:
                return
            views = read_views(conn, units)
        last_id = units[-1]["id"]
        yield from views


def stream_units(session: Session, run_id: str, *, batch: int = 2000) -> Iterator[LeanUnit]:
    """Every unit of a run in unit order, lean (``store.lean``): its facts and its attempts' figures, no
    text. The run report scans a run so, then reads the few units it shows in full with ``units_by_id``.

    Read in one transaction through two cursors walked side by side: the units (each with its
    current result's facts) and their attempts each come from one ordered query, fetched ``batch``
    rows at a time (``yield_per``: a server-side cursor on PostgreSQL), so a million-unit run streams
    in flat memory. An attempt is made from its row as it comes (``LeanAttempt`` holds the selected
    columns in order), and a result's assertions are parsed once per distinct JSON text: most units
    of a run share a few.
    """
    # Grading units are no units of the job (and the two cursors must walk the same units).
    of_run = and_(UNITS.c.run_id == run_id, JOB_UNIT)
    attempts_query = (
        select(*(ATTEMPTS.c[_ATTEMPT_COLUMN.get(name, name)] for name in LeanAttempt._fields))
        .join(UNITS, UNITS.c.id == ATTEMPTS.c.unit_id)
        .where(of_run)
        .order_by(ATTEMPTS.c.unit_id, ATTEMPTS.c.number, ATTEMPTS.c.id)
    )
    # Each unit with its current first result's model and assertions (at most one: a partial unique
    # index), the assertions as their stored text (a no-op CAST on SQLite) to parse each distinct one once.
    current = and_(RESULTS.c.unit_id == UNITS.c.id, RESULTS.c.choice_index == 0, CURRENT_RESULT)
    units_query = (
        select(
            UNITS.c.id,
            UNITS.c.key,
            UNITS.c.provider,
            UNITS.c.case_id,
            UNITS.c.repeat,
            UNITS.c.status,
            UNITS.c.attempts,
            UNITS.c.reused_from,
            RESULTS.c.model,
            sql_cast(RESULTS.c.assertions, Text),
        )
        .select_from(UNITS.outerjoin(RESULTS, current))
        .where(of_run)
        .order_by(UNITS.c.id)
    )
    with transaction(session, write=False) as conn:
        judged = _judged(conn.dialect.name == "postgresql")
        new_unit = functools.partial(tuple.__new__, LeanUnit)  # in C, as _attempts_by_unit's
        streaming = conn.execution_options(yield_per=batch)
        attempts = _attempts_by_unit(_rows(streaming.execute(attempts_query)))
        next_attempts = next(attempts, None)
        for unit_id, key, provider, case_id, repeat, status, count, reused_from, model, text in _rows(
            streaming.execute(units_query)
        ):
            mine: tuple[LeanAttempt, ...] = ()
            if next_attempts is not None and next_attempts[0].unit_id == unit_id:
                mine, next_attempts = next_attempts, next(attempts, None)
            assertions, verdict = judged(status, text)
            if model is None:  # UnitView.model: the result's, else the latest attempt that named one
                model = next((a.model for a in reversed(mine) if a.model), None)
            # The fields of LeanUnit in order; view None: a unit shown is read by id (units_by_id).
            yield new_unit(
                (
                    unit_id,
                    key,
                    provider,
                    case_id,
                    repeat,
                    status,
                    count,
                    reused_from,
                    model,
                    assertions,
                    verdict,
                    mine,
                    None,
                )
            )


def stream_answers(
    session: Session, run_id: str, *, batch: int = 2000
) -> Iterator[tuple[int, str, list[Any]]]:
    """``(unit id, text, tool calls)`` of each unit's current first choice (units without a result have
    none), in unit order: what ``runner diff`` compares, read apart from the lean units so a diff of
    big runs holds digests of the answers, not their texts."""
    query = (
        select(RESULTS.c.unit_id, RESULTS.c.text, RESULTS.c.tool_calls)
        .join(UNITS, UNITS.c.id == RESULTS.c.unit_id)
        .where(UNITS.c.run_id == run_id, JOB_UNIT, RESULTS.c.choice_index == 0, CURRENT_RESULT)
        .order_by(RESULTS.c.unit_id)
    )
    with transaction(session, write=False) as conn:
        yield from _rows(conn.execution_options(yield_per=batch).execute(query))


# LeanAttempt's fields named otherwise in the table.
_ATTEMPT_COLUMN: Final = {"ttft_s": "first_answer_s"}


def _rows(result: Result[Any]) -> Iterator[Any]:
    """The rows of a ``yield_per`` result, a batch at a time: iterating the result itself costs a
    ``fetchone`` call per row, a third of the scan's read time over a run's attempts."""
    return chain.from_iterable(result.partitions())


def _attempts_by_unit(rows: Iterator[Any]) -> Iterator[tuple[LeanAttempt, ...]]:
    """Each unit's attempts from rows ordered by unit id (``LeanAttempt``'s columns)."""
    # tuple.__new__ straight, in C: ``_make`` is a Python call per attempt (the columns are the fields).
    make = functools.partial(tuple.__new__, LeanAttempt)
    for _, group in groupby(rows, key=itemgetter(0)):
        yield tuple(map(make, group))


def _judged(
    is_postgresql: bool,
) -> Callable[[UnitStatus, str | None], tuple[tuple[AssertionOutcome, ...], Verdict]]:
    """A unit's assertions and verdict from its status and its result's assertions as stored text,
    cached by both: a run's results share a few texts (an LRU bound keeps a run of distinct ones flat)."""

    @functools.lru_cache(maxsize=4096)
    def judged(status: UnitStatus, text: str | None) -> tuple[tuple[AssertionOutcome, ...], Verdict]:
        data = json.loads(text) if text is not None else None
        if is_postgresql and data is not None:  # models.ProviderJSON: strings escaped on PostgreSQL
            data = unescape_json(data)
        assertions = assertions_from_json(data)
        return assertions, unit_verdict(status, assertions)

    return judged


def units_by_id(session: Session, run_id: str, ids: Sequence[int], *, page_size: int = 500) -> list[UnitView]:
    """The units ``ids`` of a run in full (every text), in unit order; ids of no unit of it are skipped."""
    wanted = sorted(set(ids))
    views: list[UnitView] = []
    for start in range(0, len(wanted), page_size):
        chunk = wanted[start : start + page_size]
        with transaction(session, write=False) as conn:
            # By id alone, then the run checked here: with ``run_id`` in the WHERE, SQLite walked the
            # run's index (every unit of it) for each page instead of looking the ids up.
            rows = conn.execute(select(*_UNIT_COLUMNS).where(UNITS.c.id.in_(chunk)).order_by(UNITS.c.id))
            units = [row for row in rows.mappings() if row["run_id"] == run_id]
            views += read_views(conn, units)
    return views


_UNIT_COLUMNS = (
    UNITS.c.id,
    UNITS.c.run_id,
    UNITS.c.key,
    UNITS.c.provider,
    UNITS.c.case_id,
    UNITS.c.repeat,
    UNITS.c.request_hash,
    UNITS.c.status,
    UNITS.c.attempts,
    UNITS.c.reused_from,
    UNITS.c.finished_at,
)


def read_views(conn: Connection, units: Sequence[RowMapping]) -> list[UnitView]:
    """The views of ``units`` (rows of ``_UNIT_COLUMNS``): their attempts and results in two queries."""
    ids = [row["id"] for row in units]
    attempts = defaultdict(list)
    # The capture and its read times stay in the database: a view says only whether there is one.
    columns = [c for c in ATTEMPTS.c if c.name not in ("raw_capture", "raw_reads")]
    has_raw = ATTEMPTS.c.raw_capture.is_not(None).label("has_raw_capture")
    # Plain dicts (``Row._asdict``, in C) read far faster by name than RowMappings: this runs per attempt.
    for row in conn.execute(
        select(*columns, has_raw)
        .where(ATTEMPTS.c.unit_id.in_(ids))
        .order_by(ATTEMPTS.c.unit_id, ATTEMPTS.c.number, ATTEMPTS.c.id)
    ).all():
        attempt = row._asdict()
        attempts[attempt["unit_id"]].append(attempt)
    results = defaultdict(list)
    for row in conn.execute(
        select(RESULTS)
        .where(RESULTS.c.unit_id.in_(ids), CURRENT_RESULT)
        .order_by(RESULTS.c.unit_id, RESULTS.c.choice_index)
    ).all():
        result = row._asdict()
        results[result["unit_id"]].append(result)
    return [unit_view(unit, attempts[unit["id"]], results[unit["id"]]) for unit in units]
