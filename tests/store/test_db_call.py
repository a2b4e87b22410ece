"""``Database.call``: one unit of database work, retried on a transient fault (a SQLite lock held past
the busy timeout, a dropped PostgreSQL connection), and a SQLite file deleted or replaced under it
noticed; every failure is one line naming the database and the cause (issue 10, item 4)."""

from __future__ import annotations

import secrets
import sqlite3
import threading
from typing import TYPE_CHECKING

import psycopg
import pytest
from sqlalchemy import text

from runner.errors import StorageError
from runner.store.db import open_database
from tests.store.conftest import PG_CONNINFO, pg_url

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from runner.store.db import Database


@pytest.fixture
def quick_lock_db(sqlite_file: Path) -> Iterator[Database]:
    """The file opened with a 50 ms busy timeout (the URL's ?timeout=)."""
    with open_database(f"sqlite:///{sqlite_file}?timeout=0.05") as database:
        yield database


def write(database: Database) -> int:
    with database.engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS probe (x INTEGER)"))
        conn.execute(text("INSERT INTO probe VALUES (1)"))
        return int(conn.execute(text("SELECT count(*) FROM probe")).scalar_one())


def test_a_lock_held_past_the_busy_timeout_is_waited_out(
    sqlite_file: Path, quick_lock_db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    holder = sqlite3.connect(sqlite_file, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    # Let go after the first try failed, during the first wait (0.5 s).
    release = threading.Timer(0.3, holder.execute, args=("ROLLBACK",))
    release.start()
    try:
        assert quick_lock_db.call(write, quick_lock_db) == 1
    finally:
        release.join()
        holder.close()
    (warning,) = [r.getMessage() for r in caplog.records if "trying again" in r.getMessage()]
    assert warning.startswith(f"database sqlite:///{sqlite_file}?timeout=0.05: database is locked")


def test_a_deleted_file_is_one_line_naming_the_database(sqlite_file: Path) -> None:
    with open_database(f"sqlite:///{sqlite_file}") as database:
        assert database.call(write, database) == 1
        sqlite_file.unlink()
        with pytest.raises(StorageError) as caught:
            database.call(write, database)
    message = str(caught.value)
    assert message == (
        f"database sqlite:///{sqlite_file}: the file was deleted while runner was using it "
        "(what was written since then is gone)"
    )


def test_a_replaced_file_is_noticed(sqlite_file: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with open_database(f"sqlite:///{other}"):
        pass
    with open_database(f"sqlite:///{sqlite_file}") as database:
        other.replace(sqlite_file)
        with pytest.raises(StorageError, match="the file was replaced"):
            database.call(write, database)


def test_a_lasting_fault_is_not_retried_and_says_its_cause_on_one_line(sqlite_file: Path) -> None:
    with open_database(f"sqlite:///{sqlite_file}") as database:

        def broken() -> None:
            with database.engine.begin() as conn:
                conn.execute(text("SELECT * FROM no_such_table"))

        with pytest.raises(StorageError) as caught:
            database.call(broken)
    assert str(caught.value) == (
        f"database sqlite:///{sqlite_file}: no such table: no_such_table (SQLITE_ERROR)"
    )


@pytest.fixture
def pg_schema() -> Iterator[str]:
    schema = f"rt_call_{secrets.token_hex(4)}"
    try:
        with psycopg.connect(PG_CONNINFO, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    try:
        yield schema
    finally:
        with psycopg.connect(PG_CONNINFO, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.mark.postgres
def test_a_killed_postgresql_connection_is_replaced(pg_schema: str) -> None:
    app = f"rt_call_{secrets.token_hex(4)}"
    with open_database(f"{pg_url(pg_schema)}&application_name={app}") as database:
        assert database.call(write, database) == 1
        with database.engine.connect() as held:  # a connection in use when the server kills it
            with psycopg.connect(PG_CONNINFO, autocommit=True) as admin:
                killed = admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
                    (app,),
                ).fetchall()
            assert killed

            def through_the_killed_connection() -> int:
                result = held.execute(text("SELECT count(*) FROM probe")).scalar_one()
                return int(result)

            # That connection is gone for good (the retry finds it invalidated): one line says why.
            with pytest.raises(StorageError, match=r"^database postgresql\+psycopg://") as caught:
                database.call(through_the_killed_connection)
            assert "\n" not in str(caught.value)
            assert "Background on this error" not in str(caught.value)
        # The pool's connections were killed too: pre-ping replaces them, no error at all.
        assert database.call(write, database) == 2
