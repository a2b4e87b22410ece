"""Option helpers every command group shares: ``--db`` and the usage-error exit."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, NoReturn

import click

if TYPE_CHECKING:
    from collections.abc import Callable


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
