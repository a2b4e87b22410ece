"""``runner run``: option parsing around ``runner.run.service`` (open, execute until signalled, report)."""

from __future__ import annotations

import functools
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Final, cast

import click

from runner.cli.options import db_option, fail
from runner.errors import ConfigError, StorageError
from runner.spec import TRANSPORTS

if TYPE_CHECKING:
    from runner.spec import TransportName
    from runner.store.records import RawCapturePolicy

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
@click.option("--reuse", is_flag=True, help="Copy results of identical requests from earlier runs.")
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
    "--transport",
    type=click.Choice(TRANSPORTS),
    default="runner",
    show_default=True,
    help="HTTP under httpx: runner's own, or stock httpx (a provider's transport key does it for one).",
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
    transport: str,
    quiet: bool,
    progress_interval: float,
    report_path: str | None,
) -> None:
    """Run a job: every provider x case x repeat, streamed, retried, timed, costed and stored.

    At the end the run report is written (an HTML file; see runner report) and a summary of units
    per verdict: passed, with failed assertions, failed (no result), not done. Exit codes: 0 no unit
    failed or failed an assertion, 1 some did, 2 job or usage error, 130 interrupted (finish it later
    with --resume).

    Example: runner run jobs/demo.toml
    """
    import os

    import trio
    from rich.console import Console

    from runner.job import load_job, parse_provider_option
    from runner.run.progress import choose_mode
    from runner.run.redact import RedactingFilter, Redactor
    from runner.run.service import RunOptions, open_run, read_api_keys, run_until_signalled, summarize
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
        transport=cast("TransportName", transport),  # click.Choice checked it against TRANSPORTS
    )
    try:
        provider = parse_provider_option(provider_spec) if provider_spec else None
        job = load_job(job_path, provider=provider) if job_path else None
        with open_database(db_url) as database:
            run, job = open_run(database, job, options, environ=os.environ)
            click.echo(f"run {run.id} ({job.name}) in {database!r}", err=True)
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
