"""``runner run``: option parsing around ``runner.run.service`` (open, execute until signalled, report)."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Final, cast

import click

from runner.cli.options import check_output_path, db_option, fail, fail_storage
from runner.cli.subset import check_unit_options, unit_options
from runner.cli.summary import breakdown_lines, read_failures, summary_json
from runner.errors import ConfigError, StorageError
from runner.spec import TRANSPORTS

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import FrameType

    from rich.console import Console

    from runner.run.service import RetryWhich, RunOptions
    from runner.run.summary import RunSummary
    from runner.run.workers import WorkerEnd, WorkersOutcome
    from runner.spec import JobSpec, TransportName
    from runner.store.db import Database
    from runner.store.records import RawCapturePolicy, RunInfo

# The values of runner.store.records.RawCapturePolicy (a test keeps them equal), spelled out here so
# that `runner run --help` does not import the store (and SQLAlchemy with it).
CAPTURE_CHOICES: Final = ("failed", "all", "none")
# The database failed during the run (connection lost, lock held too long, disk full, file deleted):
# what was stored is kept, nothing more is claimed; fix the database and --resume.
DATABASE_FAILED_EXIT: Final = 3
# --workers: every worker ended, one of them crashed (not 0, 1 or 130), and units are left undone.
WORKER_FAILED_EXIT: Final = 4
# More units than this need --yes: every unit is a row written before the first request is sent.
MAX_UNITS_WITHOUT_YES: Final = 100_000


@click.command("run")
@click.argument("job_path", metavar="[JOB]", required=False, type=click.Path(dir_okay=False))
@db_option
@click.option("--resume", metavar="RUN|latest", help="Finish the units of RUN that have no result.")
@click.option("--join", metavar="RUN", help="Work RUN beside the processes already on it (shared DB).")
@unit_options
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the end-of-run summary as one JSON object on stdout (progress stays on stderr).",
)
@click.option(
    "--provider",
    "provider_spec",
    metavar="SPEC",
    help="For an OpenAI Batch .jsonl: 'simulator' or dialect=…,base_url=…,model=…,api_key_env=….",
)
@click.option(
    "--reuse",
    is_flag=True,
    help="Copy results of identical requests from earlier runs: repeat n takes the n-th earlier sample, "
    "graded against this job's expectations.",
)
@click.option("--concurrency", type=click.IntRange(min=1), help="Cap on requests in flight, all providers.")
@click.option("--max-cost", type=click.FloatRange(min=0), help="Stop starting units once USD spent.")
@click.option(
    "--capture",
    type=click.Choice(CAPTURE_CHOICES),
    default="failed",
    show_default=True,
    help="Whose raw stream bytes to keep (for runner parse replay).",
)
@click.option(
    "--lease",
    "lease_seconds",
    type=click.FloatRange(min=0.5),
    default=60.0,
    show_default=True,
    metavar="SECONDS",
    help="How long a claimed unit stays this process's without renewal (renewed every third of it).",
)
@click.option(
    "--transport",
    type=click.Choice(TRANSPORTS),
    default="runner",
    show_default=True,
    envvar="RUNNER_TRANSPORT",
    show_envvar=True,
    help="HTTP under httpx: runner's own, or stock httpx (a provider's transport key does it for one).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress display.")
@click.option(
    "--progress-interval",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    help="Seconds between log lines.",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, writable=True),
    help="Where to write the HTML run report (default report-RUN.html; '-' for none).",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Load and expand the job, print its plan (units per provider, sample prompts, estimated cost) "
    "and stop: nothing is sent, no database or run is created.",
)
@click.option("--yes", "-y", is_flag=True, help=f"Run a job of more than {MAX_UNITS_WITHOUT_YES:,} units.")
@click.option(
    "--workers",
    "workers_text",
    metavar="N|auto",
    default="1",
    show_default=True,
    help="Worker processes on the run, each a runner run --join RUN ('auto': one per core); "
    "one progress for all, Ctrl-C stops all.",
)
# Internal, set by --workers on the processes it starts: the simulated providers it serves (one
# simulator for all workers), and no display, report or summary of their own (it shows one for all).
@click.option("--simulator-url", "simulator_urls", multiple=True, hidden=True, metavar="NAME=URL")
@click.option("--as-worker", is_flag=True, hidden=True)
def run_command(
    job_path: str | None,
    db_url: str | None,
    resume: str | None,
    join: str | None,
    retry: str | None,
    providers: tuple[str, ...] | None,
    cases_glob: str | None,
    limit: int | None,
    as_json: bool,
    provider_spec: str | None,
    reuse: bool,
    concurrency: int | None,
    max_cost: float | None,
    capture: str,
    lease_seconds: float,
    transport: str,
    quiet: bool,
    progress_interval: float,
    report_path: str | None,
    dry_run: bool,
    yes: bool,
    workers_text: str,
    simulator_urls: tuple[str, ...],
    as_worker: bool,
) -> None:
    """Run a job: every provider x case x repeat, streamed, retried, timed, costed and stored.

    At the end the run report is written (an HTML file; see runner report) and a summary of units
    per verdict: passed, with failed assertions, failed (no result), not done. Exit codes: 0 no unit
    failed or failed an assertion, 1 some did, 2 job, option or database error (also: --resume of a
    run another live process is working; --join it instead), 3 the database failed during the run
    (fix it, then --resume), 4 (--workers) a worker crashed and no other worker finished its units,
    130 interrupted or stopped by the budget (finish it later with --resume; also when interrupted
    while planning). Only RUNNER_DB and RUNNER_TRANSPORT are read from the environment.

    A subset: --providers a,b --cases 'glob*' --limit N (recorded with the run; --resume keeps it).
    Failed units again: runner run --resume RUN --retry failed.

    Example: runner run jobs/demo.toml
    """
    import os

    import orjson
    import trio
    from rich.console import Console

    from runner.job import load_job, parse_provider_option
    from runner.job.load import check_plan_size
    from runner.job.subset import select_subset
    from runner.run.process import run_until_signalled
    from runner.run.progress import choose_mode
    from runner.run.redact import RedactingFilter, Redactor
    from runner.run.service import RunOptions, read_api_keys
    from runner.run.summary import summarize
    from runner.store.db import open_database

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    for chatty in ("httpx", "httpcore", "alembic"):  # a line per request / migration step is noise
        logging.getLogger(chatty).setLevel(logging.WARNING)
    if resume and join:
        fail("--resume and --join exclude each other")
    if job_path is None and not (resume or join):
        fail("name a job file, or --resume RUN / --join RUN")
    if dry_run and (resume or join):
        fail("--dry-run plans a job file: it takes no --resume or --join")
    check_unit_options(
        retry=retry, resume=resume, join=join, providers=providers, cases_glob=cases_glob, limit=limit
    )
    workers = _worker_count(workers_text)
    if as_worker:
        quiet, report_path = True, "-"
    # Before anything is sent: a run's report must have somewhere to go (a dry run writes none).
    if report_path != "-" and not dry_run:
        check_output_path(report_path, "--report", makes_folders=True)
    console = Console(stderr=True)
    options = RunOptions(
        resume=resume,
        join=join,
        reuse=reuse,
        concurrency=concurrency,
        max_cost_usd=max_cost,
        raw_capture=cast("RawCapturePolicy", capture),  # click.Choice checked it against CAPTURE_CHOICES
        display=choose_mode(quiet=quiet, console=console),
        progress_interval=progress_interval,
        lease_seconds=lease_seconds,
        transport=cast("TransportName", transport),  # click.Choice checked it against TRANSPORTS
        simulator_urls=tuple(_name_and_url(text) for text in simulator_urls),
        retry=cast("RetryWhich | None", retry),  # click.Choice checked it against RETRY_CHOICES
    )
    try:
        provider = parse_provider_option(provider_spec) if provider_spec else None
        job = load_job(job_path, provider=provider) if job_path else None
        if job is not None and not (resume or join):
            job = select_subset(job, providers=providers, cases=cases_glob, limit=limit)
        if dry_run and job is not None:  # stores nothing, so it shows a plan of any size
            _echo_dry_run(job, str(job_path), needs_yes=not yes)
            return
        if job is not None and not (resume or join):
            check_plan_size(job, limit=sys.maxsize if yes else MAX_UNITS_WITHOUT_YES)
            read_api_keys(job, os.environ)  # a key httpx cannot send is refused before a run is stored
        with open_database(db_url) as database:
            run, job = _open_announced(database, job, options, announce=not as_worker)
            api_keys = read_api_keys(job, os.environ)
            # Belt and braces: no log line (runner's, httpx's) can print a key, whatever it quotes.
            for handler in logging.getLogger().handlers:
                handler.addFilter(RedactingFilter(Redactor.of(api_keys.values())))
            try:
                if workers > 1:
                    outcome = _supervise(database, run, job, options, workers, console)
                    summary = summarize(database, run.id)
                    if outcome.signalled:  # even if a worker was killed before it marked the run
                        summary = dataclasses.replace(summary, status="interrupted")
                    _stop_if_undone(summary, outcome.crashed)
                    # As from run_until_signalled: None when a signal stopped the run (else an
                    # interrupted run was stopped by the budget).
                    returned = None if outcome.signalled else summary
                else:
                    returned = trio.run(
                        functools.partial(
                            run_until_signalled,
                            database,
                            run,
                            job,
                            options,
                            api_keys=api_keys,
                            console=console,
                        )
                    )
                    summary = returned or summarize(database, run.id)
            except StorageError as exc:
                fail(
                    f"{exc}; run {run.id} stopped and what was stored is kept; when the database is "
                    f"back: runner run --resume {run.id}",
                    DATABASE_FAILED_EXIT,
                )
            if as_worker:  # the --workers process that started this one reports for all
                sys.exit(summary.exit_code)
            failures = read_failures(database, run.id)
            for line in breakdown_lines(failures):
                click.echo(line, err=True)
            written = _write_report(database, run.id, report_path)
            if written is not None:
                click.echo(f"report: {written}", err=True)
            is_first = _is_only_run(database)
    except ConfigError as exc:
        fail(str(exc))
    except StorageError as exc:
        fail_storage(exc, db_url)
    # The run returns (rather than being cancelled) with the run interrupted only when the budget
    # stopped it; a signal leaves ``returned`` None, and the summary is read from the database.
    budget = options.max_cost_usd if options.max_cost_usd is not None else job.max_cost_usd
    by_budget = returned is not None and summary.status == "interrupted" and budget is not None
    _echo_end(summary, budget if by_budget else None, written, is_first=is_first)
    if as_json:  # the one thing on stdout: a script reads it whole
        data = summary_json(
            summary,
            job_name=job.name,
            report=written,
            failures=failures,
            subset=job.subset,
            budget_reached=by_budget,
        )
        click.echo(orjson.dumps(data).decode())
    sys.exit(summary.exit_code)


def _echo_dry_run(job: JobSpec, path: str, *, needs_yes: bool) -> None:
    """``--dry-run``: the plan on standard output, priced as a run would price it (catalog included)."""
    from datetime import UTC, datetime

    from runner.job.catalog import with_catalog_prices
    from runner.job.preview import describe, preview

    plan = preview(with_catalog_prices(job, at=datetime.now(UTC)))
    for line in describe(plan, path):
        click.echo(line)
    if needs_yes and plan.units > MAX_UNITS_WITHOUT_YES:
        click.echo(f"note: more than {MAX_UNITS_WITHOUT_YES:,} units: runner run needs --yes to plan them")


def _open_announced(
    database: Database, job: JobSpec | None, options: RunOptions, *, announce: bool = True
) -> tuple[RunInfo, JobSpec]:
    """``open_run``, printing the run id as soon as the run exists and then planning progress.

    Ctrl-C or SIGTERM while the units are being stored exits 130 with the resume line: the run stays
    ``planning`` and ``--resume`` stores the rest of its units before running any.
    """
    import os

    from runner.run.planning import PlanningHooks, open_run
    from runner.store.db import display_url

    opened: list[str] = []

    def announced(run: RunInfo, job: JobSpec) -> None:
        opened.append(run.id)
        if announce:
            click.echo(f"run {run.id} ({job.name}) in {display_url(database.url)}", err=True)

    def planned(stored: int, total: int) -> None:
        click.echo(f"run {opened[-1]}: planned {stored}/{total} units", err=True)

    try:
        with _stop_on_signals() as stopped:
            hooks = PlanningHooks(announce=announced, progress=planned, stop_requested=stopped.is_set)
            opened_run = open_run(database, job, options, environ=os.environ, hooks=hooks)
            if stopped.is_set():  # asked for after the last batch: stop before anything is sent
                raise KeyboardInterrupt
            return opened_run
    except KeyboardInterrupt:
        if not opened:  # the run is created in one transaction: none was stored
            fail("interrupted before the run was created", code=130)
        click.echo(f"run {opened[-1]}: interrupted while planning its units", err=True)
        click.echo(f"resume with: runner run --resume {opened[-1]}", err=True)
        sys.exit(130)


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """SIGINT and SIGTERM set the yielded event (planning stops at its next batch); a second SIGINT
    interrupts at once. Trio takes both signals over for the run itself."""
    stopped = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        if stopped.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt  # asked twice: the user will not wait for the batch
        stopped.set()

    previous = {signum: signal.signal(signum, request_stop) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stopped
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _worker_count(text: str) -> int:
    from runner.run.workers import worker_count

    try:
        return worker_count(text)
    except ValueError as exc:
        fail(f"--workers: {exc}")


def _name_and_url(text: str) -> tuple[str, str]:
    name, sep, url = text.partition("=")
    if not sep or not name or "://" not in url:
        fail(f"--simulator-url: expected NAME=URL, got {text!r}")
    return name, url


def _supervise(
    database: Database, run: RunInfo, job: JobSpec, options: RunOptions, workers: int, console: Console
) -> WorkersOutcome:
    """``--workers N``: N ``runner run --join RUN`` processes on the run, one progress shown here.

    Returns how the workers ended (a signal forwarded to them, crashes).
    """
    import os

    import trio

    from runner.run.summary import read_run_totals
    from runner.run.workers import WorkerPlan, run_workers

    argv = ["run", "--join", run.id, "--as-worker", "--capture", options.raw_capture]
    argv += ["--lease", repr(options.lease_seconds), "--transport", options.transport]
    if options.max_cost_usd is not None:
        argv += ["--max-cost", repr(options.max_cost_usd)]
    if options.concurrency is not None and workers > options.concurrency:
        # A worker sends at least one request at a time: more workers would pass the cap.
        click.echo(
            f"--concurrency {options.concurrency}: {options.concurrency} workers, not {workers}", err=True
        )
        workers = options.concurrency
    # The URL goes by the environment, not the command line, where `ps` would show its password.
    plan = WorkerPlan(
        count=workers,
        argv=argv,
        env={**os.environ, "RUNNER_DB": database.url},
        concurrency=options.concurrency,
    )
    click.echo(f"run {run.id}: {workers} worker processes", err=True)
    outcome = trio.run(
        functools.partial(
            run_workers,
            plan,
            job.providers,
            display=options.display,
            interval=options.progress_interval,
            console=console,
            read_run=functools.partial(read_run_totals, database, run.id),
        )
    )
    return outcome


def _stop_if_undone(summary: RunSummary, crashed: tuple[WorkerEnd, ...]) -> None:
    """Every worker has ended; when one crashed and units are left undone, nobody finished them."""
    if not crashed or not summary.verdicts["not done"] or summary.status == "interrupted":
        return
    which = ", ".join(f"worker {end.index} with code {end.code}" for end in crashed)
    code = (
        DATABASE_FAILED_EXIT
        if any(end.code == DATABASE_FAILED_EXIT for end in crashed)
        else WORKER_FAILED_EXIT
    )
    fail(
        f"run {summary.run_id}: workers stopped with {summary.verdicts['not done']} units not done "
        f"({which} exited); resume with: runner run --resume {summary.run_id}",
        code,
    )


def _write_report(database: Database, run_id: str, report_path: str | None) -> Path | None:
    """Write the run report (unless ``--report -``) and return its absolute path."""
    if report_path == "-":
        return None
    from runner.report.api import write_run_report

    with database.session() as session:
        written = write_run_report(session, run_id, Path(report_path) if report_path else None)
    return written.resolve()


def _is_only_run(database: Database) -> bool:
    from runner.store import repository

    with database.session() as session:
        return len(repository.list_runs(session, limit=2)) == 1


def _echo_end(summary: RunSummary, budget: float | None, report: Path | None, *, is_first: bool) -> None:
    """The last lines of ``runner run``: what to do next, then the summary (scripts read the last line)."""
    if is_first and summary.status != "interrupted":
        shown = f"open {report.as_uri()}" if report is not None else f"runner report {summary.run_id}"
        click.echo(
            f"next: {shown}; after another run, compare them with runner diff {summary.run_id} latest",
            err=True,
        )
    line = summary.describe()
    if budget is not None:  # not "interrupted": nobody pressed Ctrl-C
        line = line.replace(": interrupted;", f": stopped: budget of ${budget:g} reached;", 1)
    click.echo(line, err=True)
    if budget is not None:
        resume = f"runner run --resume {summary.run_id} --max-cost USD"
        click.echo(f"resume with a larger budget: {resume}", err=True)
    elif summary.status == "interrupted":
        click.echo(f"resume with: runner run --resume {summary.run_id}", err=True)
