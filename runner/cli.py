"""The ``runner`` command: thin click shells that parse options and call one function each."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click
import trio

from runner import __version__
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
    try:
        trio.run(run_simulator, config, host, port, dialects or DIALECT_NAMES, click.echo)
    except KeyboardInterrupt:
        click.echo("simulator stopped")
        sys.exit(130)


def main() -> None:
    """Entry point of the ``runner`` console script."""
    cli()


def db_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The ``--db URL`` option (default ``$RUNNER_DB``, else ``runner.db`` in the working directory)."""
    return click.option(
        "--db",
        "db_url",
        envvar="RUNNER_DB",
        metavar="URL",
        help="Database URL: sqlite:///runner.db (default) or postgresql+psycopg://user@host/db.",
    )(fn)


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
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True)
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
