"""Both databases for engine tests: a SQLite file, or a fresh PostgreSQL schema dropped afterwards."""

from __future__ import annotations

import contextlib
import os
import secrets
from typing import TYPE_CHECKING

import psycopg
import pytest

from tests.store.conftest import PG_CONNINFO, pg_url

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


@contextlib.contextmanager
def database_url(backend: str, tmp_path: Path) -> Iterator[tuple[str, str | None]]:
    """(URL, PostgreSQL schema or None) of an empty database of ``backend``."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'runner.db'}", None
        return
    schema = f"rt_run_{secrets.token_hex(4)}"
    try:
        with psycopg.connect(PG_CONNINFO, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
    except psycopg.OperationalError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL at 127.0.0.1:5432 is unreachable under CI=true: {exc}")
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    try:
        yield pg_url(schema), schema
    finally:
        with psycopg.connect(PG_CONNINFO, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
