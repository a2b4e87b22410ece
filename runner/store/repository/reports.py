"""The reports' own reads: every attempt's tokens and cost with its run's grouping fields.

Units and runs are read through ``reads.iter_units`` and ``runs.get_run``; this module holds only what
``runner cost`` needs across runs, without the answers' texts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from runner.spec import merge_params
from runner.store.records import AttemptCost
from runner.store.repository.sql import ATTEMPTS, RUNS, UNITS, transaction

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from datetime import datetime

    from sqlalchemy.engine import Connection
    from sqlalchemy.orm import Session

_RUNS_PER_QUERY = 500  # stored specs read per query (an IN list that every backend takes)


def attempt_costs(
    session: Session, *, since: datetime | None = None, until: datetime | None = None
) -> list[AttemptCost]:
    """Every attempt that started in ``[since, until)`` with its cost fields, oldest first."""
    query = (
        select(
            RUNS.c.id.label("run_id"),
            RUNS.c.job_name,
            RUNS.c.tags,
            UNITS.c.provider,
            UNITS.c.case_id,
            ATTEMPTS.c.model,
            ATTEMPTS.c.started_at,
            ATTEMPTS.c.error_kind,
            ATTEMPTS.c.superseded,
            ATTEMPTS.c.input_tokens,
            ATTEMPTS.c.output_tokens,
            ATTEMPTS.c.reasoning_tokens,
            ATTEMPTS.c.cached_input_tokens,
            ATTEMPTS.c.cost_reported,
            ATTEMPTS.c.cost_computed,
            UNITS.c.graded_unit_id,
        )
        .select_from(
            ATTEMPTS.join(UNITS, ATTEMPTS.c.unit_id == UNITS.c.id).join(RUNS, UNITS.c.run_id == RUNS.c.id)
        )
        .order_by(ATTEMPTS.c.started_at, ATTEMPTS.c.id)
    )
    if since is not None:
        query = query.where(ATTEMPTS.c.started_at >= since)
    if until is not None:
        query = query.where(ATTEMPTS.c.started_at < until)
    with transaction(session, write=False) as conn:
        rows = conn.execute(query).mappings().all()
        requested = _requested_models(conn, {row["run_id"] for row in rows})
    return [
        AttemptCost(
            run_id=row["run_id"],
            job_name=row["job_name"],
            tags=tuple(row["tags"] or ()),
            provider=row["provider"],
            model=row["model"],
            started_at=row["started_at"],
            # A superseded attempt's answer was never the result: its tokens are waste.
            ok=row["error_kind"] is None and not row["superseded"],
            superseded=bool(row["superseded"]),
            grading=row["graded_unit_id"] is not None,
            input_tokens=row["input_tokens"],
            output_tokens=row["output_tokens"],
            reasoning_tokens=row["reasoning_tokens"],
            cached_input_tokens=row["cached_input_tokens"],
            cost_reported=row["cost_reported"],
            cost_computed=row["cost_computed"],
            requested_model=requested.get((row["run_id"], row["provider"], row["case_id"]))
            or requested.get((row["run_id"], row["provider"], None)),
        )
        for row in rows
    ]


def _requested_models(conn: Connection, run_ids: Iterable[str]) -> Mapping[tuple[str, str, str | None], str]:
    """(run, provider, case) -> the model the request named, read from each run's stored spec;
    a case of None holds the provider's model, for every case whose params name none."""
    ids = sorted(run_ids)
    models: dict[tuple[str, str, str | None], str] = {}
    for start in range(0, len(ids), _RUNS_PER_QUERY):
        chunk = ids[start : start + _RUNS_PER_QUERY]
        query = select(RUNS.c.id, RUNS.c.job_spec).where(RUNS.c.id.in_(chunk))
        for run_id, spec in conn.execute(query).all():
            for (provider, case), model in _spec_models(spec).items():
                models[run_id, provider, case] = model
    return models


def _spec_models(spec: Mapping[str, Any]) -> dict[tuple[str, str | None], str]:
    """(provider, case or None) -> model in one stored spec: a "model" param (case over provider,
    merged as the dialects merge the request body) wins over the provider's ``model``. The JSON is
    read as stored, so a spec from another runner version still attributes what it can."""
    models: dict[tuple[str, str | None], str] = {}
    cases = [c for c in spec.get("cases") or () if isinstance(c, dict) and isinstance(c.get("id"), str)]
    for provider in spec.get("providers") or ():
        if not isinstance(provider, dict) or not isinstance(provider.get("name"), str):
            continue
        name, params = provider["name"], provider.get("params") or {}
        model = params.get("model", provider.get("model"))
        if isinstance(model, str) and model:
            models[name, None] = model
        # Only a case whose params name a model needs its own entry (it is rare, and cases are many).
        for case in cases:
            if "model" in (case.get("params") or {}):
                override = merge_params(params, case["params"]).get("model")
                if isinstance(override, str) and override:
                    models[name, case["id"]] = override
    return models
