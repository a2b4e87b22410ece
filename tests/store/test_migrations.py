"""Alembic migrations: head matches the models, downgrade and upgrade round-trip, resolution works."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from runner.store import repository
from runner.store.db import alembic_config, data_dir, downgrade, migrations_dir, open_database, upgrade
from runner.store.models import Base
from runner.store.records import GradingRequest
from runner.store.repository import limits
from runner.store.repository.limits import ProviderBudget

TABLES = {"runs", "units", "attempts", "results", "limit_buckets", "limit_holders", "limit_workers"}


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


def test_upgrading_a_0001_database_keeps_its_data(db_url: str) -> None:
    """A database written at 0001 upgrades in place: rows kept, new columns at their documented
    defaults (token 0, not superseded, retry verdict unknown), and the queue works on it."""
    with open_database(db_url, migrate=False) as database:
        upgrade(database, "0001")
        with database.engine.begin() as conn:
            conn.execute(text(RUN_0001), {"spec": "{}", "prices": "{}", "tags": "[]", "now": NOW})
            conn.execute(text(UNITS_0001))
            conn.execute(text(ATTEMPT_0001), {"now": NOW})
        upgrade(database)
        with database.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
            rows = conn.execute(text("SELECT key, lease_token, attempts FROM units ORDER BY id")).all()
            assert [tuple(row) for row in rows] == [("p/c/1", 0, 1), ("p/c/2", 0, 0)]
        with database.session() as session:
            (done, pending) = repository.iter_units(session, "r-old001")
            assert done.attempts[0].error is not None
            assert done.attempts[0].error.message == "HTTP 500"
            assert done.attempts[0].error.retryable is None  # unknown, not a made-up False
            assert not done.attempts[0].superseded
            (claimed,) = repository.claim_units(session, "r-old001", "w", limit=5, lease_seconds=30)
            assert (claimed.key, claimed.lease_token) == (pending.key, 1)


NOW = "2025-06-01 12:00:00"
RUN_0001 = (
    "INSERT INTO runs (id, job_name, job_spec, job_sha256, prices, status, started_at, host,"
    " runner_version, tags) VALUES ('r-old001', 'old', :spec, NULL, :prices, 'interrupted', :now,"
    " 'h', '0.1', :tags)"
)
UNITS_0001 = (
    "INSERT INTO units (run_id, key, provider, case_id, repeat, request_hash, status, attempts)"
    " VALUES ('r-old001', 'p/c/1', 'p', 'c', 1, 'h1', 'failed', 1),"
    " ('r-old001', 'p/c/2', 'p', 'c', 2, 'h2', 'pending', 0)"
)
ATTEMPT_0001 = (
    "INSERT INTO attempts (unit_id, number, started_at, http_status, error_kind, error_message,"
    " bytes_received, chunks, heartbeats) SELECT id, 1, :now, 500, 'server_error', 'HTTP 500', 0, 0, 0"
    " FROM units WHERE key = 'p/c/1'"
)


def test_upgrading_a_0003_database_adds_the_shared_limit_tables(db_url: str) -> None:
    """A database written at 0003 upgrades to 0004: its run is kept, the shared-limit tables start
    empty, and a process can take from them for the old run at once."""
    with open_database(db_url, migrate=False) as database:
        upgrade(database, "0003")
        with database.engine.begin() as conn:
            conn.execute(text(RUN_0001), {"spec": "{}", "prices": "{}", "tags": "[]", "now": NOW})
            conn.execute(text(UNITS_0001))
        upgrade(database)
        with database.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
            assert conn.execute(text("SELECT count(*) FROM units")).scalar_one() == 2
            for table in ("limit_buckets", "limit_holders", "limit_workers"):
                assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() == 0
        budget = ProviderBudget(provider="p", concurrency=1, rpm=None, tpm=None)
        with database.session() as session:
            take = limits.take_slot(
                session, "r-old001", "w", budget, tokens=10, now=1000.0, lease_seconds=60, cap_usd=None
            )
        assert take.granted


def test_upgrading_a_0004_database_adds_grading_columns_and_keeps_every_row(db_url: str) -> None:
    """A database written at 0004 upgrades to 0005 in place: attempts are kept (no table rebuild
    cascades them away), the job's units have no graded unit, and grading units can be queued."""
    with open_database(db_url, migrate=False) as database:
        upgrade(database, "0004")
        with database.engine.begin() as conn:
            conn.execute(text(RUN_0001), {"spec": "{}", "prices": "{}", "tags": "[]", "now": NOW})
            conn.execute(text(UNITS_0001))
            conn.execute(text(ATTEMPT_0001), {"now": NOW})
        upgrade(database)
        with database.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
            rows = conn.execute(
                text("SELECT key, graded_unit_id, grading_prompt FROM units ORDER BY id")
            ).all()
            assert [tuple(row) for row in rows] == [("p/c/1", None, None), ("p/c/2", None, None)]
            assert conn.execute(text("SELECT count(*) FROM attempts")).scalar_one() == 1
        with database.session() as session:
            (done, _) = repository.iter_units(session, "r-old001")
            repository.queue_gradings(
                session,
                [
                    GradingRequest(
                        graded_unit_id=done.id,
                        key="p/c/1#judge",
                        provider="j",
                        case_id="c",
                        repeat=1,
                        request_hash="g",
                        prompt="grade it",
                    )
                ],
            )
            assert [u.key for u in repository.iter_units(session, "r-old001")] == ["p/c/1", "p/c/2"]
            (claimed,) = repository.claim_units(
                session, "r-old001", "w", limit=5, lease_seconds=30, provider="j"
            )
            assert (claimed.graded_unit_id, claimed.grading_prompt) == (done.id, "grade it")


def test_downgrading_below_0005_keeps_every_units_attempts(db_url: str) -> None:
    """0005's downgrade drops its two columns in place: rebuilding ``units`` on SQLite (drop the old
    table, foreign keys on) would cascade every stored attempt and result away."""
    with open_database(db_url, migrate=False) as database:
        upgrade(database, "0005")
        with database.engine.begin() as conn:
            conn.execute(text(RUN_0001), {"spec": "{}", "prices": "{}", "tags": "[]", "now": NOW})
            conn.execute(text(UNITS_0001))
            conn.execute(text(ATTEMPT_0001), {"now": NOW})
        downgrade(database, "0004")
        with database.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM units")).scalar_one() == 2
            assert conn.execute(text("SELECT count(*) FROM attempts")).scalar_one() == 1
            columns = {c["name"] for c in inspect(conn).get_columns("units")}
            assert not {"graded_unit_id", "grading_prompt"} & columns
