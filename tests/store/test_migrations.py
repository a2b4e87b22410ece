"""Alembic migrations: head matches the models, downgrade and upgrade round-trip, resolution works."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from runner.store.db import alembic_config, data_dir, downgrade, migrations_dir, open_database, upgrade
from runner.store.models import Base

TABLES = {"runs", "units", "attempts", "results"}


def test_upgrade_empty_database_has_no_drift(db_url: str) -> None:
    """An empty database upgraded to head has exactly the schema the models declare."""
    with open_database(db_url) as database, database.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
        assert set(inspect(conn).get_table_names()) >= TABLES


def test_downgrade_to_base_and_back(db_url: str) -> None:
    """Downgrading to base drops every table and upgrading again restores them."""
    with open_database(db_url) as database:
        downgrade(database, "base")
        with database.engine.connect() as conn:
            assert not TABLES & set(inspect(conn).get_table_names())
        upgrade(database)
        with database.engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) >= TABLES
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def test_open_twice_is_idempotent(db_url: str) -> None:
    """Opening an already migrated database leaves it at the single head revision."""
    with open_database(db_url):
        pass
    with open_database(db_url) as database, database.engine.connect() as conn:
        script = ScriptDirectory.from_config(alembic_config(conn))
        assert MigrationContext.configure(conn).get_current_revision() == script.get_current_head()


def test_migrations_dir_resolves_to_the_source_tree() -> None:
    """In an editable install the migrations folder resolves to the repository's, with one head."""
    folder = migrations_dir()
    assert (folder / "env.py").is_file()
    assert len(list((folder / "versions").glob("*.py"))) >= 1


def test_data_dir_finds_both_shipped_folders() -> None:
    """One resolver finds the templates and the migrations, and names where it looked when it fails."""
    assert (data_dir("reports", "_base.html") / "run.html").is_file()
    assert data_dir("migrations", "env.py") == migrations_dir()
    with pytest.raises(FileNotFoundError, match="nowhere not found"):
        data_dir("nowhere", "x")
