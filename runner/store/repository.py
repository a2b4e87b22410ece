"""The only module that speaks SQL: runs, the unit queue, attempts and results.

Every function takes a Session, runs exactly one transaction of its own (the session must have none
open), and returns frozen records from ``runner.store.records``, never ORM objects. SQLAlchemy errors
come out as StorageError. Times default to the local UTC clock; pass ``now`` to decide them (tests).

The queue: ``add_units`` stores a run's units as ``pending``; ``claim_units`` leases a batch
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite) -- units whose lease expired
are claimable again; ``renew_leases`` keeps them; ``write_batch`` stores attempts and ends units, a
unit's result rows and its status change in one transaction, only while its lease is still held.
"""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, cast

import orjson
from sqlalchemy import and_, bindparam, func, insert, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from runner.errors import StorageError
from runner.pricing import prices_snapshot
from runner.store.db import map_exceptions, storage_errors
from runner.store.models import Base
from runner.store.records import (
    AttemptWrite,
    BatchOutcome,
    ClaimedUnit,
    RunInfo,
    RunStatus,
    UnitFinish,
    UnitStatus,
    UnitView,
)
from runner.store.rows import (
    attempt_cost,
    attempt_row,
    attempt_view,
    completion_error_from_dict,
    completion_from_results,
    decompress_raw,
    result_rows,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence

    from sqlalchemy.engine import Connection, RowMapping
    from sqlalchemy.orm import Session

    from runner.plan import Unit
    from runner.spec import JobSpec, Price
    from runner.store.records import RawCapturePolicy, WriteItem

RUNS: Final = Base.metadata.tables["runs"]
UNITS: Final = Base.metadata.tables["units"]
ATTEMPTS: Final = Base.metadata.tables["attempts"]
RESULTS: Final = Base.metadata.tables["results"]

RUN_ID_ALPHABET: Final = "23456789abcdefghjkmnpqrstuvwxyz"  # no 0/o, 1/l/i: easy to type back
SECRET_HEADER_WORDS: Final = ("auth", "key", "token", "secret", "cookie", "password")
INSERT_CHUNK: Final = 2000


def _now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)


@contextlib.contextmanager
def _transaction(session: Session, *, write: bool) -> Iterator[Connection]:
    """One transaction on ``session``; a write one takes SQLite's write lock at BEGIN."""
    with map_exceptions(), session.begin():
        options = {"sqlite_begin": "IMMEDIATE"} if write else {}
        yield session.connection(execution_options=options)


def new_run_id() -> str:
    """A short, human-typable run id such as ``r-7f3k2q``."""
    return "r-" + "".join(secrets.choice(RUN_ID_ALPHABET) for _ in range(6))


def job_spec_json(job: JobSpec) -> dict[str, Any]:
    """The job spec as stored: plain JSON, with any secret-looking header value redacted."""
    data = dataclasses.asdict(job)
    for provider in data["providers"]:
        provider["headers"] = {
            name: "<redacted>" if any(w in name.lower() for w in SECRET_HEADER_WORDS) else value
            for name, value in provider["headers"].items()
        }
    return cast("dict[str, Any]", orjson.loads(orjson.dumps(data)))  # tuples -> lists: as stored


def prices_json(prices: Mapping[str, Price | None]) -> dict[str, Any]:
    """A frozen snapshot of each provider's price (USD per million tokens), null when unpriced."""
    return {name: dataclasses.asdict(price) if price else None for name, price in prices.items()}


def _run_info(row: RowMapping) -> RunInfo:
    return RunInfo(
        id=row["id"],
        job_name=row["job_name"],
        job_spec=row["job_spec"],
        job_sha256=row["job_sha256"],
        prices=row["prices"],
        status=row["status"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        host=row["host"],
        runner_version=row["runner_version"],
        tags=tuple(row["tags"]),
    )


def create_run(
    session: Session,
    job: JobSpec,
    *,
    host: str,
    version: str,
    tags: Sequence[str] | None = None,
    prices: Mapping[str, Price | None] | None = None,
    now: datetime | None = None,
) -> RunInfo:
    """Store a new ``running`` run of ``job``; prices default to the job's own, frozen now."""
    # The snapshot resolves defaults (cached_input / cache_write fall back to input) and names the
    # model, so later changes to a job or to the defaults never rewrite this run's costs.
    frozen = prices_snapshot(job) if prices is None else prices_json(prices)
    with _transaction(session, write=True) as conn:
        run_id = new_run_id()
        while conn.execute(select(RUNS.c.id).where(RUNS.c.id == run_id)).first() is not None:
            run_id = new_run_id()
        row = {
            "id": run_id,
            "job_name": job.name,
            "job_spec": job_spec_json(job),
            "job_sha256": job.source_sha256,
            "prices": frozen,
            "status": "running",
            "started_at": _now(now),
            "finished_at": None,
            "host": host,
            "runner_version": version,
            "tags": list(job.tags if tags is None else tags),
        }
        conn.execute(insert(RUNS), row)
        return _run_info(cast("RowMapping", row))


@storage_errors
def get_run(session: Session, ref: str) -> RunInfo:
    """The run ``ref`` names: a run id, or ``latest`` for the most recently started one.

    Raises:
        StorageError: no such run.
    """
    with _transaction(session, write=False) as conn:
        query = select(RUNS)
        if ref == "latest":
            query = query.order_by(RUNS.c.started_at.desc(), RUNS.c.id.desc()).limit(1)
        else:
            query = query.where(RUNS.c.id == ref)
        row = conn.execute(query).mappings().first()
    if row is None:
        raise StorageError("no runs in this database" if ref == "latest" else f"no run {ref!r}")
    return _run_info(row)


def list_runs(session: Session, *, job_name: str | None = None, limit: int = 100) -> list[RunInfo]:
    """The most recent runs (of ``job_name`` if given), newest first."""
    with _transaction(session, write=False) as conn:
        query = select(RUNS).order_by(RUNS.c.started_at.desc(), RUNS.c.id.desc()).limit(limit)
        if job_name is not None:
            query = query.where(RUNS.c.job_name == job_name)
        return [_run_info(row) for row in conn.execute(query).mappings()]


def mark_run(session: Session, run_id: str, status: RunStatus, *, now: datetime | None = None) -> None:
    """Set a run's status; any status but ``running`` also sets ``finished_at``."""
    finished = None if status == "running" else _now(now)
    with _transaction(session, write=True) as conn:
        conn.execute(update(RUNS).where(RUNS.c.id == run_id).values(status=status, finished_at=finished))


def _insert_ignoring_conflicts(conn: Connection, rows: list[dict[str, Any]]) -> None:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    for start in range(0, len(rows), INSERT_CHUNK):
        stmt = dialect.insert(UNITS).on_conflict_do_nothing(index_elements=["run_id", "key"])
        conn.execute(stmt, rows[start : start + INSERT_CHUNK])


def add_units(
    session: Session, run_id: str, units: Iterable[Unit], *, reuse: bool = False, now: datetime | None = None
) -> int:
    """Store units as ``pending``, idempotently by (run, key); return how many are now reused.

    With ``reuse``, a new unit whose ``request_hash`` has an ``ok`` unit in another run gets a copy
    of that unit's results, status ``ok`` and ``reused_from`` set, and is never claimed.
    """
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
        for unit in units
    ]
    with _transaction(session, write=True) as conn:
        _insert_ignoring_conflicts(conn, rows)
        return _reuse_results(conn, run_id, _now(now)) if reuse else 0


def _reuse_results(conn: Connection, run_id: str, now: datetime) -> int:
    source = UNITS.alias("source")
    newest_ok = (
        select(func.max(source.c.id))
        .where(
            source.c.request_hash == UNITS.c.request_hash,
            source.c.status == "ok",
            source.c.run_id != run_id,
        )
        .scalar_subquery()
    )
    candidates = conn.execute(
        select(UNITS.c.id, newest_ok.label("source_id")).where(
            UNITS.c.run_id == run_id, UNITS.c.status == "pending", UNITS.c.attempts == 0
        )
    ).all()
    pairs = [(unit_id, source_id) for unit_id, source_id in candidates if source_id is not None]
    if not pairs:
        return 0
    target_of: dict[int, list[int]] = defaultdict(list)
    for unit_id, source_id in pairs:
        target_of[source_id].append(unit_id)
    copies = []
    for row in conn.execute(select(RESULTS).where(RESULTS.c.unit_id.in_(list(target_of)))).mappings():
        for unit_id in target_of[row["unit_id"]]:
            copy = dict(row)
            del copy["id"]
            copies.append({**copy, "unit_id": unit_id, "attempt_id": None, "created_at": now})
    if copies:
        conn.execute(insert(RESULTS), copies)
    conn.execute(
        update(UNITS)
        .where(UNITS.c.id == bindparam("target"))
        .values(status="ok", reused_from=bindparam("source"), finished_at=now),
        [{"target": unit_id, "source": source_id} for unit_id, source_id in pairs],
    )
    return len(pairs)


def find_reusable_result(
    session: Session, request_hash: str, *, exclude_run: str | None = None
) -> int | None:
    """The id of the newest ``ok`` unit with this exact request (outside ``exclude_run``), if any."""
    with _transaction(session, write=False) as conn:
        query = select(func.max(UNITS.c.id)).where(
            UNITS.c.request_hash == request_hash, UNITS.c.status == "ok"
        )
        if exclude_run is not None:
            query = query.where(UNITS.c.run_id != exclude_run)
        return conn.execute(query).scalar()


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
    moment = _now(now)
    expires = moment + timedelta(seconds=lease_seconds)
    claimable = and_(
        UNITS.c.run_id == run_id,
        or_(
            UNITS.c.status == "pending",
            and_(
                UNITS.c.status == "running",
                UNITS.c.lease_expires_at < moment,
                UNITS.c.lease_owner != owner,
            ),
        ),
    )
    if provider is not None:
        claimable = and_(claimable, UNITS.c.provider == provider)
    chosen = select(UNITS.c.id).where(claimable).order_by(UNITS.c.id).limit(limit)
    chosen = chosen.with_for_update(skip_locked=True)
    stmt = (
        update(UNITS)
        .where(UNITS.c.id.in_(chosen))
        .values(status="running", lease_owner=owner, lease_expires_at=expires)
        .returning(
            UNITS.c.id,
            UNITS.c.key,
            UNITS.c.provider,
            UNITS.c.case_id,
            UNITS.c.repeat,
            UNITS.c.request_hash,
            UNITS.c.attempts,
        )
    )
    with _transaction(session, write=True) as conn:
        rows = conn.execute(stmt).mappings().all()
    claimed = [ClaimedUnit(run_id=run_id, lease_expires_at=expires, **dict(row)) for row in rows]
    return sorted(claimed, key=lambda unit: unit.id)


def renew_leases(
    session: Session, run_id: str, owner: str, *, lease_seconds: float, now: datetime | None = None
) -> int:
    """Extend every lease ``owner`` holds in a run to ``now + lease_seconds``; return how many."""
    expires = _now(now) + timedelta(seconds=lease_seconds)
    with _transaction(session, write=True) as conn:
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
    with _transaction(session, write=True) as conn:
        return conn.execute(query.values(status="pending", lease_owner=None, lease_expires_at=None)).rowcount


def release_expired(session: Session, run_id: str, *, now: datetime | None = None) -> int:
    """Return units whose lease expired to ``pending`` (claiming does this implicitly too)."""
    with _transaction(session, write=True) as conn:
        return conn.execute(
            update(UNITS)
            .where(
                UNITS.c.run_id == run_id,
                UNITS.c.status == "running",
                UNITS.c.lease_expires_at < _now(now),
            )
            .values(status="pending", lease_owner=None, lease_expires_at=None)
        ).rowcount


def resume_run(session: Session, run_id: str) -> int:
    """Reopen a run: every unit without a result (pending or running) becomes pending, leases
    dropped; ``ok`` and ``failed`` units are untouched. Returns how many units will run.

    Only for a run nobody works any more (crashed or interrupted); ``--join`` just claims.
    """
    with _transaction(session, write=True) as conn:
        conn.execute(
            update(UNITS)
            .where(UNITS.c.run_id == run_id, UNITS.c.status.in_(("pending", "running")))
            .values(status="pending", lease_owner=None, lease_expires_at=None)
        )
        conn.execute(update(RUNS).where(RUNS.c.id == run_id).values(status="running", finished_at=None))
        return conn.execute(
            select(func.count()).where(UNITS.c.run_id == run_id, UNITS.c.status == "pending")
        ).scalar_one()


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
    moment = _now(now)
    finishes = [item for item in items if isinstance(item, UnitFinish)]
    with _transaction(session, write=True) as conn:
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
                rows = result_rows(item.unit_id, attempt_id, completion, item.cost_computed, moment)
                if rows and item.assertions is not None:
                    rows[0]["assertions"] = list(item.assertions)  # kept on the first choice's row
                results.extend(rows)
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
    cost = sum(attempt_cost(row["cost_reported"], row["cost_computed"]) for row in attempt_rows)
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


def record_attempt(session: Session, item: AttemptWrite, *, raw_capture: RawCapturePolicy = "failed") -> None:
    """Store one attempt on its own (the writer batches these through ``write_batch``)."""
    write_batch(session, [item], raw_capture=raw_capture)


def finish_unit(
    session: Session,
    item: UnitFinish,
    *,
    raw_capture: RawCapturePolicy = "failed",
    now: datetime | None = None,
) -> bool:
    """End one unit (final attempt, results, status) in one transaction; False if its lease was lost."""
    outcome = write_batch(session, [item], raw_capture=raw_capture, now=now)
    return bool(outcome.finished)


def spend_so_far(session: Session, run_id: str) -> float:
    """USD spent by a run's attempts: reported cost where the provider gave one, else computed."""
    cost = func.coalesce(ATTEMPTS.c.cost_reported, ATTEMPTS.c.cost_computed, 0.0)
    with _transaction(session, write=False) as conn:
        total = conn.execute(
            select(func.coalesce(func.sum(cost), 0.0))
            .select_from(ATTEMPTS.join(UNITS, ATTEMPTS.c.unit_id == UNITS.c.id))
            .where(UNITS.c.run_id == run_id)
        ).scalar_one()
    return float(total)


def unit_counts(session: Session, run_id: str) -> dict[UnitStatus, int]:
    """How many units of a run are in each status (every status present, zero included)."""
    with _transaction(session, write=False) as conn:
        rows = conn.execute(
            select(UNITS.c.status, func.count()).where(UNITS.c.run_id == run_id).group_by(UNITS.c.status)
        ).all()
    counts: dict[UnitStatus, int] = {"pending": 0, "running": 0, "ok": 0, "failed": 0}
    counts.update({cast("UnitStatus", status): count for status, count in rows})
    return counts


def count_outstanding(session: Session, run_id: str, *, excluding_owner: str | None = None) -> int:
    """Units of a run without a result: ``pending``, or ``running`` under another owner's lease.

    A process that has nothing in flight asks this to know whether to wait: its own ``running``
    units are only waiting for the writer's next commit.
    """
    running_elsewhere = UNITS.c.status == "running"
    if excluding_owner is not None:
        running_elsewhere = and_(running_elsewhere, UNITS.c.lease_owner != excluding_owner)
    query = (
        select(func.count())
        .select_from(UNITS)
        .where(UNITS.c.run_id == run_id, or_(UNITS.c.status == "pending", running_elsewhere))
    )
    with _transaction(session, write=False) as conn:
        return int(conn.execute(query).scalar_one())


def raw_capture(session: Session, attempt_id: int) -> bytes | None:
    """The exact bytes an attempt received, if they were captured (for ``runner parse`` replay)."""
    with _transaction(session, write=False) as conn:
        data = conn.execute(select(ATTEMPTS.c.raw_capture).where(ATTEMPTS.c.id == attempt_id)).scalar()
    return decompress_raw(data) if data is not None else None


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredCapture:
    """An attempt's raw body as received, with what is needed to replay it."""

    attempt_id: int
    unit_key: str
    provider: str
    dialect: str | None  # from the run's stored job spec
    body: bytes | None  # None when the attempt's bytes were not captured
    http_status: int | None  # a non-2xx status means the body is an error body, not a stream


def stored_capture(session: Session, attempt_id: int) -> StoredCapture:
    """The captured bytes of attempt ``attempt_id`` and the dialect that reads them."""
    query = (
        select(ATTEMPTS.c.raw_capture, ATTEMPTS.c.http_status, UNITS.c.key, UNITS.c.provider, RUNS.c.job_spec)
        .join(UNITS, UNITS.c.id == ATTEMPTS.c.unit_id)
        .join(RUNS, RUNS.c.id == UNITS.c.run_id)
        .where(ATTEMPTS.c.id == attempt_id)
    )
    with _transaction(session, write=False) as conn:
        row = conn.execute(query).first()
    if row is None:
        raise StorageError(f"no attempt {attempt_id} in this database")
    data, status, key, provider, spec = row
    dialect = next((p["dialect"] for p in spec.get("providers", ()) if p.get("name") == provider), None)
    return StoredCapture(
        attempt_id=attempt_id,
        unit_key=key,
        provider=provider,
        dialect=dialect,
        body=decompress_raw(data) if data is not None else None,
        http_status=status,
    )


def set_assertions(session: Session, unit_id: int, choice_index: int, outcomes: list[Any]) -> None:
    """Store the assertion outcomes of one result choice (written by the reports)."""
    with _transaction(session, write=True) as conn:
        conn.execute(
            update(RESULTS)
            .where(RESULTS.c.unit_id == unit_id, RESULTS.c.choice_index == choice_index)
            .values(assertions=outcomes)
        )


def count_failed_assertions(session: Session, run_id: str) -> int:
    """Results of a run with at least one failed assertion (what makes ``runner run`` exit 1)."""
    query = (
        select(RESULTS.c.assertions)
        .join(UNITS, UNITS.c.id == RESULTS.c.unit_id)
        .where(UNITS.c.run_id == run_id, RESULTS.c.assertions.is_not(None))
    )
    with _transaction(session, write=False) as conn:
        return sum(
            1
            for (outcomes,) in conn.execute(query)
            if any(isinstance(o, dict) and o.get("passed") is False for o in outcomes or ())
        )


def iter_units(session: Session, run_id: str, *, page_size: int = 500) -> Iterator[UnitView]:
    """Every unit of a run in unit order, with its attempts and stored completion.

    Reads page by page, one short transaction per page, so a 100,000-unit run streams in flat memory.
    """
    last_id = 0
    while True:
        with _transaction(session, write=False) as conn:
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
                .where(RESULTS.c.unit_id.in_(ids))
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
        assertions=tuple(row["assertions"] for row in results),
    )
