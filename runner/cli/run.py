"""``runner run``: option parsing around ``runner.run.service`` (open, execute until signalled, report)."""

from __future__ import annotations

import contextlib
import functools
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Final, cast

import click

from runner.cli.options import db_option, fail
from runner.errors import ConfigError, StorageError

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import FrameType

    from runner.run.service import RunOptions
    from runner.spec import JobSpec
    from runner.store.db import Database
    from runner.store.records import RawCapturePolicy, RunInfo

# The values of runner.store.records.RawCapturePolicy (a test keeps them equal), spelled out here so
# that `runner run --help` does not import the store (and SQLAlchemy with it).
CAPTURE_CHOICES: Final = ("failed", "all", "none")


@click.command("run")
@click.argument("job_path", metavar="[JOB]", required=False, type=click.Path(dir_okay=False))
@db_option
@click.option("--resume", metavar="RUN|latest", help="Finish the units of RUN that have no result.")
@click.option("--join", metavar="RUN", help="Work RUN beside the processes already on it (shared DB).")
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
@click.option("--quiet", "-q", is_flag=True, help="No progress display.")
@click.option(
    "--progress-interval", type=float, default=10.0, show_default=True, help="Seconds between log lines."
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, writable=True),
    help="Where to write the HTML run report (default report-RUN.html; '-' for none).",
)
def run_command(
    job_path: str | None,
    db_url: str | None,
    resume: str | None,
    join: str | None,
    provider_spec: str | None,
    reuse: bool,
    concurrency: int | None,
    max_cost: float | None,
    capture: str,
    lease_seconds: float,
    quiet: bool,
    progress_interval: float,
    report_path: str | None,
) -> None:
    """Run a job: every provider x case x repeat, streamed, retried, timed, costed and stored.

    At the end the run report is written (an HTML file; see runner report) and a summary of units
    per verdict: passed, with failed assertions, failed (no result), not done. Exit codes: 0 no unit
    failed or failed an assertion, 1 some did, 2 job or usage error (also: --resume of a run another
    live process is working; --join it instead), 130 interrupted (finish it later with --resume;
    also when interrupted while planning).

    Example: runner run jobs/demo.toml
    """
    import os

    import trio
    from rich.console import Console

    from runner.job import load_job, parse_provider_option
    from runner.run.progress import choose_mode
    from runner.run.redact import RedactingFilter, Redactor
    from runner.run.service import RunOptions, read_api_keys, run_until_signalled, summarize
    from runner.store.db import open_database

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    for chatty in ("httpx", "httpcore", "alembic"):  # a line per request / migration step is noise
        logging.getLogger(chatty).setLevel(logging.WARNING)
    if resume and join:
        fail("--resume and --join exclude each other")
    if job_path is None and not (resume or join):
        fail("name a job file, or --resume RUN / --join RUN")
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
    )
    try:
        provider = parse_provider_option(provider_spec) if provider_spec else None
        job = load_job(job_path, provider=provider) if job_path else None
        with open_database(db_url) as database:
            run, job = _open_announced(database, job, options)
            api_keys = read_api_keys(job, os.environ)
            # Belt and braces: no log line (runner's, httpx's) can print a key, whatever it quotes.
            for handler in logging.getLogger().handlers:
                handler.addFilter(RedactingFilter(Redactor.of(api_keys.values())))
            summary = trio.run(
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
            if summary is None:
                summary = summarize(database, run.id)
            if report_path != "-":
                from runner.report.api import write_run_report

                with database.session() as session:
                    written = write_run_report(session, run.id, Path(report_path) if report_path else None)
                click.echo(f"report: {written}", err=True)
    except ConfigError as exc:
        fail(str(exc))
    except StorageError as exc:
        fail(str(exc))
    click.echo(summary.describe(), err=True)
    if summary.status == "interrupted":
        click.echo(f"resume with: runner run --resume {summary.run_id}", err=True)
    sys.exit(summary.exit_code)


def _open_announced(database: Database, job: JobSpec | None, options: RunOptions) -> tuple[RunInfo, JobSpec]:
    """``open_run``, printing the run id as soon as the run exists and then planning progress.

    Ctrl-C or SIGTERM while the units are being stored exits 130 with the resume line: the run stays
    ``planning`` and ``--resume`` stores the rest of its units before running any.
    """
    import os

    from runner.run.service import PlanningHooks, open_run

    opened: list[str] = []

    def announce(run: RunInfo, job: JobSpec) -> None:
        opened.append(run.id)
        click.echo(f"run {run.id} ({job.name}) in {database!r}", err=True)

    def planned(stored: int, total: int) -> None:
        click.echo(f"run {opened[-1]}: planned {stored}/{total} units", err=True)

    try:
        with _stop_on_signals() as stopped:
            hooks = PlanningHooks(announce=announce, progress=planned, stop_requested=stopped.is_set)
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
