"""``--reuse``'s SQL: give a new run's units copies of earlier samples of the same request, each unit its
own sample, graded afresh against the current job.

What is a sample: an ``ok`` unit of another run with the same ``request_hash`` whose result was got by
sending the request (``reused_from`` NULL): a copy of a sample is the same sample again, not a new one.
Samples are taken oldest first (by unit id, the order runs planned them), so repeat n of a case takes
the n-th sample and keeps it as newer runs add samples of their own.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, func, insert, select, update

from runner.store.records import ReusedSample
from runner.store.repository.sql import ATTEMPTS, CURRENT_RESULT, RESULTS, UNITS, booked_cost_sql
from runner.store.rows import assertions_json, completion_from_results

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Mapping, Sequence
    from datetime import datetime

    from sqlalchemy.engine import Connection, RowMapping

    from runner.store.records import ReuseGrader


def reuse_results(
    conn: Connection, run_id: str, hashes: Collection[str], grade: ReuseGrader, now: datetime
) -> int:
    """Copy samples into the run's unsent units of requests ``hashes``; return how many were copied.

    Each sample goes to at most one unit of the run: the run's units of one request, in unit order
    (for one provider and case: repeat order), take the samples no unit of the run has taken yet, in
    sample order. So planning in batches, or again after an interruption, maps exactly as one pass
    would, and a unit left over when the samples ran out stays ``pending``: it is sent.
    """
    pairs = _pairs(conn, run_id, hashes)
    if not pairs:
        return 0
    copies = _graded_copies(conn, pairs, grade, now)
    if copies:
        conn.execute(insert(RESULTS), copies)
    conn.execute(
        update(UNITS)
        .where(UNITS.c.id == bindparam("target"))
        .values(status="ok", reused_from=bindparam("source"), finished_at=now),
        [{"target": unit_id, "source": source_id} for unit_id, source_id, _ in pairs],
    )
    return len(pairs)


def _pairs(conn: Connection, run_id: str, hashes: Collection[str]) -> list[tuple[int, int, str]]:
    """(unit id, sample unit id, the unit's case) for each unit of the run that gets a sample."""
    if not hashes:
        return []
    samples: dict[str, list[int]] = defaultdict(list)
    for source_id, request_hash in conn.execute(
        select(UNITS.c.id, UNITS.c.request_hash)
        .where(
            UNITS.c.request_hash.in_(list(hashes)),
            UNITS.c.status == "ok",
            UNITS.c.run_id != run_id,
            UNITS.c.reused_from.is_(None),
        )
        .order_by(UNITS.c.id)
    ):
        samples[request_hash].append(source_id)
    taken: set[int] = set()
    waiting: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for row in conn.execute(
        select(
            UNITS.c.id,
            UNITS.c.request_hash,
            UNITS.c.case_id,
            UNITS.c.status,
            UNITS.c.attempts,
            UNITS.c.reused_from,
        )
        .where(UNITS.c.run_id == run_id, UNITS.c.request_hash.in_(list(samples)))
        .order_by(UNITS.c.id)
        # Two processes finishing one run's planning (--join) on PostgreSQL: the second waits here
        # for the first to commit, then reads its copies as taken, so no unit is copied twice.
        # SQLite's BEGIN IMMEDIATE already serializes them.
        .with_for_update()
    ).mappings():
        if row["reused_from"] is not None:
            taken.add(row["reused_from"])
        elif row["status"] == "pending" and row["attempts"] == 0:  # never sent, never reused
            waiting[row["request_hash"]].append((row["id"], row["case_id"]))
    pairs = []
    for request_hash, units in waiting.items():
        free = [source for source in samples[request_hash] if source not in taken]
        pairs += [(unit_id, source, case_id) for (unit_id, case_id), source in zip(units, free, strict=False)]
    return pairs


def _graded_copies(
    conn: Connection, pairs: Sequence[tuple[int, int, str]], grade: ReuseGrader, now: datetime
) -> list[dict[str, Any]]:
    """The ``results`` rows of every pair's sample, re-pointed at its unit, with fresh outcomes.

    The sample's own outcomes are never copied: they answered the expectation of the job it ran in.
    """
    sources = {source for _, source, _ in pairs}
    results: dict[int, list[RowMapping]] = defaultdict(list)
    for row in conn.execute(
        select(RESULTS)
        .where(RESULTS.c.unit_id.in_(list(sources)), CURRENT_RESULT)
        .order_by(RESULTS.c.unit_id, RESULTS.c.choice_index)
    ).mappings():
        results[row["unit_id"]].append(row)
    timings = _timings(conn, (rows[0]["attempt_id"] for rows in results.values()))
    costs = _costs(conn, sources)
    copies = []
    for unit_id, source, case_id in pairs:
        rows = results[source]
        if not rows:  # an ok unit without choices: nothing to copy or to grade
            continue
        ttft_s, duration_s = timings.get(rows[0]["attempt_id"], (None, None))
        sample = ReusedSample(
            case_id=case_id,
            completion=completion_from_results(rows, None),
            ttft_s=ttft_s,
            duration_s=duration_s,
            cost_usd=costs.get(source, 0.0),
        )
        outcomes = assertions_json(grade(sample))
        for position, row in enumerate(rows):
            copy = {key: value for key, value in row.items() if key != "id"}
            copy.update(unit_id=unit_id, attempt_id=None, created_at=now)
            copy["assertions"] = outcomes if position == 0 else None  # on the first choice only
            copies.append(copy)
    return copies


def _timings(
    conn: Connection, attempt_ids: Iterable[int | None]
) -> dict[int, tuple[float | None, float | None]]:
    """(TTFT, duration) of each attempt: the figures a sample's final attempt measured."""
    wanted = [attempt_id for attempt_id in attempt_ids if attempt_id is not None]
    if not wanted:
        return {}
    query = select(ATTEMPTS.c.id, ATTEMPTS.c.first_answer_s, ATTEMPTS.c.end_s).where(
        ATTEMPTS.c.id.in_(wanted)
    )
    return {attempt_id: (ttft, end) for attempt_id, ttft, end in conn.execute(query)}


def _costs(conn: Connection, units: Collection[int]) -> Mapping[int, float]:
    """What each unit's attempts cost (superseded ones aside, as ``finish`` counts a unit's spend)."""
    query = (
        select(ATTEMPTS.c.unit_id, func.sum(booked_cost_sql()))
        .where(ATTEMPTS.c.unit_id.in_(list(units)), ATTEMPTS.c.superseded.is_(False))
        .group_by(ATTEMPTS.c.unit_id)
    )
    return {unit_id: float(total or 0.0) for unit_id, total in conn.execute(query)}
