"""Engine fixtures: both transports, the attempt's client, a fresh PostgreSQL schema for multi-process runs.

Every engine test that makes HTTP requests runs twice, on runner's own transport (runner.http) and on
stock httpx (its module says ``pytestmark = pytest.mark.usefixtures("transport")``, or it takes ``client``):
the ``transport`` fixture sets ``RUNNER_RUN_TRANSPORT`` (``runner run --transport``, read by click) for the
runs the tests start, in process (tests.run.helpers) or as a subprocess (tests.run.processes).
"""

from __future__ import annotations

import os
import secrets
from typing import TYPE_CHECKING

import httpx
import psycopg
import pytest

from runner.run.client import build_client
from runner.store.db import open_database
from tests.store.conftest import PG_CONNINFO, pg_url

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from runner.spec import TransportName
    from runner.store.db import Database


@pytest.fixture(params=["runner", "httpx"])
def transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> TransportName:
    """The transport under httpx for this test's runs and clients (the engine suite runs on both)."""
    name: TransportName = request.param
    monkeypatch.setenv("RUNNER_RUN_TRANSPORT", name)
    return name


@pytest.fixture
async def client(transport: TransportName) -> AsyncIterator[httpx.AsyncClient]:
    """The client ``runner run`` builds (runner.run.client), on this test's transport; closed afterwards."""
    async with build_client((), cap=100, transport=transport) as c:
        yield c


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
