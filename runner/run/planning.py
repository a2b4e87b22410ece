"""Open a run: create it and store its units in batches (planning), or take back a stored one for
``--resume`` / ``--join`` (finishing its planning first when it was cut off).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

from runner import __version__
from runner.errors import ConfigError
from runner.job.catalog import with_catalog_prices
from runner.job.checks import load_checks
from runner.job.load import check_environment
from runner.job.plan import count_units, plan_units
from runner.job.stored import job_from_json
from runner.run.finish import reuse_grader
from runner.run.owners import refuse_if_worked
from runner.store import repository

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from runner.run.service import RunOptions
    from runner.spec import JobSpec
    from runner.store.db import Database
    from runner.store.records import RunInfo

log = logging.getLogger(__name__)

_ADD_BATCH: Final = 2000  # units planned and stored per transaction: memory stays flat


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanningHooks:
    """How ``open_run`` talks to its caller while a job's units are being stored."""

    announce: Callable[[RunInfo, JobSpec], None] | None = None  # the run exists, before planning
    progress: Callable[[int, int], None] | None = None  # (stored, total), at most once per report_seconds
    # Asked after each batch: True ends planning there (a signal handler sets it; raising from the
    # handler itself could land mid-transaction, inside SQLAlchemy's connection handling).
    stop_requested: Callable[[], bool] | None = None
    report_seconds: float = 1.0


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
