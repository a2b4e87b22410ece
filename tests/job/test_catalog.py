"""Prices from the genai-prices catalog: a known model's price, an unknown model's "no price", who wins."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal
from importlib.metadata import version

import genai_prices
import pytest

from runner.job.catalog import catalog_name, lookup, with_catalog_prices
from runner.pricing import prices_snapshot
from runner.simulator.config import SimulatorConfig
from runner.spec import CaseSpec, JobSpec, Price, ProviderSpec

AT = datetime(2026, 11, 1, tzinfo=UTC)
MILLION = 1_000_000


def _catalog_per_million(model: str, **tokens: int) -> float:
    """The catalog's own USD for a million of one kind of token, through its public ``calc_price``."""
    usage = genai_prices.Usage(**tokens)
    return float(genai_prices.calc_price(usage, model, genai_request_timestamp=AT).total_price)


def test_a_known_model_gets_the_catalogs_price() -> None:
    """gpt-4o-mini's input, output and cached prices are the ones the catalog computes with."""
    found = lookup("gpt-4o-mini", base_url="https://api.openai.com/v1", at=AT)
    assert found.price is not None
    assert found.entry == "openai/gpt-4o-mini"
    assert found.catalog == f"genai-prices {version('genai-prices')}" == catalog_name()
    assert found.price.input == _catalog_per_million("gpt-4o-mini", input_tokens=MILLION)
    assert found.price.output == _catalog_per_million("gpt-4o-mini", output_tokens=MILLION)
    cached = _catalog_per_million("gpt-4o-mini", input_tokens=MILLION, cache_read_tokens=MILLION)
    assert found.price.cached_input == cached
    assert found.note == f"{catalog_name()}: openai/gpt-4o-mini"


def test_an_unknown_model_has_no_price_and_says_so() -> None:
    """A model the catalog does not know stays without a price, and the note says which catalog said so."""
    found = lookup("sim-model", base_url="http://127.0.0.1:9/v1", at=AT)
    assert found.price is None
    assert found.entry is None
    assert found.note == f"no price: {catalog_name()} does not know model 'sim-model'"


def test_an_unknown_base_url_falls_back_to_the_model_name() -> None:
    """Behind a proxy or on loopback the model name alone finds the catalog entry."""
    assert lookup("gpt-4o-mini", base_url="http://127.0.0.1:9/v1", at=AT).entry == "openai/gpt-4o-mini"


def test_a_tiered_price_takes_the_base_rate_and_says_so() -> None:
    """A tiered catalog price (long prompts cost more) is frozen at its base rate, noted as such."""
    found = lookup("claude-sonnet-4-5", base_url="https://api.anthropic.com", at=AT)
    assert found.price is not None
    assert Decimal(str(found.price.input)) == Decimal(3)
    assert "base rate" in found.note


@pytest.mark.parametrize(
    ("provider", "price", "source"),
    [
        pytest.param(
            ProviderSpec(
                name="p", dialect="openai-chat", base_url="https://api.openai.com/v1", model="gpt-4o-mini"
            ),
            "catalog",
            f"{catalog_name()}: openai/gpt-4o-mini",
            id="catalog",
        ),
        pytest.param(
            ProviderSpec(
                name="p",
                dialect="openai-chat",
                base_url="https://api.openai.com/v1",
                model="gpt-4o-mini",
                price=Price(input=1, output=2),
            ),
            Price(input=1, output=2),
            None,
            id="declared-wins",
        ),
        pytest.param(
            ProviderSpec(
                name="p",
                dialect="openai-chat",
                base_url="sim://",
                model="gpt-4o-mini",
                simulator=SimulatorConfig(),
            ),
            None,
            None,
            id="simulated-left-alone",
        ),
    ],
)
def test_with_catalog_prices(provider: ProviderSpec, price: Price | str | None, source: str | None) -> None:
    """Only a real provider without a declared price takes the catalog's, recording where it came from."""
    job = JobSpec(name="j", providers=(provider,), cases=(CaseSpec(id="c", messages=()),))
    (priced,) = with_catalog_prices(job, at=AT).providers
    expected = lookup("gpt-4o-mini", at=AT).price if price == "catalog" else price
    assert priced.price == expected
    assert priced.price_source == source
    snapshot = prices_snapshot(dataclasses.replace(job, providers=(priced,)))["p"]
    assert (snapshot or {}).get("source") == source
