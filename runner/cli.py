"""The ``runner`` command: thin click shells that parse options and call one function each."""

from __future__ import annotations

import functools
import logging
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, NoReturn

import click
import orjson
import trio

from runner import __version__, jsontext
from runner.dialects import build_dialects
from runner.errors import ConfigError, StorageError
from runner.export import write_export
from runner.simulator.config import FLAVORS
from runner.spec import DIALECT_NAMES
from runner.store import repository
from runner.store.db import open_database

if TYPE_CHECKING:
    from collections.abc import Callable


@click.group(context_settings={"auto_envvar_prefix": "RUNNER", "help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="runner")
def cli() -> None:
    """Run streamed LLM evaluation jobs, store every attempt, and report on them.

    Example: runner run jobs/demo.toml
    """


def main() -> None:
    """Entry point of the ``runner`` console script."""
    cli()


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``message`` as an error and exit with ``code`` (2: a job or usage error)."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def db_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The ``--db URL`` option (default ``$RUNNER_DB``, else ``runner.db`` in the working directory)."""
    return click.option(
        "--db",
        "db_url",
        envvar="RUNNER_DB",
        metavar="URL",
        help="Default: $RUNNER_DB, else sqlite:///runner.db. PostgreSQL: postgresql+psycopg://user@host/db.",
    )(fn)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (keep it loopback).")
@click.option("--port", "-p", type=int, default=8765, show_default=True, help="Port to bind; 0 picks one.")
@click.option(
    "--dialect",
    "dialects",
    multiple=True,
    type=click.Choice(DIALECT_NAMES),
    help="Print the base URL of this dialect only (repeatable); every dialect is served anyway.",
)
@click.option("--faults", default="", help="FAULT SPEC, e.g. '1=http_429:ra=1,http_500@0.02' (see below).")
@click.option("--latency", default="", help="LATENCY SPEC, e.g. 'ttft=0.3,gap=0.02' (see below).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of answers and faults.")
@click.option(
    "--flavor", type=click.Choice(FLAVORS), default="openai", show_default=True, help="openai-chat flavor."
)
@click.option("--reasoning/--no-reasoning", default=False, help="Reason even when the request does not ask.")
@click.option("--cost/--no-cost", default=False, help="Report usage.cost on openai-chat streams.")
def simulate(
    host: str,
    port: int,
    dialects: tuple[str, ...],
    faults: str,
    latency: str,
    seed: int,
    flavor: str,
    reasoning: bool,
    cost: bool,
) -> None:
    """Serve the built-in provider simulator until Ctrl-C.

    One port speaks openai-chat (POST /v1/chat/completions), anthropic-messages (POST /v1/messages)
    and runware (POST /v1 with a JSON array). Point any client at the printed base URLs.

    \b
    LATENCY SPEC: comma-separated KEY=DIST; keys ttfb, ttft, gap (seconds), chunk (tokens per event),
    heartbeat (seconds between keep-alive comments in long pauses). DIST: X, fixed:X, uniform:LO:HI,
    lognormal:MEDIAN:SIGMA, exp:MEAN.

    \b
    FAULT SPEC: comma-separated N=FAULT (attempt N of a request) or FAULT@P (probability P).
    FAULT: ok, http_STATUS[:ra=S|date=S|ms=MS], quota, reset, stall[:K], heartbeat_stall[:K],
    close_clean[:K], close_abrupt[:K], stream_error[:K], finish_error[:K], malformed[:K], dribble
    (K: after K token events). A request header x-sim-faults: SPEC overrides it per request.

    \b
    Example: runner simulate --port 8765 --latency 'ttft=0.3,gap=0.02' --faults 'http_429@0.05'
    """
    from runner.simulator import SimulatorConfig
    from runner.simulator.cli import run_simulator

    raw: dict[str, object] = {"seed": seed, "flavor": flavor, "reasoning": reasoning, "cost": cost}
    if faults:
        raw["faults"] = faults
    if latency:
        raw["latency"] = latency
    try:
        config = SimulatorConfig.from_dict(raw, prefix="simulate")
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from None
    trio.run(run_simulator, config, host, port, dialects or DIALECT_NAMES, click.echo)
    click.echo("simulator stopped")


@cli.command("parse")
@click.option(
    "--dialect",
    "-d",
    type=click.Choice(sorted(build_dialects())),
    help="The wire shape of the stream (with --attempt: taken from the run unless given).",
)
@click.option("--attempt", "attempt_id", type=int, help="Replay the stored capture of this attempt id.")
@db_option
@click.option("--raw", is_flag=True, help="With --attempt: write the captured bytes instead of parsing them.")
@click.argument("source", type=click.File("rb"), default="-", metavar="[FILE | -]")
def parse_command(
    dialect: str | None, attempt_id: int | None, db_url: str | None, raw: bool, source: BinaryIO
) -> None:
    """Rebuild a captured SSE body and print the Completion as one JSON object.

    FILE holds the raw bytes a provider sent ('-' or nothing: standard input); --attempt ID reads
    the bytes runner stored for that attempt instead (see --capture of runner run). The exit status
    is 0 whenever the bytes could be read, also when the stream carried an error or was cut short:
    those are data, shown in "error" and "complete".

    \b
    Example:
      runner parse --dialect openai-chat examples/streams/solrouter_tool_calls.sse
      runner parse --attempt 12 --db sqlite:///runner.db
      curl -sN https://api.example.com/v1/chat/completions ... | runner parse -d openai-chat -
    """
    from runner.parse import parse_error_response, parse_stream

    if attempt_id is None:
        if dialect is None:
            fail("name the stream's dialect with --dialect (or replay a stored one with --attempt ID)")
        body = source.read()
    else:
        try:
            with open_database(db_url) as database, database.session() as session:
                capture = repository.stored_capture(session, attempt_id)
        except StorageError as exc:
            fail(str(exc))
        if capture.body is None:
            fail(
                f"attempt {attempt_id} ({capture.unit_key}) has no stored bytes: "
                "only failed attempts are captured unless the run used --capture all"
            )
        body = capture.body
        dialect = dialect or capture.dialect
        if raw:
            sys.stdout.buffer.write(body)
            sys.stdout.buffer.flush()
            return
        if dialect is None:
            fail(f"the run does not name provider {capture.provider!r}'s dialect: pass --dialect")
    if attempt_id is not None and capture.http_status is not None and not 200 <= capture.http_status < 300:
        completion = parse_error_response(dialect, capture.http_status, body)
    else:
        completion = parse_stream(dialect, body)
    sys.stdout.buffer.write(jsontext.dumps(completion.to_dict(), option=orjson.OPT_INDENT_2) + b"\n")
    sys.stdout.buffer.flush()


@cli.group("db")
def db_group() -> None:
    """Manage the results database.

    Example: runner db upgrade --db postgresql+psycopg://postgres@127.0.0.1/test
    """


@db_group.command("upgrade")
@db_option
def db_upgrade(db_url: str | None) -> None:
    """Create the database or migrate it to the current schema.

    Example: runner db upgrade --db sqlite:///runner.db
    """
    try:
        with open_database(db_url) as database:
            click.echo(f"{database!r} is at the current schema")
    except StorageError as exc:
        raise click.ClickException(str(exc)) from exc


@cli.command("export")
@click.argument("run_ref", metavar="RUN|latest")
@db_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv"]),
    default="jsonl",
    show_default=True,
    help="JSON Lines (one record per unit) or CSV (first choice flattened).",
)
@click.option("--out", "out_path", type=click.Path(dir_okay=False, writable=True), help="Default: stdout.")
def export_command(run_ref: str, db_url: str | None, fmt: str, out_path: str | None) -> None:
    """Write one record per unit of a run as JSON Lines or CSV (first choice flattened).

    Example: runner export latest --format csv --out results.csv
    """
    try:
        with open_database(db_url) as database, database.session() as session:
            run = repository.get_run(session, run_ref)
            views = repository.iter_units(session, run.id)
            if out_path is None:
                write_export(views, sys.stdout, "csv" if fmt == "csv" else "jsonl")
            else:
                with open(out_path, "w", encoding="utf-8", newline="") as out:
                    write_export(views, out, "csv" if fmt == "csv" else "jsonl")
    except StorageError as exc:
        raise click.ClickException(str(exc)) from exc


@cli.command("run")
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
    type=click.Choice(["failed", "all", "none"]),
    default="failed",
    show_default=True,
    help="Whose raw stream bytes to keep (for runner parse replay).",
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
    quiet: bool,
    progress_interval: float,
    report_path: str | None,
) -> None:
    """Run a job: every provider x case x repeat, streamed, retried, timed, costed and stored.

    At the end the run report is written (an HTML file; see runner report). Exit codes: 0 every
    unit ok and every assertion passed, 1 some units or assertions failed, 2 job or usage error,
    130 interrupted (finish it later with --resume).

    Example: runner run jobs/demo.toml
    """
    import os

    from rich.console import Console

    from runner.jobs import load_job, parse_provider_option
    from runner.progress import choose_mode
    from runner.runs import RunOptions, open_run, read_api_keys, run_until_signalled, summarize

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
        raw_capture="all" if capture == "all" else "none" if capture == "none" else "failed",
        display=choose_mode(quiet=quiet, console=console),
        progress_interval=progress_interval,
    )
    try:
        provider = parse_provider_option(provider_spec) if provider_spec else None
        job = load_job(job_path, provider=provider) if job_path else None
        with open_database(db_url) as database:
            run, job = open_run(database, job, options, environ=os.environ)
            click.echo(f"run {run.id} ({job.name}) in {database!r}", err=True)
            summary = trio.run(
                functools.partial(
                    run_until_signalled,
                    database,
                    run,
                    job,
                    options,
                    api_keys=read_api_keys(job, os.environ),
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
    counts = summary.counts
    click.echo(
        f"run {summary.run_id}: {summary.status}; ok {counts['ok']}, failed {counts['failed']}, "
        f"not done {counts['pending'] + counts['running']}; assertions failed "
        f"{summary.assertions_failed}; spent ${summary.spent_usd:.6f}",
        err=True,
    )
    if summary.status == "interrupted":
        click.echo(f"resume with: runner run --resume {summary.run_id}", err=True)
    sys.exit(summary.exit_code)


# --- reports: thin shells over runner.report.api ----------------------------------------------------


def _day(value: datetime | None, *, end: bool = False) -> datetime | None:
    """A --since/--until date as a UTC instant; --until names the last day included."""
    if value is None:
        return None
    start = value.replace(tzinfo=UTC)
    return start + timedelta(days=1) if end else start


@cli.command("report")
@click.argument("run_ref", metavar="RUN|latest")
@db_option
@click.option(
    "--out", "out_path", type=click.Path(dir_okay=False, path_type=Path), help="Default: report-RUN.html."
)
def report_command(run_ref: str, db_url: str | None, out_path: Path | None) -> None:
    """Write a run's self-contained HTML report (summary, providers, charts, every case).

    Example: runner report latest --out tonight.html
    """
    from runner.report.api import write_run_report

    try:
        with open_database(db_url) as database, database.session() as session:
            path = write_run_report(session, run_ref, out_path)
    except StorageError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"wrote {path}")


@cli.command("diff")
@click.argument("run_a", metavar="RUN_A")
@click.argument("run_b", metavar="RUN_B")
@db_option
@click.option(
    "--out", "out_path", type=click.Path(dir_okay=False, path_type=Path), help="Default: diff-A-B.html."
)
@click.option(
    "--ttft", type=float, default=0.20, show_default=True, help="Max relative TTFT p50/p90 increase."
)
@click.option(
    "--duration", type=float, default=0.20, show_default=True, help="Max relative duration increase."
)
@click.option(
    "--error-rate", type=float, default=0.05, show_default=True, help="Max failed-attempt share increase."
)
@click.option(
    "--cost", type=float, default=0.10, show_default=True, help="Max relative cost-per-unit increase."
)
def diff_command(
    run_a: str,
    run_b: str,
    db_url: str | None,
    out_path: Path | None,
    ttft: float,
    duration: float,
    error_rate: float,
    cost: float,
) -> None:
    """Compare run B against baseline run A; exit 1 when anything regressed beyond its threshold.

    Units are matched by provider, case and repeat.

    Example: runner diff r-abc123 latest --ttft 0.3
    """
    from runner.report.api import build_diff_report, write_diff_report
    from runner.report.diff import Thresholds

    limits = Thresholds(ttft=ttft, duration=duration, error_rate=error_rate, cost=cost)
    try:
        with open_database(db_url) as database, database.session() as session:
            context = build_diff_report(session, run_a, run_b, thresholds=limits)
    except StorageError as exc:
        raise click.ClickException(str(exc)) from exc
    path = write_diff_report(context, out_path)
    click.echo(f"wrote {path}: {context.regressions} regressions, {context.answers_changed} answers changed")
    if context.regressions:
        sys.exit(1)


@cli.command("trend")
@click.argument("job_name", metavar="JOB")
@db_option
@click.option("--last", type=click.IntRange(min=1), default=10, show_default=True, help="How many runs.")
@click.option(
    "--out", "out_path", type=click.Path(dir_okay=False, path_type=Path), help="Default: trend-JOB.html."
)
def trend_command(job_name: str, db_url: str | None, last: int, out_path: Path | None) -> None:
    """Chart a job's last N runs per provider: latency, errors, retries, assertions and cost.

    Example: runner trend nightly-smoke --last 14
    """
    from runner.report.api import build_trend_report, write_trend_report

    try:
        with open_database(db_url) as database, database.session() as session:
            context = build_trend_report(session, job_name, last=last)
    except StorageError as exc:
        raise click.ClickException(str(exc)) from exc
    if not context.runs:
        raise click.ClickException(f"no runs of job {job_name!r} in this database")
    click.echo(f"wrote {write_trend_report(context, out_path)}")


@cli.command("cost")
@db_option
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), help="First day included (UTC).")
@click.option("--until", type=click.DateTime(["%Y-%m-%d"]), help="Last day included (UTC).")
@click.option(
    "--by", default="provider", show_default=True, help="Comma-separated: provider,model,day,tag,job."
)
@click.option(
    "--html", "html_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write HTML here."
)
def cost_command(
    db_url: str | None, since: datetime | None, until: datetime | None, by: str, html_path: Path | None
) -> None:
    """Tokens and USD by group, reported vs computed cost, and cost wasted on failed attempts.

    Example: runner cost --since 2025-11-01 --by provider,day --html cost.html
    """
    from rich.console import Console

    from runner.report.api import build_cost_report, write_cost_report
    from runner.report.cost import cost_table

    groups = tuple(name.strip() for name in by.split(",") if name.strip())
    try:
        with open_database(db_url) as database, database.session() as session:
            context = build_cost_report(session, by=groups, since=_day(since), until=_day(until, end=True))
    except StorageError as exc:
        raise click.ClickException(str(exc)) from exc
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--by") from exc
    # Piped output has no terminal width; rich would squeeze the table into 80 columns.
    Console(width=None if sys.stdout.isatty() else 200).print(cost_table(context))
    if html_path is not None:
        click.echo(f"wrote {write_cost_report(context, html_path)}")


@cli.command("bench")
@click.option("--streams", type=click.IntRange(min=1), default=200, show_default=True, help="Streams (N).")
@click.option(
    "--chunks", type=click.IntRange(min=1), default=100, show_default=True, help="Content chunks per stream."
)
@click.option(
    "--delay-ms", type=click.FloatRange(min=0), default=0.0, show_default=True, help="Gap between chunks."
)
@click.option(
    "--concurrency", type=click.IntRange(min=1), default=50, show_default=True, help="Streams in flight."
)
@click.option(
    "--clients", default="runner,httpx,openai", show_default=True, help="Which clients, in this order."
)
@click.option("--repeat", type=click.IntRange(min=1), default=1, show_default=True, help="Median of K runs.")
def bench_command(
    streams: int, chunks: int, delay_ms: float, concurrency: int, clients: str, repeat: int
) -> None:
    """Stream one load through runner, bare httpx and the openai SDK on one simulator; compare their cost.

    The simulator runs pinned to core 0, each client in turn pinned to core 1. Prints CPU per
    content chunk, wall time against the ideal and peak RSS per client, and runner/httpx CPU.
    Exit code 1 when any stream failed its check.

    Example: runner bench --streams 2000 --chunks 200 --concurrency 100 --repeat 3
    """
    from runner.bench import BenchLoad, format_report, parse_clients, run_bench

    try:
        names = parse_clients(clients)
    except ConfigError as exc:
        fail(str(exc))
    load = BenchLoad(streams=streams, chunks=chunks, delay_ms=delay_ms, concurrency=concurrency)
    report = run_bench(load, names, repeat=repeat, echo=lambda line: click.echo(line, err=True))
    click.echo(format_report(report))
    sys.exit(0 if report.all_ok else 1)
