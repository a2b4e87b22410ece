"""Opening a database: URL resolution, engine and pragmas, migrations on open, error translation."""

from __future__ import annotations

import contextlib
import functools
import importlib.resources
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, ParamSpec, TypeVar
from urllib.parse import quote

import orjson
from sqlalchemy import create_engine, event, make_url, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from runner import jsontext
from runner.errors import StorageError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from types import TracebackType

    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from sqlalchemy.engine import Connection, Engine

DEFAULT_URL: Final = "sqlite:///runner.db"
SQLITE_BUSY_TIMEOUT_MS: Final = 30_000  # a SQLite URL's ?timeout=SECONDS replaces it
# A dropped connection or a lock held past the busy timeout is retried this many times in all, the
# waits doubling from the first: long enough for a restart or a long reader, short enough that a
# database which is really gone stops the run within seconds (after SQLite's busy timeout).
TRANSIENT_TRIES: Final = 4
TRANSIENT_FIRST_WAIT: Final = 0.5
# Serializes concurrent `open_database` migrations on one PostgreSQL database (any constant works).
PG_MIGRATION_LOCK: Final = 0x72756E6E6572

P = ParamSpec("P")
T = TypeVar("T")

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def map_exceptions() -> Iterator[None]:
    """Translate SQLAlchemy (and DBAPI) errors into StorageError; none escapes runner.store."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise StorageError(f"database error: {exc}") from exc


def storage_errors(fn: Callable[P, T]) -> Callable[P, T]:
    """Decorate a store function so it raises StorageError instead of SQLAlchemy errors."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        with map_exceptions():
            return fn(*args, **kwargs)

    return wrapper


def is_transient(exc: BaseException) -> bool:
    """A fault that may pass: the connection dropped (SQLAlchemy's ``is_disconnect``, e.g. after
    ``pg_terminate_backend`` or a server restart), or SQLite's lock was held past the busy timeout."""
    cause = exc.__cause__ if isinstance(exc, StorageError) else exc
    if isinstance(cause, DBAPIError):
        if cause.connection_invalidated:
            return True
        return "database is locked" in str(cause.orig)
    return False


def cause_of(exc: BaseException) -> str:
    """The database's own reason, on one line (SQLAlchemy's message adds SQL and a help link)."""
    cause = exc.__cause__ if isinstance(exc, StorageError) and exc.__cause__ is not None else exc
    if isinstance(cause, DBAPIError) and cause.orig is not None:
        cause = cause.orig
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    said = lines[0] if lines else type(cause).__name__
    said = said.split(" (Background on this error at:")[0]  # SQLAlchemy's help link
    # sqlite3 names the exact code: "disk I/O error" alone does not say it was a write that failed.
    code = getattr(cause, "sqlite_errorname", None)
    return f"{said} ({code})" if code else said


def resolve_url(url: str | None) -> str:
    """The database URL: ``url``, else ``$RUNNER_DB``, else ``runner.db`` in the working directory."""
    return url or os.environ.get("RUNNER_DB") or DEFAULT_URL


def data_dir(name: str, marker: str) -> Path:
    """A folder shipped beside the package (``reports``, ``migrations``), found by a file it holds.

    Inside an installed wheel it is ``runner/_data/<name>``; in a source checkout (an editable
    install) it is the top-level ``<name>/``. Resolved from this file, never from the current
    directory, so every command works from anywhere.

    Raises:
        FileNotFoundError: neither place holds ``marker``.
    """
    packaged = Path(str(importlib.resources.files("runner").joinpath("_data", name)))
    source = Path(__file__).resolve().parents[2] / name
    for candidate in (packaged, source):
        if (candidate / marker).is_file():
            return candidate
    raise FileNotFoundError(f"{name} not found (looked in {packaged} and {source})")


def migrations_dir() -> Path:
    """The Alembic ``migrations`` folder, from an installed wheel or from the source tree."""
    try:
        return data_dir("migrations", "env.py")
    except FileNotFoundError as exc:
        raise StorageError(str(exc)) from exc


def alembic_config(connection: Connection) -> Config:
    """An Alembic config bound to ``connection`` (no alembic.ini needed)."""
    from alembic.config import Config  # lazily: see upgrade()

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["connection"] = connection
    return config


def _json_dumps(value: Any) -> str:
    # jsontext: provider data may nest deeper than orjson encodes; storing must not fail on it.
    return jsontext.dumps_text(value, option=orjson.OPT_NON_STR_KEYS)


def _sqlite_on_connect(busy_timeout_ms: int, dbapi_connection: Any, _record: Any) -> None:
    # Take transaction control from the sqlite3 module so that BEGIN is ours (see _sqlite_on_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_on_begin(connection: Connection) -> None:
    # A write transaction takes SQLite's write lock up front (BEGIN IMMEDIATE): a deferred one that
    # reads, then writes, can fail with SQLITE_BUSY instead of waiting out busy_timeout.
    mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
    connection.exec_driver_sql(f"BEGIN {mode}")


class Database:
    """An open database: its engine and a session factory. Close it (or use ``with``) when done."""

    def __init__(self, url: str, engine: Engine) -> None:
        self.url = url
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"
        self._sessions = sessionmaker(engine, expire_on_commit=False, autobegin=True)
        self._file = _sqlite_file(engine) if self.is_sqlite else None
        self._file_id: tuple[int, int] | None = None  # (st_dev, st_ino) once the file exists

    @property
    def display_url(self) -> str:
        """The URL without its password: what messages and logs name."""
        return display_url(self.url)

    def pin_file(self) -> None:
        """Remember which file a SQLite database is, so ``call`` notices it deleted or replaced."""
        if self._file is not None and self._file.exists():
            stat = self._file.stat()
            self._file_id = (stat.st_dev, stat.st_ino)

    def check_file(self) -> None:
        """Raise StorageError if the SQLite file was deleted or replaced since ``pin_file``.

        SQLite keeps writing to a deleted file through the connections it has open, and the data
        vanishes with the last of them: a run would report results that no file holds.
        """
        if self._file_id is None or self._file is None:
            return
        try:
            stat = self._file.stat()
        except FileNotFoundError:
            found = None
        else:
            found = (stat.st_dev, stat.st_ino)
        if found != self._file_id:
            what = "deleted" if found is None else "replaced"
            raise StorageError(
                f"database {self.display_url}: the file was {what} while runner was using it "
                "(what was written since then is gone)"
            )

    def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)``, a unit of database work that opens its own sessions and
        transactions, retried on transient faults (``is_transient``), at most ``TRANSIENT_TRIES``
        times with doubling waits. Blocking: call it on a worker thread.

        Raises:
            StorageError: one line naming the database and the cause, the database error as its cause.
        """
        wait = TRANSIENT_FIRST_WAIT
        for tries in range(1, TRANSIENT_TRIES + 1):
            try:
                self.check_file()
                result = fn(*args, **kwargs)
                # After the work too: a commit into a deleted file reached no disk.
                self.check_file()
            except (StorageError, SQLAlchemyError) as exc:
                if isinstance(exc, StorageError) and exc.__cause__ is None:
                    raise  # already ours, and final (a missing run, a deleted file)
                if not is_transient(exc) or tries == TRANSIENT_TRIES:
                    after = f" (after {tries} tries)" if tries > 1 else ""
                    raise StorageError(f"database {self.display_url}: {cause_of(exc)}{after}") from exc
                logger.warning("database %s: %s; trying again in %g s", self.display_url, cause_of(exc), wait)
                time.sleep(wait)
                wait *= 2
            else:
                return result
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def session(self) -> Session:
        """A new Session; repository functions open and commit their own transactions on it."""
        return self._sessions()

    def close(self) -> None:
        """Dispose of the engine's connections."""
        self.engine.dispose()

    def __enter__(self) -> Database:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Database({display_url(self.url)!r})"


def create_db_engine(url: str, *, connect_args: dict[str, Any] | None = None) -> Engine:
    """A sync engine for ``url`` with runner's pragmas (SQLite) and JSON codec."""
    # hide_parameters: bound values (model output, prompts) stay out of error messages and logs.
    options: dict[str, Any] = {"connect_args": connect_args} if connect_args else {}
    if url.startswith("postgresql"):
        # Plain executemany (psycopg pipelines it) beats SQLAlchemy's multi-VALUES rewrite here:
        # psycopg parses each long rewritten statement again (benchmarks/bench_store.py).
        options["use_insertmanyvalues"] = False
        # A pooled connection the server dropped (restart, pg_terminate_backend, idle timeout) is
        # replaced at checkout instead of failing the next transaction.
        options["pool_pre_ping"] = True
    engine = create_engine(
        url, json_serializer=_json_dumps, json_deserializer=orjson.loads, hide_parameters=True, **options
    )
    if engine.dialect.name == "sqlite":
        timeout = make_url(url).query.get("timeout")
        busy_ms = round(float(str(timeout)) * 1000) if timeout else SQLITE_BUSY_TIMEOUT_MS
        event.listen(engine, "connect", functools.partial(_sqlite_on_connect, busy_ms))
        event.listen(engine, "begin", _sqlite_on_begin)
    return engine


@storage_errors
def upgrade(database: Database, revision: str = "head") -> None:
    """Apply the Alembic migrations up to ``revision`` (idempotent)."""
    # Imported here, not at the top: alembic takes about a second to import, and every CLI start
    # (``runner --help`` included) imports this module.
    from alembic import command

    with database.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_MIGRATION_LOCK})
        command.upgrade(alembic_config(connection), revision)


@storage_errors
def downgrade(database: Database, revision: str = "base") -> None:
    """Revert the Alembic migrations down to ``revision`` (tests and manual repair only)."""
    from alembic import command  # lazily: see upgrade()

    with database.engine.begin() as connection:
        command.downgrade(alembic_config(connection), revision)


def _sqlite_file(engine: Engine) -> Path | None:
    """The file a SQLite engine opens (None for an in-memory database)."""
    name = engine.url.database
    if not name or name == ":memory:" or name.startswith("file:"):
        return None
    return Path(name).resolve()


def display_url(url: str) -> str:
    """``url`` as a user may see it: the password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (SQLAlchemyError, ValueError):
        return "(unparsable URL)"


def open_database(url: str | None = None, *, migrate: bool = True) -> Database:
    """Open (creating if needed) the database at ``url`` and migrate it to the current schema.

    Args:
        url: a SQLAlchemy URL (``sqlite:///runner.db``, ``postgresql+psycopg://user@host/db``);
            None resolves through ``resolve_url``.
        migrate: apply pending migrations (the default; ``False`` only for migration tests).

    Raises:
        StorageError: the URL is invalid, the server unreachable or a migration failed.
    """
    resolved = resolve_url(url)
    check_url(resolved)
    try:
        engine = create_db_engine(resolved)
    except (SQLAlchemyError, ValueError, ImportError) as exc:
        raise StorageError(f"cannot open database {display_url(resolved)}: {exc}") from exc
    database = Database(resolved, engine)
    if migrate:
        try:
            refuse_newer_schema(database)
            upgrade(database)
        except BaseException:
            database.close()
            raise
    database.pin_file()
    return database


# -- reading without writing, and the schema a database was made with --------------------------------


def check_url(url: str) -> None:
    """Refuse a bare file name given where a URL belongs (``--db results.db``), naming the fix.

    Raises:
        StorageError: ``url`` has no scheme.
    """
    if "://" not in url:
        raise StorageError(
            f"database {url!r} is not a URL: did you mean sqlite:///{url} "
            "(or postgresql+psycopg://user@host/db)?"
        )


def open_database_readonly(url: str | None = None, *, enforced: bool = False) -> Database:
    """Open an existing database to read it: no file is created and no migration runs.

    ``enforced`` (``runner view``, a long-lived server) has the database refuse writes too: SQLite opens
    the file with ``mode=ro`` and PostgreSQL sessions start with ``default_transaction_read_only``.

    Raises:
        StorageError: no SQLite file at the path, no runner schema in it, a schema older or newer
            than this runner's, or the database cannot be reached. Each message names the database.
    """
    resolved = resolve_url(url)
    check_url(resolved)
    shown = display_url(resolved)
    try:
        parsed = make_url(resolved)
        engine = create_db_engine(resolved)
    except (SQLAlchemyError, ValueError, ImportError) as exc:
        raise StorageError(f"cannot open database {shown}: {exc}") from exc
    file = parsed.database if engine.dialect.name == "sqlite" else None
    # Connecting to a missing SQLite file would create it: look first.
    if file and file != ":memory:" and not file.startswith("file:") and not Path(file).is_file():
        engine.dispose()
        raise StorageError(
            f"no database at {Path(file).resolve()} ({shown}): nothing has been run into it; "
            "name the database with --db URL or RUNNER_DB, or run a job first"
        )
    if enforced:
        engine.dispose()
        engine = _readonly_engine(resolved, file)
    database = Database(resolved, engine)
    try:
        refuse_newer_schema(database)
        _require_current_schema(database)
    except BaseException:
        database.close()
        raise
    return database


def _readonly_engine(url: str, sqlite_file: str | None) -> Engine:
    """An engine on ``url`` whose connections cannot write (see ``open_database_readonly``)."""
    if sqlite_file:
        # A file: URI opened mode=ro: SQLite itself refuses every write, whatever a bug might try.
        uri = f"file:{quote(str(Path(sqlite_file).resolve()))}?mode=ro&uri=true"
        return create_db_engine(f"sqlite+pysqlite:///{uri}")
    engine = create_db_engine(url)
    if engine.dialect.name == "postgresql":
        engine.dispose()
        # A server-side default for the session (libpq options): unlike a SET run at connect, it
        # cannot be rolled back with the transaction that ran it. Options of the URL's own are kept.
        given = make_url(url).query.get("options")
        options = " ".join([*([str(given)] if given else []), "-c default_transaction_read_only=on"])
        return create_db_engine(url, connect_args={"options": options})
    return engine


@storage_errors
def refuse_newer_schema(database: Database) -> None:
    """Fail when a newer runner migrated ``database`` past every revision this runner knows.

    Alembic would stop with "Can't locate revision"; this says which runner made it instead.

    Raises:
        StorageError: the database's schema revision is unknown to this runner.
    """
    current = _current_revision(database)
    if current is None or current in _known_revisions():
        return
    from runner import __version__

    made_by = _newest_runner_version(database)
    raise StorageError(
        f"database {display_url(database.url)} was made by a newer runner "
        f"({f'runner {made_by}' if made_by else 'version unknown'}, schema revision {current}); "
        f"this is runner {__version__}: upgrade runner (pip install --upgrade runner) to use it"
    )


@storage_errors
def _require_current_schema(database: Database) -> None:
    # Reading an older schema through the current models fails in odd places: name the fix instead.
    current = _current_revision(database)
    head = _head_revision()
    shown = display_url(database.url)
    if current is None:
        raise StorageError(f"database {shown} holds no runner tables: name the right one with --db URL")
    if current != head:
        raise StorageError(
            f"database {shown} has an older schema (revision {current}, this runner's is {head}): "
            f"migrate it with runner db upgrade --db {shown}"
        )


def _current_revision(database: Database) -> str | None:
    from alembic.runtime.migration import MigrationContext  # lazily: see upgrade()

    with database.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def _script_directory() -> ScriptDirectory:
    from alembic.config import Config  # lazily: see upgrade()
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    return ScriptDirectory.from_config(config)


def _known_revisions() -> set[str]:
    return {script.revision for script in _script_directory().walk_revisions()}


def _head_revision() -> str | None:
    return _script_directory().get_current_head()


def _newest_runner_version(database: Database) -> str | None:
    """The runner version the latest run names (a newer schema may lack the column: then None)."""
    try:
        with database.engine.connect() as connection:
            query = text("SELECT runner_version FROM runs ORDER BY started_at DESC LIMIT 1")
            version = connection.execute(query).scalar()
    except SQLAlchemyError:
        return None
    return str(version) if version else None
