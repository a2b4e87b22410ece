"""Engine fixtures: a fresh PostgreSQL schema for multi-process runs (fails, never skips, under CI=true)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from runner.store.db import open_database
from tests.run.stores import database_url

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from runner.store.db import Database


@pytest.fixture
def pg_database(tmp_path: Path) -> Iterator[Database]:
    """A migrated database in a new PostgreSQL schema, dropped afterwards."""
    with database_url("postgresql", tmp_path) as (url, _schema), open_database(url) as database:
        yield database


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated database, made up front: a SQLite file in tmp_path, or a fresh PostgreSQL schema."""
    if request.param == "postgresql":
        yield request.getfixturevalue("pg_database")
        return
    with open_database(f"sqlite:///{tmp_path / 'runner.db'}") as db:
        yield db
