"""Option helpers every command group shares: ``--db``, reading a database, output paths, the error exit."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from runner.errors import StorageError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from runner.store.db import Database


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``message`` as one ``error: ...`` line and exit with ``code`` (2: a job or usage error)."""
    click.echo(f"error: {one_line(message)}", err=True)
    sys.exit(code)


def echo_json(data: Any) -> None:
    """``data`` as one indented JSON document on stdout (``--json`` of every command)."""
    import orjson

    from runner import jsontext

    sys.stdout.buffer.write(jsontext.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")
    sys.stdout.buffer.flush()


def one_line(message: str) -> str:
    """``message`` on one line: driver errors span several, and SQLAlchemy adds a link to its FAQ."""
    lines = [line.strip() for line in message.splitlines()]
    return " ".join(line for line in lines if line and not line.startswith("(Background on this error"))


def db_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The ``--db URL`` option (default ``$RUNNER_DB``, else ``runner.db`` in the working directory)."""
    return click.option(
        "--db",
        "db_url",
        envvar="RUNNER_DB",
        metavar="URL",
        callback=_check_db_url,
        help="Default: $RUNNER_DB, else sqlite:///runner.db. PostgreSQL: postgresql+psycopg://user@host/db.",
    )(fn)


def _check_db_url(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    # At parse time, before a job is read or a file created: `--db results.db` is a common slip.
    if value is not None and "://" not in value:
        raise click.BadParameter(f"{value!r} is not a database URL: did you mean sqlite:///{value}?")
    return value


@contextlib.contextmanager
def reading(db_url: str | None) -> Iterator[Database]:
    """The database of a read command, opened read-only; a storage error exits 2 naming the database.

    Read commands never create a database or migrate one: a typo in ``--db`` must not leave an empty
    ``runner.db`` behind, nor silently report "no runs" from the wrong place.
    """
    from runner.store.db import open_database_readonly

    try:
        with open_database_readonly(db_url) as database:
            yield database
    except StorageError as exc:
        fail_storage(exc, db_url)


def fail_storage(exc: StorageError, db_url: str | None) -> NoReturn:
    """Exit 2 with ``exc`` on one line, naming the database unless the message already does."""
    from runner.store.db import display_url, resolve_url

    shown = display_url(resolve_url(db_url))
    message = one_line(str(exc))
    fail(message if shown in message else f"{message} (database {shown})")


def check_output_path(path: str | Path | None, option: str, *, makes_folders: bool = False) -> None:
    """Exit 2 now, before any work, when ``path`` (None: a file in the working directory) cannot be written.

    A run can take hours; finding out at its end that its report has nowhere to go loses the report.
    With ``makes_folders`` (the HTML reports create missing folders) the nearest existing folder above
    ``path`` must be writable; otherwise ``path``'s own folder must exist.
    """
    target = Path.cwd() / "report.html" if path is None else Path(path).absolute()
    where = f"{option} {path}" if path is not None else f"the working directory (the default of {option})"
    if target.is_dir():
        fail(f"{where} is a directory: name a file in it")
    folder = target.parent
    if makes_folders:
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
    if not folder.is_dir():
        missing = "is not a directory" if folder.exists() else "does not exist; create it first"
        fail(f"cannot write {where}: {folder} {missing}")
    writable = os.access(target, os.W_OK) if target.exists() else os.access(folder, os.W_OK | os.X_OK)
    if not writable:
        fail(f"cannot write {where}: permission denied in {folder}; choose another place")
