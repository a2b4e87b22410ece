"""Viewer fixtures: a database of stored runs (SQLite file, or a PostgreSQL database of its own) and a
real ``runner view`` server on a loopback port, serving it read-only from a thread of the test."""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TYPE_CHECKING

import psycopg
import pytest

from runner.store.db import open_database, open_database_readonly
from runner.view import ViewServer
from tests.report.dbfixture import store_run
from tests.report.factories import HOSTILE, make_run, rated_run

if TYPE_CHECKING:
    from collections.abc import Iterator

PG_CONNINFO = "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=3"
SLASHED_CASE = HOSTILE[0]  # "<script>...</script>": a case id with a "/" and markup in it


@dataclass(frozen=True, slots=True, kw_only=True)
class Stored:
    """A database holding three runs of one job (hostile output in the first two) and a rated run."""

    url: str
    runs: tuple[str, ...]  # oldest first: a, b (slower, a day later), rated (case ids with "/")


def store_runs(url: str) -> Stored:
    first = make_run(45, seed=7, run_id="a", hostile=True)
    later = make_run(
        45, seed=8, run_id="b", hostile=True, slower=1.6, start=first.run.started_at + timedelta(1)
    )
    rated = rated_run(case_id=SLASHED_CASE)
    rated = replace(rated, run=replace(rated.run, job_name=first.run.job_name))
    with open_database(url) as db, db.session() as session:
        ids = tuple(store_run(session, data) for data in (first, later, rated))
    return Stored(url=url, runs=ids)


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ],
)
def stored(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stored]:
    """Three stored runs in a fresh SQLite file, or in a PostgreSQL database made for the module (the
    viewer never writes, so its tests can share one)."""
    if request.param == "sqlite":
        yield store_runs(f"sqlite:///{tmp_path_factory.mktemp('view') / 'runner.db'}")
        return
    name = f"view_{secrets.token_hex(4)}"
    try:
        admin = psycopg.connect(PG_CONNINFO, autocommit=True)
    except psycopg.OperationalError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL at 127.0.0.1:5432 is unreachable under CI=true: {exc}")
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield store_runs(f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}")
        finally:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@contextlib.contextmanager
def serving(url: str) -> Iterator[str]:
    """The base URL (``http://127.0.0.1:PORT``) of a viewer serving ``url`` read-only from a thread."""
    with open_database_readonly(url, enforced=True) as database:
        server = ViewServer(database, host="127.0.0.1", port=0)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield server.url.rstrip("/")
        finally:
            server.shutdown()
            thread.join(10)
            server.close()


@pytest.fixture(scope="module")
def viewer(stored: Stored) -> Iterator[str]:
    """The base URL of a viewer serving ``stored`` read-only."""
    with serving(stored.url) as base:
        yield base
