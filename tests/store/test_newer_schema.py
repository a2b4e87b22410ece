"""A database a newer runner migrated is refused with one line naming that runner, on SQLite and PostgreSQL.

Alembic alone stops with "Can't locate revision" and a traceback; runner must say who made the database
and that runner itself needs the upgrade, and must neither write to the database nor migrate it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from runner.store import repository
from runner.store.db import open_database
from tests.cli.helpers import one_error_line, runner
from tests.store.factories import make_job

# Slow: each case starts `python -m runner`.
pytestmark = pytest.mark.slow

FUTURE_REVISION = "f0f0f0f0f0f0"


def _made_by_newer_runner(db_url: str) -> None:
    """A database with one run by runner 99.1.0 whose schema revision this runner does not know."""
    with open_database(db_url) as database, database.session() as session:
        repository.create_run(session, make_job(), host="h", version="99.1.0")
        with database.engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": FUTURE_REVISION})


def _state(db_url: str) -> tuple[str, int]:
    with open_database(db_url, migrate=False) as database, database.engine.connect() as connection:
        revision = connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        runs = connection.execute(text("SELECT count(*) FROM runs")).scalar_one()
    return str(revision), int(runs)


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["report", "latest"], id="report"),
        pytest.param(["cost"], id="cost"),
        pytest.param(["db", "upgrade"], id="db-upgrade"),
        pytest.param(["run", "JOB"], id="run"),
    ],
)
def test_newer_database_names_its_runner(db_url: str, tmp_path: Path, args: list[str]) -> None:
    """Read commands, ``db upgrade`` and ``run`` all refuse it: exit 2, one line, nothing written."""
    _made_by_newer_runner(db_url)
    job = tmp_path / "job.toml"
    job.write_text(
        '[[providers]]\nname = "s"\ndialect = "openai-chat"\nmodel = "m"\nsimulator = {}\n'
        '[[cases]]\nid = "c"\nprompt = "hi"\n'
    )
    argv = [str(job) if arg == "JOB" else arg for arg in args]
    line = one_error_line(runner(*argv, "--db", db_url, cwd=tmp_path))
    assert "newer runner" in line
    assert "runner 99.1.0" in line
    assert FUTURE_REVISION in line
    assert "upgrade runner" in line
    assert _state(db_url) == (FUTURE_REVISION, 1)


def test_a_database_without_runner_tables_is_not_migrated(db_url: str, tmp_path: Path) -> None:
    """A read command pointed at some other database says so, and does not create runner's tables in it."""
    with open_database(db_url, migrate=False) as database, database.engine.begin() as connection:
        connection.execute(text("CREATE TABLE notes (body text)"))
    line = one_error_line(runner("report", "latest", "--db", db_url, cwd=tmp_path))
    assert "holds no runner tables" in line
    with open_database(db_url, migrate=False) as database, database.engine.connect() as connection:
        tables = set(inspect(connection).get_table_names())
    assert tables == {"notes"}
