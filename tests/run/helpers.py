"""Helpers for engine tests: jobs aimed at a test's own simulator, and an in-process run on SQLite."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import trio

from runner.run.planning import open_run
from runner.run.service import RunOptions, execute_job
from runner.run.summary import RunSummary
from runner.simulator.server import SimulatorHandle
from runner.spec import CaseSpec, JobSpec, ProviderSpec, RetryPolicy, Timeouts
from runner.store import repository
from runner.store.db import Database, open_database
from runner.store.records import UnitView

DEFAULT_CASE = CaseSpec(id="c", messages=({"role": "user", "content": "Say something."},))


def provider_for(
    simulator: SimulatorHandle,
    dialect: str,
    *,
    name: str | None = None,
    retry: RetryPolicy | None = None,
    timeouts: Timeouts | None = None,
    **fields: Any,
) -> ProviderSpec:
    """A provider of ``dialect`` served by the test's simulator over loopback."""
    return ProviderSpec(
        name=name or dialect,
        dialect=dialect,
        base_url=simulator.base_url(dialect),
        model="sim-model",
        retry=retry or RetryPolicy(max_attempts=3, backoff_initial=0.01, backoff_max=0.05),
        timeouts=timeouts or Timeouts(connect=2, first_byte=2, first_token=3, idle=2, total=10),
        **fields,
    )


def make_job(
    providers: list[ProviderSpec], cases: list[CaseSpec] | None = None, *, repeats: int = 1, **fields: Any
) -> JobSpec:
    """A job of these providers and cases (one default case if none)."""
    return JobSpec(
        name="test-job",
        providers=tuple(providers),
        cases=tuple(cases or [DEFAULT_CASE]),
        repeats=repeats,
        source_sha256="test",
        **fields,
    )


async def run_in_process(
    tmp_path: Path, job: JobSpec, *, db_name: str = "runner.db", **options: Any
) -> tuple[RunSummary, list[UnitView]]:
    """Run ``job`` to its end in this trio run, on a migrated SQLite file; return the stored units."""
    database = await trio.to_thread.run_sync(open_database, f"sqlite:///{tmp_path / db_name}")
    try:
        # The transport fixture (tests/run/conftest.py) names the transport as runner run reads it.
        transport = os.environ.get("RUNNER_TRANSPORT", "runner")
        run_options = RunOptions(display="quiet", **{"transport": transport, **options})
        run, job = await trio.to_thread.run_sync(open_run, database, job, run_options)
        summary = await execute_job(database, run, job, run_options, api_keys={})
        return summary, await stored_units(database, run.id)
    finally:
        database.close()


async def stored_units(database: Database, run_id: str) -> list[UnitView]:
    """Every unit of run ``run_id`` as the store reads it back (in a worker thread)."""

    def read() -> list[UnitView]:
        with database.session() as session:
            return list(repository.iter_units(session, run_id))

    return await trio.to_thread.run_sync(read)
