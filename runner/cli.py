"""The ``runner`` command: thin click shells that parse options and call one function each."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from runner import __version__
from runner.errors import StorageError
from runner.export import write_export
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
