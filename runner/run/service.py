"""Start, resume or join a run: the service between the CLI and the engine.

Opens the run in the database (planning its units, or taking back the unfinished ones), starts the
built-in simulator for simulated providers, builds the engine's context, executes, and records how the
run ended. Blocking database calls run on worker threads; ``trio.run`` is only in the CLI.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import itertools
import logging
import signal
import socket
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Literal

import trio

from runner import __version__
from runner.errors import ConfigError, StorageError
from runner.grading.rates import CaseRate, case_rates, required_rates
from runner.job.catalog import with_catalog_prices
from runner.job.checks import load_checks
from runner.job.judge import judged_cases
from runner.job.load import check_environment
from runner.job.plan import count_units, plan_units
from runner.job.stored import job_from_json
from runner.run.client import build_client
from runner.run.context import RunContext
from runner.run.engine import execute_run
from runner.run.finish import grading_request, reuse_grader
from runner.run.lag import LagHistogram, watch_loop_lag
from runner.run.limits import SharedSwitch, build_limiters
from runner.run.owners import new_owner, refuse_if_worked
from runner.run.progress import Progress, RunTotals, WorkerTotals, show_progress
from runner.run.redact import Redactor
from runner.simulator.process import serve_simulators_in_process
from runner.store import repository
from runner.store.leases import RunQueue
from runner.store.shared_limits import SharedLimits
from runner.store.writer import Writer, db_limiter
from runner.wire.dialects import get_dialect

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator, Mapping

    from rich.console import Console
    from sqlalchemy.orm import Session

    from runner.model import LoopLag
    from runner.run.progress import DisplayMode
    from runner.spec import JobSpec, TransportName
    from runner.store.db import Database
    from runner.store.records import RawCapturePolicy, RunInfo, RunStatus, UnitStatus, Verdict

log = logging.getLogger(__name__)

# What `runner run --resume RUN --retry WHICH` re-sends besides the units without a result.
RetryWhich = Literal["failed"]
RETRY_CHOICES: Final[tuple[RetryWhich, ...]] = ("failed",)
# How long CPython lets a thread hold the GIL while another waits (5 ms by default). The transport's
# arrival watch (runner.http.watch) must peek at a first token before the next one lands, a token gap
# later (often 20 ms): behind a busy loop it waited 5-29 ms per peek at 1,000 streams. At 1 ms the
# stored TTFT's p99 error there fell from 47-63 ms to 0.06-0.07 ms (benchmarks/bench_timing.py). The
# loop gives the GIL up more often only while another thread waits for it.
SWITCH_INTERVAL_S: Final = 0.001
_ADD_BATCH: Final = 2000
# What a database failure causes in the other tasks of a run: their cancellation, and hand-offs to
# the writer that found it gone.
_CONSEQUENCES: Final = (
    trio.Cancelled,
    trio.BrokenResourceError,
    trio.ClosedResourceError,
)  # units planned and stored per transaction: memory stays flat


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


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanningHooks:
    """How ``open_run`` talks to its caller while a job's units are being stored."""

    announce: Callable[[RunInfo, JobSpec], None] | None = None  # the run exists, before planning
    progress: Callable[[int, int], None] | None = None  # (stored, total), at most once per report_seconds
    # Asked after each batch: True ends planning there (a signal handler sets it; raising from the
    # handler itself could land mid-transaction, inside SQLAlchemy's connection handling).
    stop_requested: Callable[[], bool] | None = None
    report_seconds: float = 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSummary:
    """How a run stands when this process is done with it."""

    run_id: str
    status: RunStatus
    counts: Mapping[UnitStatus, int]
    spent_usd: float
    assertions_failed: int = 0  # units (ok ones) with a failed [cases.expect] assertion: not checks
    # Each (case, provider) of a case with a pass_rate: a rated case is judged over its repeats, so
    # its units' failed assertions count for the exit code only through a rate below its bar.
    rates: tuple[CaseRate, ...] = ()
    reused: int = 0  # units given a copy of an earlier sample (--reuse): nothing sent for them
    sent: int = 0  # units that sent at least one request
    # How late runner's loop woke during this process's part of the run (None: not measured, e.g. a
    # summary read back from the database). Stored as runs.loop_lag, the worst process's.
    loop_lag: LoopLag | None = None
    grading_usd: float = 0.0  # of spent_usd, what judge providers' grading requests cost
    grading_pending: int = 0  # ok units whose judge has not answered (a stopped run): not done yet

    @property
    def verdicts(self) -> Mapping[Verdict, int]:
        """Units per verdict (``records.unit_verdict``), as the run report counts them."""
        counts = self.counts
        return {
            "passed": counts.get("ok", 0) - self.assertions_failed - self.grading_pending,
            "failed assertions": self.assertions_failed,
            "failed": counts.get("failed", 0),
            "not done": counts.get("pending", 0) + counts.get("running", 0) + self.grading_pending,
        }

    @property
    def exit_code(self) -> int:
        """0 no unit failed or failed an assertion, 1 some did (or a case fell below its pass_rate),
        130 interrupted (resume it). A rated case's units fail the run only through the case's rate."""
        if self.status == "interrupted":
            return 130
        verdicts = self.verdicts
        rated_failures = sum(rate.graded - rate.passed for rate in self.rates)
        failed = verdicts["failed"] or verdicts["failed assertions"] > rated_failures
        return 1 if failed or self.cases_below_rate else 0

    @property
    def cases_below_rate(self) -> int:
        """(case, provider) pairs whose repeats passed less often than the case's pass_rate."""
        return sum(rate.is_below for rate in self.rates)

    def describe(self) -> str:
        """One line for the terminal: status, units per verdict, units reused and sent, and spend (every
        count counts units)."""
        v = self.verdicts
        line = (
            f"run {self.run_id}: {self.status}; units passed {v['passed']}, units with failed assertions "
            f"{v['failed assertions']}, failed (no result) {v['failed']}, not done {v['not done']}; "
            f"units reused {self.reused}, sent {self.sent}; spent ${self.spent_usd:.6f}"
        )
        if self.grading_usd:
            line += f" (grading ${self.grading_usd:.6f})"
        if self.rates:
            line += f"; cases below their pass_rate {self.cases_below_rate}"
        return line if self.loop_lag is None else f"{line}; {self.loop_lag.describe()}"


def open_run(
    database: Database,
    job: JobSpec | None,
    options: RunOptions,
    *,
    environ: Mapping[str, str] | None = None,
    hooks: PlanningHooks | None = None,
) -> tuple[RunInfo, JobSpec]:
    """Create a run and plan its units, or take back an existing one (``--resume`` / ``--join``).

    A resumed or joined run uses the job spec it was started with, as stored in the database.
    With ``environ``, every provider's key variable is checked before anything is written, so a
    missing key leaves the database as it was. ``hooks`` announce the run as soon as it exists
    (before planning, which takes a while for a large job), report the planning's progress, and may
    stop it between two batches.

    A new run is created ``planning`` and becomes ``running`` in the transaction that stores its last
    units, so a run cut off while planning (Ctrl-C, SIGKILL, a full disk) is known to be unplanned:
    ``--resume`` and ``--join`` finish its planning first (storing units is idempotent by key).

    Raises:
        ConfigError: the job file changed since the run started, a key is missing, or (``--resume``)
            another live process is working the run: it must be joined, not resumed.
    """
    hooks = hooks or PlanningHooks()
    ref = options.resume or options.join
    if ref is None:
        if job is None:
            raise ConfigError("no job file given", fix="runner run JOB, or --resume RUN / --join RUN")
        if environ is not None:
            check_environment(job, environ)
        # Providers that declare no price take the catalog's for the day the run starts; the run
        # stores the spec with it (so --resume keeps it) and freezes it in runs.prices with its source.
        job = with_catalog_prices(job, at=datetime.now(UTC))
        with database.session() as session:
            run = repository.create_run(
                session, job, host=socket.gethostname(), version=__version__, status="planning"
            )
        if hooks.announce is not None:
            hooks.announce(run, job)
        _plan(database, run.id, job, options.reuse, hooks)
        return dataclasses.replace(run, status="running"), job
    run, stored = _take_back(database, ref, job, options, environ)
    if hooks.announce is not None:
        hooks.announce(run, stored)
    if run.status == "planning":
        log.info("run %s was not fully planned: storing the rest of its units first", run.id)
        _plan(database, run.id, stored, options.reuse, hooks)
        run = dataclasses.replace(run, status="running")
    if options.resume:
        with database.session() as session:
            if options.retry == "failed":
                failed = repository.unit_counts(session, run.id)["failed"]
                log.info("run %s: sending its %d failed units again", run.id, failed)
            repository.resume_run(session, run.id, retry_failed=options.retry == "failed")
        run = dataclasses.replace(run, status="running", finished_at=None)
    return run, stored


def _take_back(
    database: Database,
    ref: str,
    job: JobSpec | None,
    options: RunOptions,
    environ: Mapping[str, str] | None,
) -> tuple[RunInfo, JobSpec]:
    """The run ``ref`` names and its stored job, checked for ``--resume`` / ``--join``."""
    with database.session() as session:
        run = repository.get_run(session, ref)
        # The stored spec names its custom checks; they are imported again from beside the job file.
        stored = load_checks(job_from_json(run.job_spec))
        if job is not None and job.source_sha256 != run.job_sha256:
            raise ConfigError(
                f"the job file changed since run {run.id} started",
                path=job.source_path,
                fix=f"leave out the job file to {'resume' if options.resume else 'join'} "
                f"run {run.id} as it was started, or start a new run",
            )
        if environ is not None:
            check_environment(stored, environ)
        if options.resume:
            refuse_if_worked(run.id, repository.live_leases(session, run.id))
    return run, stored


def _plan(
    database: Database,
    run_id: str,
    job: JobSpec,
    reuse: bool,
    hooks: PlanningHooks,
) -> None:
    """Store every unit of ``job`` in batches; the last batch's transaction marks the run planned.

    Raises:
        KeyboardInterrupt: ``hooks.stop_requested`` said so after a batch (between transactions, so
            nothing is half-written; the run stays ``planning`` unless that was the last batch).
    """
    total = count_units(job)
    units = plan_units(job)
    grader = reuse_grader({case.id: case for case in job.cases}) if reuse else None
    batch = list(itertools.islice(units, _ADD_BATCH))
    stored = reused = 0
    reported_at = time.monotonic()
    with database.session() as session:
        if not batch:  # a job without units: nothing to store, planning is complete
            repository.mark_run(session, run_id, "running")
        while batch:
            # One batch ahead, so the last one is known and carries the planning's end.
            following = list(itertools.islice(units, _ADD_BATCH))
            reused += repository.add_units(session, run_id, batch, reuse=grader, planned=not following)
            stored += len(batch)
            batch = following
            if hooks.progress is not None and time.monotonic() - reported_at >= hooks.report_seconds:
                hooks.progress(stored, total)
                reported_at = time.monotonic()
            if hooks.stop_requested is not None and hooks.stop_requested():
                raise KeyboardInterrupt
    if reused:
        log.info("reused %d results of identical requests from earlier runs", reused)


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


async def run_until_signalled(
    database: Database,
    run: RunInfo,
    job: JobSpec,
    options: RunOptions,
    *,
    api_keys: Mapping[str, str | None],
    console: Console | None = None,
) -> RunSummary | None:
    """``execute_job``, cancelled by the first SIGINT or SIGTERM; None when it was interrupted.

    The signal cancels the work at once; the shielded, bounded cleanups (cut-off attempts stored,
    writer drained, leases released, run marked interrupted) then take at most a few seconds.

    Like the signal handlers, this acts on the whole process (it is ``runner run``'s): see
    ``process_settings``.
    """
    with process_settings():
        return await _run_cancelled_by_signals(
            database, run, job, options, api_keys=api_keys, console=console
        )


@contextlib.contextmanager
def process_settings() -> Iterator[None]:
    """What a run sets for its whole process while it runs (``runner run``, and ``runner bench``'s
    runner client, which measures what ``runner run`` costs): every object alive so far frozen out of
    the garbage collector's reach, and CPython's GIL switch interval shortened (``SWITCH_INTERVAL_S``;
    restored at the end)."""
    # The libraries loaded by now (SQLAlchemy, Alembic, httpx, rich...) are a few hundred thousand
    # long-lived objects; a full collection during the run walked them all and stopped the loop for
    # 70-130 ms (the loop-lag watcher caught it in the demo job), delaying every timestamp due then.
    # Frozen, they are never walked again: the same collections take under 10 ms.
    gc.freeze()
    switch = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    try:
        yield
    finally:
        sys.setswitchinterval(switch)


async def _run_cancelled_by_signals(
    database: Database,
    run: RunInfo,
    job: JobSpec,
    options: RunOptions,
    *,
    api_keys: Mapping[str, str | None],
    console: Console | None,
) -> RunSummary | None:
    summary: RunSummary | None = None  # stays None when the nursery's scope caught a cancellation
    try:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_cancel_on_signal, signals, nursery.cancel_scope)
                summary = await execute_job(database, run, job, options, api_keys=api_keys, console=console)
                nursery.cancel_scope.cancel()  # stop watching for signals
    except BaseExceptionGroup as group:
        # The database failed (the writer, a claim, a renewal): every other task was cancelled
        # because of it, and tasks that were handing records to the writer found it gone. That one
        # database error is what stopped the run; it reaches the CLI alone, as one line.
        # Anything else in the group (a bug) still crashes loudly, with the whole group.
        failure = _storage_error_in(group)
        _, rest = group.split((StorageError, *_CONSEQUENCES))
        if failure is None or rest is not None:
            raise
        raise failure from None
    return summary


async def _cancel_on_signal(signals: AsyncIterator[int], scope: trio.CancelScope) -> None:
    async for signum in signals:
        log.warning("%s: stopping; in-flight attempts are cut off and stored", signal.Signals(signum).name)
        scope.cancel()
        return


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


def summarize(database: Database, run_id: str) -> RunSummary:
    """The run as stored (after an interruption, when ``execute_job`` could not return).

    Through ``Database.call``: a summary is never read from a SQLite file deleted meanwhile.
    """
    return database.call(_summarize, database, run_id)


def _summarize(database: Database, run_id: str) -> RunSummary:
    with database.session() as session:
        run = repository.get_run(session, run_id)
        counts = repository.unit_counts(session, run_id)
        spent = repository.spend_so_far(session, run_id)
        failed_assertions = repository.count_failed_assertions(session, run_id)
        rates = _rates(session, run.job_spec, run_id)
        reused, sent = repository.reuse_counts(session, run_id)
        grading = repository.grading_cost(session, run_id)
        grading_pending = repository.count_grading_pending(session, run_id)
    return RunSummary(
        run_id=run.id,
        status=run.status,
        counts=counts,
        spent_usd=spent,
        assertions_failed=failed_assertions,
        rates=rates,
        reused=reused,
        sent=sent,
        grading_usd=grading,
        grading_pending=grading_pending,
    )


def _rates(session: Session, spec: Mapping[str, Any], run_id: str) -> tuple[CaseRate, ...]:
    """The pass rates of the run's cases that set a pass_rate (their bar read from the stored spec)."""
    required = required_rates(spec)
    if not required:
        return ()
    verdicts = (v for v in repository.graded_verdicts(session, run_id) if v[0] in required)
    return case_rates(verdicts, required)


def read_run_totals(database: Database, run_id: str) -> RunTotals:
    """The whole run's units per status and per process, as stored (every process's, not only ours)."""
    with database.session() as session:
        by_owner = repository.counts_by_owner(session, run_id)
    totals: dict[UnitStatus, int] = {"pending": 0, "running": 0, "ok": 0, "failed": 0}
    workers: dict[str, WorkerTotals] = {}
    for owner, counts in by_owner.items():
        for status, count in counts.items():
            totals[status] += count
        if owner:  # "": units no process holds or finished (pending, reused)
            workers[owner] = WorkerTotals(
                in_flight=counts["running"], finished=counts["ok"] + counts["failed"]
            )
    return RunTotals(
        ok=totals["ok"],
        failed=totals["failed"],
        in_flight=totals["running"],
        pending=totals["pending"],
        workers=workers,
    )


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


def _storage_error_in(group: BaseExceptionGroup[BaseException]) -> StorageError | None:
    """The first StorageError among the leaves of ``group`` (nested groups included)."""
    for exc in group.exceptions:
        found = _storage_error_in(exc) if isinstance(exc, BaseExceptionGroup) else exc
        if isinstance(found, StorageError):
            return found
    return None


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
