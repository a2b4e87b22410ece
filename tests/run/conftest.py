"""Engine fixtures: a fresh PostgreSQL schema for multi-process runs (fails, never skips, under CI=true)."""

from __future__ import annotations

import os
import secrets
from typing import TYPE_CHECKING

import psycopg
import pytest

from runner.store.db import open_database
from tests.store.conftest import PG_CONNINFO, pg_url

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from runner.store.db import Database


@pytest.fixture
def pg_database() -> Iterator[Database]:
    """A migrated database in a new PostgreSQL schema, dropped afterwards."""
    schema = f"rt_engine_{secrets.token_hex(4)}"
    try:
        with psycopg.connect(PG_CONNINFO, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
    except psycopg.OperationalError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL at 127.0.0.1:5432 is unreachable under CI=true: {exc}")
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    try:
        with open_database(pg_url(schema)) as database:
            yield database
    finally:
        with psycopg.connect(PG_CONNINFO, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated database, made up front: a SQLite file in tmp_path, or a fresh PostgreSQL schema."""
    if request.param == "postgresql":
        yield request.getfixturevalue("pg_database")
        return
    with open_database(f"sqlite:///{tmp_path / 'runner.db'}") as db:
        yield db
