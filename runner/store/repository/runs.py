"""Runs: create one (id, redacted job spec, frozen prices), look one up, list them, mark their status
(and the worst loop lag a process saw)."""

from __future__ import annotations

import dataclasses
import secrets
from typing import TYPE_CHECKING, Any, Final, Literal, cast

import orjson
from sqlalchemy import insert, select, update

from runner.errors import NotFoundError
from runner.model import LoopLag
from runner.pricing import prices_snapshot
from runner.spec import job_to_json
from runner.store.records import RunInfo, RunStatus
from runner.store.repository.sql import RUNS, now_or_utc, transaction

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from datetime import datetime

    from sqlalchemy.engine import RowMapping
    from sqlalchemy.orm import Session

    from runner.spec import JobSpec, Price

RUN_ID_ALPHABET: Final = "23456789abcdefghjkmnpqrstuvwxyz"  # no 0/o, 1/l/i: easy to type back
SECRET_HEADER_WORDS: Final = ("auth", "key", "token", "secret", "cookie", "password")


def new_run_id() -> str:
    """A short, human-typable run id such as ``r-7f3k2q``."""
    return "r-" + "".join(secrets.choice(RUN_ID_ALPHABET) for _ in range(6))


def job_spec_json(job: JobSpec) -> dict[str, Any]:
    """The job spec as stored: plain JSON, with any secret-looking header value redacted."""
    data = job_to_json(job)
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
        loop_lag=LoopLag.from_json(row.get("loop_lag")),
    )


def create_run(
    session: Session,
    job: JobSpec,
    *,
    host: str,
    version: str,
    tags: Sequence[str] | None = None,
    prices: Mapping[str, Price | None] | None = None,
    status: Literal["planning", "running"] = "running",
    now: datetime | None = None,
) -> RunInfo:
    """Store a new run of ``job``; prices default to the job's own, frozen now.

    ``runner run`` creates it ``planning`` and ``add_units(..., planned=True)`` makes it ``running``
    with its last units; ``running`` at once suits a run whose units are stored some other way.
    """
    # The snapshot resolves defaults (cached_input / cache_write fall back to input) and names the
    # model, so later changes to a job or to the defaults never rewrite this run's costs.
    frozen = prices_snapshot(job) if prices is None else prices_json(prices)
    with transaction(session, write=True) as conn:
        run_id = new_run_id()
        while conn.execute(select(RUNS.c.id).where(RUNS.c.id == run_id)).first() is not None:
            run_id = new_run_id()
        row = {
            "id": run_id,
            "job_name": job.name,
            "job_spec": job_spec_json(job),
            "job_sha256": job.source_sha256,
            "prices": frozen,
            "status": status,
            "started_at": now_or_utc(now),
            "finished_at": None,
            "host": host,
            "runner_version": version,
            "tags": list(job.tags if tags is None else tags),
        }
        conn.execute(insert(RUNS), row)
        return _run_info(cast("RowMapping", row))


def get_run(session: Session, ref: str) -> RunInfo:
    """The run ``ref`` names: a run id, or ``latest`` for the most recently started one.

    Raises:
        NotFoundError: no such run.
    """
    with transaction(session, write=False) as conn:
        query = select(RUNS)
        if ref == "latest":
            query = query.order_by(RUNS.c.started_at.desc(), RUNS.c.id.desc()).limit(1)
        else:
            query = query.where(RUNS.c.id == ref)
        row = conn.execute(query).mappings().first()
    if row is None:
        raise NotFoundError("no runs in this database" if ref == "latest" else f"no run {ref!r}")
    return _run_info(row)


def list_runs(session: Session, *, job_name: str | None = None, limit: int = 100) -> list[RunInfo]:
    """The most recent runs (of ``job_name`` if given), newest first."""
    with transaction(session, write=False) as conn:
        query = select(RUNS).order_by(RUNS.c.started_at.desc(), RUNS.c.id.desc()).limit(limit)
        if job_name is not None:
            query = query.where(RUNS.c.job_name == job_name)
        return [_run_info(row) for row in conn.execute(query).mappings()]


def mark_run(
    session: Session,
    run_id: str,
    status: RunStatus,
    *,
    now: datetime | None = None,
    loop_lag: LoopLag | None = None,
) -> None:
    """Set a run's status; any status but ``running`` also sets ``finished_at``.

    ``loop_lag`` is this process's; the run keeps the worst by p99 of it and the one stored (a
    --join or --resume process must not hide an earlier process's lag, nor its own). Read under a
    row lock (SQLite's write transaction already holds the file's), so two processes finishing at
    once cannot both read the old value and the lower one win.
    """
    finished = None if status == "running" else now_or_utc(now)
    values: dict[str, Any] = {"status": status, "finished_at": finished}
    with transaction(session, write=True) as conn:
        if loop_lag is not None:
            query = select(RUNS.c.loop_lag).where(RUNS.c.id == run_id).with_for_update()
            stored = LoopLag.from_json(conn.execute(query).scalar())
            values["loop_lag"] = loop_lag.worst(stored).to_json()
        conn.execute(update(RUNS).where(RUNS.c.id == run_id).values(**values))
