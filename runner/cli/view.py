"""``runner view``: serve the database to a browser, read-only (a thin shell over ``runner.view``)."""

from __future__ import annotations

import click

from runner.cli.options import db_option, fail, fail_storage
from runner.errors import StorageError


@click.command("view")
@db_option
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback by default)."
)
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="Port (0: any free one)."
)
def view_command(db_url: str | None, host: str, port: int) -> None:
    """Browse the runs of the database in a web browser: runs, failures, units and their raw streams.

    Read-only: SQLite is opened with mode=ro, PostgreSQL in read-only transactions. Ctrl-C stops it (exit 0).

    Example: runner view --db sqlite:///runner.db --port 8000
    """
    from runner.store.db import open_database_readonly
    from runner.view import serve

    try:
        database = open_database_readonly(db_url, enforced=True)
    except StorageError as exc:
        fail_storage(exc, db_url)
    try:
        serve(
            database,
            host=host,
            port=port,
            announce=lambda url: click.echo(
                f"runner view: serving {database.display_url} read-only at {url} (Ctrl-C stops)"
            ),
        )
    except OSError as exc:
        # The port is taken, or the address is not this machine's.
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another with --port")
    finally:
        database.close()
    click.echo("runner view: stopped")
