"""A real run on SQLite: a provider without a price takes the catalog's, frozen with its source."""

from __future__ import annotations

import dataclasses
import sqlite3
from typing import TYPE_CHECKING

import orjson
import trio

from runner.job.catalog import catalog_name, lookup
from runner.pricing import compute_cost
from runner.report.api import build_run_report
from runner.report.render import make_environment, render
from runner.spec import Price
from runner.store.db import open_database
from tests.run.helpers import make_job, provider_for, run_in_process

if TYPE_CHECKING:
    from pathlib import Path

    from tests.conftest import StartSimulator


async def test_catalog_prices_are_frozen_and_shown(tmp_path: Path, start_simulator: StartSimulator) -> None:
    """No price: the catalog's; a declared one wins; an unknown model stays unpriced; the report says so."""
    simulator = await start_simulator()
    base = provider_for(simulator, "openai-chat")
    catalogued = dataclasses.replace(base, name="catalogued", model="gpt-4o-mini")
    declared = dataclasses.replace(base, name="declared", model="gpt-4o-mini", price=Price(input=1, output=2))
    unknown = dataclasses.replace(base, name="unknown", model="sim-model")
    with trio.fail_after(30):
        _, units = await run_in_process(tmp_path, make_job([catalogued, declared, unknown]))
    assert {u.provider: u.status for u in units} == dict.fromkeys(["catalogued", "declared", "unknown"], "ok")

    with sqlite3.connect(tmp_path / "runner.db") as conn:
        prices_json, spec_json = conn.execute("select prices, job_spec from runs").fetchone()
    prices, spec = orjson.loads(prices_json), orjson.loads(spec_json)
    entry = f"{catalog_name()}: openai/gpt-4o-mini"
    assert prices["catalogued"]["source"] == entry
    assert "source" not in prices["declared"]
    assert (prices["declared"]["input"], prices["declared"]["output"]) == (1, 2)
    assert prices["unknown"] is None
    notes = {p["name"]: p["price_source"] for p in spec["providers"]}
    assert notes["unknown"] == f"no price: {catalog_name()} does not know model 'sim-model'"

    catalog_price = lookup("gpt-4o-mini", at=units[0].attempts[0].started_at).price
    by_provider = {u.provider: u.attempts[-1] for u in units}
    attempt = by_provider["catalogued"]
    assert attempt.usage is not None
    assert attempt.cost_computed == compute_cost(attempt.usage, catalog_price) != 0
    declared_usage = by_provider["declared"].usage
    assert declared_usage is not None
    assert by_provider["declared"].cost_computed == compute_cost(declared_usage, Price(input=1, output=2))
    assert by_provider["unknown"].cost_computed is None

    with open_database(f"sqlite:///{tmp_path / 'runner.db'}") as db, db.session() as session:
        html = render(make_environment(), build_run_report(session, "latest"))
    assert f"per million tokens, from {entry}" in html
    assert "per million tokens, from the job file" in html
    assert "does not know model &#39;sim-model&#39;: cost only as the provider reported it" in html
