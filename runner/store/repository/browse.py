"""The inspect reads (``runner runs``, ``runner show``, the viewer): runs with their unit counts and cost,
a run's per-provider tallies, one unit by key, and an attempt's capture with its read times.

Counts are aggregated in SQL (``GROUP BY``), never by loading units: a list of many runs, or a
100,000-unit run, costs a few grouped scans of the indexes, not one object per unit.
"""

from __future__ import annotations

import difflib
from collections import defaultdict
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Final, cast

from sqlalchemy import bindparam, case, false, func, select, text, true

from runner.errors import NotFoundError, StorageError
from runner.store.repository.runs import get_run, list_runs
from runner.store.repository.sql import (
    ATTEMPTS,
    CURRENT_RESULT,
    JOB_UNIT,
    OUTCOME_FAILED,
    RESULTS,
    UNITS,
    booked_cost_sql,
    transaction,
)
from runner.store.rows import decode_reads, decompress_raw, unit_view

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from sqlalchemy.engine import Connection
    from sqlalchemy.orm import Session

    from runner.store.records import RunInfo, UnitView

SIMILAR_KEYS_READ: Final = 5000

# Per run and provider, over ok units' assertion outcomes (a JSON list on the unit's first result row,
# walked with each backend's own JSON function): units with a failed one, checks passed, checks in all.
_CHECKS_SQL: Final = {
    "sqlite": f"""
        SELECT u.run_id, u.provider,
          COUNT(DISTINCT CASE WHEN {OUTCOME_FAILED["sqlite"]} THEN u.id END),
          SUM(CASE WHEN json_extract(o.value, '$.passed') = 1 THEN 1 ELSE 0 END),
          SUM(CASE WHEN json_extract(o.value, '$.pending') IS NULL THEN 1 ELSE 0 END)
        FROM units u JOIN results r ON r.unit_id = u.id AND r.replaced_at IS NULL, json_each(r.assertions) o
        WHERE u.run_id IN :run_ids AND u.status = 'ok' AND r.assertions IS NOT NULL
        GROUP BY u.run_id, u.provider""",
    "postgresql": f"""
        SELECT u.run_id, u.provider,
          COUNT(DISTINCT CASE WHEN {OUTCOME_FAILED["postgresql"]} THEN u.id END),
          SUM(CASE WHEN o->>'passed' = 'true' THEN 1 ELSE 0 END),
          SUM(CASE WHEN o->>'pending' IS NULL THEN 1 ELSE 0 END)
        FROM units u JOIN results r ON r.unit_id = u.id AND r.replaced_at IS NULL
          CROSS JOIN LATERAL json_array_elements(
            CASE WHEN json_typeof(r.assertions) = 'array' THEN r.assertions ELSE '[]'::json END) o
        WHERE u.run_id IN :run_ids AND u.status = 'ok' AND r.assertions IS NOT NULL
        GROUP BY u.run_id, u.provider""",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class UnitTally:
    """Unit and attempt counts, tokens and cost of a run or of one provider in it (all from SQL).

    ``ok`` counts every unit that ended with a result; ``failed_assertions`` the part of them that
    failed a check, so ``ok - failed_assertions`` is the ``passed`` verdict (``records.unit_verdict``).
    """

    units: int = 0
    ok: int = 0
    failed_assertions: int = 0
    checks_passed: int = 0  # assertion outcomes of ok units that passed (one per expect key of a unit)
    # Assertion outcomes of ok units, judges still grading left out (neither passed nor failed yet);
    # units without a result are not evaluated.
    checks_total: int = 0
    failed: int = 0  # units without a result
    not_done: int = 0  # pending or running
    attempts: int = 0  # every attempt stored, superseded ones included
    failed_attempts: int = 0  # attempts with an error (superseded ones included)
    retries: int = 0  # attempts after each unit's first (superseded ones not counted)
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float = 0.0  # every attempt's booked cost
    wasted_usd: float = 0.0  # the part spent on failed or superseded attempts
    error_kinds: Mapping[str, int] = field(default_factory=dict)  # attempts by error kind, most first

    @property
    def passed(self) -> int:
        return self.ok - self.failed_assertions


_SUMMED: Final = tuple(f.name for f in fields(UnitTally) if f.name != "error_kinds")


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRow:
    """One run with its units' verdict counts and its cost: a line of ``runner runs``."""

    run: RunInfo
    tally: UnitTally


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderTimings:
    """One provider's successful, current attempts' TTFT and duration (seconds), for percentiles."""

    ttft_s: tuple[float, ...] = ()
    duration_s: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptBytes:
    """An attempt's captured body and the arrival of each read in it (``attempts.raw_reads``)."""

    attempt_id: int
    number: int
    http_status: int | None
    body: bytes | None  # None: not captured
    reads: tuple[tuple[int, float], ...] | None  # (offset into body, seconds after start); None: not kept


def run_rows(session: Session, *, job_name: str | None = None, limit: int = 20) -> list[RunRow]:
    """The ``limit`` most recent runs (of ``job_name`` if given), newest first, each with its tally."""
    infos = list_runs(session, job_name=job_name, limit=limit)
    tallies = _tallies(session, [info.id for info in infos], by_provider=False)
    return [RunRow(run=info, tally=tallies.get((info.id, ""), UnitTally())) for info in infos]


def run_tally(session: Session, run_id: str) -> UnitTally:
    """Run ``run_id``'s tally over all its providers."""
    return _tallies(session, [run_id], by_provider=False).get((run_id, ""), UnitTally())


def combined(tallies: Iterable[UnitTally]) -> UnitTally:
    """The tally of several (a run's, from its providers'): counts and costs added, kinds merged."""
    total: dict[str, Any] = defaultdict(int)
    kinds: dict[str, int] = defaultdict(int)
    for tally in tallies:
        for name in _SUMMED:
            total[name] += getattr(tally, name)
        for kind, n in tally.error_kinds.items():
            kinds[kind] += n
    return UnitTally(
        **cast("dict[str, Any]", {name: _number(name, value) for name, value in total.items()}),
        error_kinds=_most_first(kinds),
    )


def provider_tallies(session: Session, run_id: str) -> dict[str, UnitTally]:
    """Run ``run_id``'s tally per provider, in provider name order."""
    tallies = _tallies(session, [run_id], by_provider=True)
    return {provider: tallies[(run, provider)] for run, provider in sorted(tallies)}


def provider_timings(session: Session, run_id: str) -> dict[str, ProviderTimings]:
    """TTFT and duration of each provider's successful attempts that count (not superseded)."""
    query = (
        select(UNITS.c.provider, ATTEMPTS.c.first_answer_s, ATTEMPTS.c.end_s)
        .join(UNITS, UNITS.c.id == ATTEMPTS.c.unit_id)
        .where(UNITS.c.run_id == run_id, ATTEMPTS.c.error_kind.is_(None), ATTEMPTS.c.superseded == false())
    )
    ttft: dict[str, list[float]] = defaultdict(list)
    duration: dict[str, list[float]] = defaultdict(list)
    with transaction(session, write=False) as conn:
        for provider, first_answer_s, end_s in conn.execute(query):
            if first_answer_s is not None:
                ttft[provider].append(first_answer_s)
            if end_s is not None:
                duration[provider].append(end_s)
    return {
        name: ProviderTimings(ttft_s=tuple(ttft[name]), duration_s=tuple(duration[name]))
        for name in sorted({*ttft, *duration})
    }


def find_unit(session: Session, run_id: str, key: str) -> UnitView | None:
    """Unit ``key`` (``provider/case/repeat``) of run ``run_id`` with its attempts and result, or None."""
    with transaction(session, write=False) as conn:
        unit = (
            conn.execute(select(UNITS).where(UNITS.c.run_id == run_id, UNITS.c.key == key)).mappings().first()
        )
        if unit is None:
            return None
        columns = [c for c in ATTEMPTS.c if c.name not in ("raw_capture", "raw_reads")]
        attempts = (
            conn.execute(
                select(*columns, ATTEMPTS.c.raw_capture.is_not(None).label("has_raw_capture"))
                .where(ATTEMPTS.c.unit_id == unit["id"])
                .order_by(ATTEMPTS.c.number, ATTEMPTS.c.id)
            )
            .mappings()
            .all()
        )
        results = (
            conn.execute(
                select(RESULTS)
                .where(RESULTS.c.unit_id == unit["id"], CURRENT_RESULT)
                .order_by(RESULTS.c.choice_index)
            )
            .mappings()
            .all()
        )
    return unit_view(unit, attempts, results)


def similar_unit_keys(session: Session, run_id: str, key: str, *, limit: int = 3) -> list[str]:
    """Up to ``limit`` keys of run ``run_id`` closest to ``key`` (``difflib``'s ratio), among the keys
    of its provider, or of the whole run when the provider has none: the hint when a key names no unit.
    Reads at most ``SIMILAR_KEYS_READ`` keys, so a typo in a 1,000,000-unit run stays cheap."""
    provider = key.partition("/")[0]
    with transaction(session, write=False) as conn:
        candidates: list[str] = []
        for condition in (UNITS.c.provider == provider, true()):
            query = select(UNITS.c.key).where(UNITS.c.run_id == run_id, condition).order_by(UNITS.c.id)
            candidates = list(conn.execute(query.limit(SIMILAR_KEYS_READ)).scalars())
            if candidates:
                break
    return difflib.get_close_matches(key, candidates, n=limit, cutoff=0.0)


def similar_run_ids(session: Session, ref: str, *, limit: int = 3) -> list[str]:
    """Up to ``limit`` run ids sharing the longest prefix with ``ref`` (newest first among equals)."""
    ids = [info.id for info in list_runs(session, limit=1000)]  # a typo is usually in a recent run's id
    return sorted(ids, key=lambda i: -_common_prefix(i, ref))[:limit]


def attempt_bytes(session: Session, unit_id: int, number: int | None = None) -> list[AttemptBytes]:
    """The captures of unit ``unit_id``'s attempts (only attempt ``number`` if given), in order."""
    query = (
        select(
            ATTEMPTS.c.id,
            ATTEMPTS.c.number,
            ATTEMPTS.c.http_status,
            ATTEMPTS.c.raw_capture,
            ATTEMPTS.c.raw_reads,
        )
        .where(ATTEMPTS.c.unit_id == unit_id)
        .order_by(ATTEMPTS.c.number, ATTEMPTS.c.id)
    )
    if number is not None:
        query = query.where(ATTEMPTS.c.number == number)
    with transaction(session, write=False) as conn:
        rows = conn.execute(query).all()
    return [
        AttemptBytes(
            attempt_id=attempt_id,
            number=n,
            http_status=status,
            body=decompress_raw(raw) if raw is not None else None,
            reads=decode_reads(reads) if reads is not None else None,
        )
        for attempt_id, n, status, raw, reads in rows
    ]


def get_run_or_hint(session: Session, ref: str) -> RunInfo:
    """The run ``ref`` names (an id or ``latest``); a NotFoundError names the closest ids when none does."""
    try:
        return get_run(session, ref)
    except NotFoundError:
        if ref == "latest":
            raise
        near = similar_run_ids(session, ref)
        hint = f"; closest: {', '.join(near)}" if near else "; this database has no runs"
        raise NotFoundError(f"no run {ref!r}{hint} (list them with: runner runs)") from None


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _tallies(
    session: Session, run_ids: Sequence[str], *, by_provider: bool
) -> dict[tuple[str, str], UnitTally]:
    """Tallies keyed by ``(run id, provider)``, the provider ``""`` unless ``by_provider``."""
    if not run_ids:
        return {}
    parts: dict[tuple[str, str], dict[str, Any]] = defaultdict(lambda: defaultdict(int))
    kinds: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    with transaction(session, write=False) as conn:
        group = [UNITS.c.run_id, UNITS.c.provider] if by_provider else [UNITS.c.run_id]

        def key(row: Any) -> tuple[str, str]:
            return (row[0], row[1] if by_provider else "")

        for row in conn.execute(_unit_counts(group, run_ids)):
            _add(parts[key(row)], row._mapping)
        # One scan of the attempts, grouped by error kind too: the sums add up, the kinds are kept.
        for row in conn.execute(_attempt_sums(group, run_ids)):
            sums = row._mapping
            _add(parts[key(row)], {k: v for k, v in sums.items() if k != "error_kind"})
            if sums["error_kind"] is not None:
                kinds[key(row)][sums["error_kind"]] = int(sums["attempts"])
        for run_id, provider, failed, passed, total in _checks(conn, run_ids):
            checks = parts[(run_id, provider if by_provider else "")]
            checks["failed_assertions"] += failed
            checks["checks_passed"] += passed
            checks["checks_total"] += total
    return {
        k: UnitTally(
            **cast("dict[str, Any]", {name: _number(name, value) for name, value in values.items()}),
            error_kinds=_most_first(kinds[k]),
        )
        for k, values in parts.items()
    }


def _unit_counts(group: list[Any], run_ids: Sequence[str]) -> Any:
    status = UNITS.c.status
    return (
        select(
            *group,
            func.count().label("units"),
            func.sum(case((status == "ok", 1), else_=0)).label("ok"),
            func.sum(case((status == "failed", 1), else_=0)).label("failed"),
            func.sum(case((status.in_(("pending", "running")), 1), else_=0)).label("not_done"),
            func.sum(case((UNITS.c.attempts > 1, UNITS.c.attempts - 1), else_=0)).label("retries"),
        )
        .where(UNITS.c.run_id.in_(run_ids), JOB_UNIT)  # grading units are no units of the job
        .group_by(*group)
    )


def _attempt_sums(group: list[Any], run_ids: Sequence[str]) -> Any:
    wasted = (ATTEMPTS.c.error_kind.is_not(None)) | (ATTEMPTS.c.superseded == true())
    return (
        select(
            *group,
            ATTEMPTS.c.error_kind,
            func.count().label("attempts"),
            func.sum(case((ATTEMPTS.c.error_kind.is_not(None), 1), else_=0)).label("failed_attempts"),
            func.sum(func.coalesce(ATTEMPTS.c.input_tokens, 0)).label("input_tokens"),
            func.sum(func.coalesce(ATTEMPTS.c.output_tokens, 0)).label("output_tokens"),
            func.sum(func.coalesce(ATTEMPTS.c.cached_input_tokens, 0)).label("cached_input_tokens"),
            func.sum(func.coalesce(ATTEMPTS.c.reasoning_tokens, 0)).label("reasoning_tokens"),
            func.sum(booked_cost_sql()).label("cost_usd"),
            func.sum(case((wasted, booked_cost_sql()), else_=0.0)).label("wasted_usd"),
        )
        .join(UNITS, UNITS.c.id == ATTEMPTS.c.unit_id)
        .where(UNITS.c.run_id.in_(run_ids))
        .group_by(*group, ATTEMPTS.c.error_kind)
    )


def _checks(conn: Connection, run_ids: Sequence[str]) -> Iterable[tuple[str, str, int, int, int]]:
    sql = _CHECKS_SQL.get(conn.dialect.name)
    if sql is None:
        raise StorageError(f"runner does not know how to read assertions on {conn.dialect.name}")
    statement = text(sql).bindparams(bindparam("run_ids", expanding=True))
    rows = conn.execute(statement, {"run_ids": list(run_ids)})
    return [(r[0], r[1], int(r[2]), int(r[3] or 0), int(r[4] or 0)) for r in rows]


def _most_first(kinds: Mapping[str, int]) -> dict[str, int]:
    return dict(sorted(kinds.items(), key=lambda item: (-item[1], item[0])))


def _add(target: dict[str, Any], row: Mapping[Any, Any]) -> None:
    for name, value in row.items():
        if name not in ("run_id", "provider") and value is not None:
            target[name] += value


def _number(name: str, value: Any) -> int | float:
    return float(value) if name.endswith("_usd") else int(value)
