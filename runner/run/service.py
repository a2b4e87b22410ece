"""Execute a run: the service between the CLI and the engine.

Starts the built-in simulator for simulated providers, builds the engine's context, executes, and records
how the run ended. Opening a run is runner.run.planning; reading how it stands, runner.run.summary; the
process around it (signals), runner.run.process. Blocking database calls run on worker threads;
``trio.run`` is only in the CLI.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

import trio

from runner.errors import ConfigError, StorageError
from runner.job.judge import judged_cases
from runner.run.client import build_client
from runner.run.context import RunContext
from runner.run.engine import execute_run
from runner.run.finish import grading_request
from runner.run.lag import LagHistogram, watch_loop_lag
from runner.run.limits import SharedSwitch, build_limiters
from runner.run.owners import new_owner
from runner.run.progress import Progress, show_progress
from runner.run.redact import Redactor
from runner.run.summary import read_run_totals, summarize
from runner.simulator.process import serve_simulators_in_process
from runner.store import repository
from runner.store.leases import RunQueue
from runner.store.shared_limits import SharedLimits
from runner.store.writer import Writer, db_limiter
from runner.wire.dialects import get_dialect

if TYPE_CHECKING:
    from collections.abc import Mapping

    from rich.console import Console

    from runner.model import LoopLag
    from runner.run.progress import DisplayMode
    from runner.run.summary import RunSummary
    from runner.spec import JobSpec, TransportName
    from runner.store.db import Database
    from runner.store.records import RawCapturePolicy, RunInfo, RunStatus, UnitStatus

log = logging.getLogger(__name__)

# What `runner run --resume RUN --retry WHICH` re-sends besides the units without a result.
RetryWhich = Literal["failed"]
RETRY_CHOICES: Final[tuple[RetryWhich, ...]] = ("failed",)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunOptions:
    """How to run, from the command line (the job file says what to run)."""

    resume: str | None = None  # run id or "latest": finish its units that have no result
    join: str | None = None  # run id: work the same run beside other processes
    reuse: bool = False  # copy results of identical requests from earlier runs
    concurrency: int | None = None  # global cap over all providers
    max_cost_usd: float | None = None  # overrides the job's max_cost_usd
    raw_capture: RawCapturePolicy = "failed"
    display: DisplayMode = "plain"
    progress_interval: float = 10.0
    lease_seconds: float = 60.0
    transport: TransportName = "runner"  # "httpx": stock httpx under every provider (runner.run.client)
    # (provider, base URL) of simulated providers already served by another process (the supervisor
    # of `runner run --workers`): used as they are, so N workers share one simulated provider.
    simulator_urls: tuple[tuple[str, str], ...] = ()
    # With resume: "failed" also re-sends the units whose final status is failed (not the ok units
    # whose assertions failed: they have a result), as new attempts of the same units.
    retry: RetryWhich | None = None


async def execute_job(
    database: Database,
    run: RunInfo,
    job: JobSpec,
    options: RunOptions,
    *,
    api_keys: Mapping[str, str | None],
    console: Console | None = None,
) -> RunSummary:
    """Work ``run`` until it is done, its budget is spent, or the caller cancels (then: interrupted)."""
    limiter = db_limiter(database)
    await trio.to_thread.run_sync(queue_missing_gradings, database, run.id, job, limiter=limiter)
    counts = await trio.to_thread.run_sync(_counts, database, run.id, limiter=limiter)
    spent = await trio.to_thread.run_sync(_spent, database, run.id, limiter=limiter)
    progress = Progress(
        total=sum(counts.values()),
        already_done=counts["ok"] + counts["failed"],
        started_at=trio.current_time(),
    )
    owner = new_owner()
    status: RunStatus = "failed"  # what a crash leaves; set properly on every other way out
    lag = LagHistogram()
    try:
        async with trio.open_nursery() as services:
            providers = {p.name: p for p in job.providers}
            # Parsed and checked when the job was loaded. Served from a process of their own: from
            # our loop (or a thread, under our GIL) their pauses would end only when our busy loop
            # let them run, and scripted latency would read as runner's own load.
            served_elsewhere = dict(options.simulator_urls)
            for name, url in served_elsewhere.items():
                providers[name] = dataclasses.replace(providers[name], base_url=url)
            simulated = [
                p for p in job.providers if p.simulator is not None and p.name not in served_elsewhere
            ]
            if simulated:
                configs = [p.simulator for p in simulated if p.simulator is not None]
                served = await services.start(serve_simulators_in_process, configs)
                for provider, handle in zip(simulated, served, strict=True):
                    local = handle.base_url(provider.dialect)
                    providers[provider.name] = dataclasses.replace(provider, base_url=local)
            services.start_soon(
                functools.partial(
                    show_progress,
                    progress,
                    options.display,
                    interval=options.progress_interval,
                    console=console,
                    read_run=functools.partial(read_run_totals, database, run.id),
                )
            )
            # The one global cap on units in flight: the engine claims under it, and the pool
            # has a connection for each (a larger pool would only hold idle sockets).
            cap = options.concurrency or sum(p.concurrency for p in providers.values())
            client = build_client(providers.values(), cap=cap, transport=options.transport)
            cap_usd = options.max_cost_usd if options.max_cost_usd is not None else job.max_cost_usd
            # Every process joined on the run draws from these (docs/schema.md, "Shared limits").
            gate = SharedLimits.of(
                providers.values(),
                database=database,
                run_id=run.id,
                owner=owner,
                lease_seconds=options.lease_seconds,
                cap_usd=cap_usd,
                spent_before_usd=spent,
            )
            shared = SharedSwitch(gate=gate, db_limiter=limiter)
            async with client:
                ctx = RunContext(
                    providers=providers,
                    cases={case.id: case for case in job.cases},
                    dialects={p.dialect: get_dialect(p.dialect) for p in providers.values()},
                    limiters=build_limiters(
                        providers.values(),
                        global_concurrency=options.concurrency,
                        switch=shared,
                    ),
                    api_keys=api_keys,
                    redactor=Redactor.of(api_keys.values()),
                    client=client,
                    db_limiter=limiter,
                    capture=options.raw_capture != "none",
                    concurrency=cap,
                    max_cost_usd=cap_usd,
                    shared=shared,
                    lease_renew_seconds=options.lease_seconds / 3,
                )
                queue = RunQueue(
                    database=database, run_id=run.id, owner=owner, lease_seconds=options.lease_seconds
                )
                writer = Writer(database, limiter=limiter, raw_capture=options.raw_capture)
                # Watched from here, where attempts start: the setup above blocks the loop once
                # (httpx builds its TLS context synchronously, ~40 ms) but times no attempt.
                services.start_soon(watch_loop_lag, lag)
                result = await execute_run(ctx, queue, writer, progress=progress, already_spent_usd=spent)
                lag.close()  # every attempt has ended: closing the client below times none
            status = "interrupted" if result.end == "interrupted" else "finished"
            services.cancel_scope.cancel()  # the simulators, the display and the lag watcher
    except BaseException as exc:
        status = "interrupted" if _is_cancellation(exc) else "failed"
        # No summary line will carry it (the caller reads the run back from the database).
        if (lagged := lag.summary()) is not None and lagged.is_lagging:
            log.warning("runner's own loop lagged: %s", lagged.describe())
        raise
    finally:
        # Shielded: a Ctrl-C must still leave the run marked, or a resume would not know it stopped.
        # A database that stopped answering cannot be told: the run stays `running` there, which
        # --resume handles like a crash. The error that stopped the run is the one reported.
        with (
            trio.CancelScope(shield=True),
            trio.move_on_after(10),
            contextlib.suppress(StorageError),
        ):
            # With this process's loop lag: the run keeps the worst of it and what is stored.
            await trio.to_thread.run_sync(_mark, database, run.id, status, lag.summary(), limiter=limiter)
    stored = await trio.to_thread.run_sync(summarize, database, run.id, limiter=limiter)
    return dataclasses.replace(stored, loop_lag=lag.summary())


def queue_missing_gradings(database: Database, run_id: str, job: JobSpec) -> int:
    """Queue the grading of every finished unit of a judged case that has none (a run stopped
    between a unit's result and its grading's queueing, or a ``--reuse`` copy); return how many."""
    judged = judged_cases(job)
    if not judged:
        return 0
    judges = {p.name: p for p in job.providers if p.role == "judge"}
    cases = {case.id: case for case in job.cases}
    with database.session() as session:
        units = repository.ungraded_units(session, run_id, judged)
        gradings = [
            request
            for unit in units
            if (
                request := grading_request(
                    unit, cases[unit.case_id], judges[judged[unit.case_id].provider], unit.completion
                )
            )
            is not None
        ]
        if gradings:
            repository.queue_gradings(session, gradings)
    if gradings:
        log.info("run %s: %d finished units were not graded yet; grading them", run_id, len(gradings))
    return len(gradings)


def read_api_keys(job: JobSpec, environ: Mapping[str, str]) -> dict[str, str | None]:
    """Each provider's key, read from the variable it names (simulated providers need none).

    Raises:
        ConfigError: a key holds a character an HTTP header cannot carry (a pasted ellipsis or smart
            quote): httpx would fail on every request. The message names the variable, never the key.
    """
    keys: dict[str, str | None] = {}
    for index, provider in enumerate(job.providers):
        key = environ.get(provider.api_key_env) if provider.api_key_env else None
        if key is not None and not key.isascii():
            raise ConfigError(
                f"the API key in ${provider.api_key_env} (provider {provider.name!r}) holds a character"
                " that is not ASCII, which an HTTP header cannot carry",
                key=f"providers[{index}].api_key_env",
                fix=f"set ${provider.api_key_env} to the key exactly as the provider issued it"
                " (look for a pasted ellipsis, smart quote or space)",
            )
        keys[provider.name] = key
    return keys


def _is_cancellation(exc: BaseException) -> bool:
    if isinstance(exc, trio.Cancelled | KeyboardInterrupt):
        return True
    if isinstance(exc, BaseExceptionGroup):
        _, rest = exc.split((trio.Cancelled, KeyboardInterrupt))
        return rest is None
    return False


def _counts(database: Database, run_id: str) -> dict[UnitStatus, int]:
    with database.session() as session:
        return repository.unit_counts(session, run_id)


def _spent(database: Database, run_id: str) -> float:
    with database.session() as session:
        return repository.spend_so_far(session, run_id)


def _mark(database: Database, run_id: str, status: RunStatus, loop_lag: LoopLag | None = None) -> None:
    database.call(_mark_once, database, run_id, status, loop_lag)


def _mark_once(database: Database, run_id: str, status: RunStatus, loop_lag: LoopLag | None) -> None:
    with database.session() as session:
        repository.mark_run(session, run_id, status, loop_lag=loop_lag)
