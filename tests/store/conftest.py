"""Storage fixtures: every test runs on a migrated SQLite file and on a fresh PostgreSQL schema.

PostgreSQL is at 127.0.0.1:5432 (user postgres, database test). Locally its half is skipped when the
server is unreachable; under CI=true it must run, and an unreachable server fails the session.
"""

from __future__ import annotations

import os
import secrets
from typing import TYPE_CHECKING

import psycopg
import pytest

from runner.store.db import open_database

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from sqlalchemy.orm import Session

    from runner.store.db import Database

PG_CONNINFO = "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=3"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def pg_url(schema: str) -> str:
    """A URL whose connections work inside ``schema`` (search_path)."""
    return f"{PG_URL}?options=-csearch_path%3D{schema}"


@pytest.fixture(scope="session")
def pg_prefix() -> Iterator[str]:
    """A per-session schema name prefix; every schema with it is dropped when the session ends."""
    try:
        with psycopg.connect(PG_CONNINFO, autocommit=True):
            pass
    except psycopg.OperationalError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL at 127.0.0.1:5432 is unreachable under CI=true: {exc}")
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    prefix = f"rt_{secrets.token_hex(4)}"
    yield prefix
    with psycopg.connect(PG_CONNINFO, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", (prefix + "%",)
        ).fetchall()
        for (name,) in rows:
            conn.execute(f'DROP SCHEMA "{name}" CASCADE')


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database's URL: a SQLite file in tmp_path, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'runner.db'}"
        return
    prefix = request.getfixturevalue("pg_prefix")
    schema = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(PG_CONNINFO, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    yield pg_url(schema)
    with psycopg.connect(PG_CONNINFO, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    """The database at ``db_url``, migrated to head."""
    with open_database(db_url) as database:
        yield database


@pytest.fixture
def session(db: Database) -> Iterator[Session]:
    """A session on ``db``; repository functions open their own transactions on it."""
    with db.session() as sess:
        yield sess
