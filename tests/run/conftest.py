"""Engine fixtures: both transports, the attempt's client, a fresh PostgreSQL schema for multi-process runs.

Every engine test that makes HTTP requests runs twice, on runner's own transport (runner.http) and on
stock httpx (its module says ``pytestmark = pytest.mark.usefixtures("transport")``, or it takes ``client``):
the ``transport`` fixture sets ``RUNNER_TRANSPORT`` (``runner run --transport``, read by click) for the
runs the tests start, in process (tests.run.helpers) or as a subprocess (tests.run.processes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest

from runner.run.client import build_client
from runner.store.db import open_database
from tests.run.stores import database_url

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from pathlib import Path

    from runner.spec import TransportName
    from runner.store.db import Database


@pytest.fixture(params=["runner", "httpx"])
def transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> TransportName:
    """The transport under httpx for this test's runs and clients (the engine suite runs on both)."""
    name: TransportName = request.param
    monkeypatch.setenv("RUNNER_TRANSPORT", name)
    return name


@pytest.fixture
async def client(transport: TransportName) -> AsyncIterator[httpx.AsyncClient]:
    """The client ``runner run`` builds (runner.run.client), on this test's transport; closed afterwards."""
    async with build_client((), cap=100, transport=transport) as c:
        yield c


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
