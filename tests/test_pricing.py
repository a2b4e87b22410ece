"""Cost: price-computed from usage, provider-reported when given, and frozen price snapshots."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner.model import Usage
from runner.pricing import booked_cost, compute_cost, prices_snapshot
from runner.spec import CaseSpec, JobSpec, Price, ProviderSpec

PRICE = Price(input=0.15, output=0.60, cached_input=0.075)


@pytest.mark.parametrize(
    ("usage", "price", "expected"),
    [
        pytest.param(Usage(input_tokens=1_000_000, output_tokens=0), PRICE, 0.15, id="input-only"),
        pytest.param(Usage(input_tokens=0, output_tokens=1_000_000), PRICE, 0.60, id="output-only"),
        pytest.param(
            Usage(input_tokens=1000, output_tokens=500, cached_input_tokens=400),
            PRICE,
            (600 * 0.15 + 400 * 0.075 + 500 * 0.60) / 1e6,
            id="cached-reads",
        ),
        pytest.param(
            Usage(input_tokens=1000, output_tokens=0, cache_write_tokens=1000),
            Price(input=3.0, output=15.0, cache_write=3.75),
            3.75e-3,
            id="cache-writes",
        ),
        pytest.param(
            Usage(input_tokens=100, output_tokens=10, cached_input_tokens=100),
            Price(input=1.0, output=2.0),
            (100 * 1.0 + 10 * 2.0) / 1e6,
            id="cached-defaults-to-input",
        ),
        pytest.param(
            Usage(input_tokens=10, output_tokens=100, reasoning_tokens=80),
            Price(input=1.0, output=2.0),
            (10 * 1.0 + 100 * 2.0) / 1e6,
            id="reasoning-inside-output",
        ),
        pytest.param(Usage(input_tokens=10, output_tokens=10), None, None, id="no-price"),
        pytest.param(Usage(), PRICE, None, id="no-counts"),
    ],
)
def test_compute_cost(usage: Usage, price: Price | None, expected: float | None) -> None:
    """Uncached input, cache reads, cache writes and output are each billed at their own price."""
    cost = compute_cost(usage, price)
    if expected is None:
        assert cost is None
    else:
        assert cost == pytest.approx(expected, abs=1e-12)


def test_booked_cost_prefers_reported() -> None:
    """A provider-reported cost wins, even when zero; otherwise the computed one; otherwise nothing."""
    assert booked_cost(0.42, 0.15) == 0.42
    assert booked_cost(0.0, 0.15) == 0.0
    assert booked_cost(None, 0.15) == 0.15
    assert booked_cost(None, None) is None


@given(
    tokens=st.integers(min_value=0, max_value=10**9),
    cached=st.integers(min_value=0, max_value=10**9),
    output=st.integers(min_value=0, max_value=10**9),
)
def test_cost_is_never_negative_and_grows_with_output(tokens: int, cached: int, output: int) -> None:
    """Whatever the counts (even cache counts larger than input), cost is >= 0 and monotone in output."""
    usage = Usage(input_tokens=tokens, output_tokens=output, cached_input_tokens=cached)
    more = Usage(input_tokens=tokens, output_tokens=output + 1000, cached_input_tokens=cached)
    cost, bigger = compute_cost(usage, PRICE), compute_cost(more, PRICE)
    assert cost is not None
    assert bigger is not None
    assert 0 <= cost < bigger


def test_prices_snapshot_resolves_defaults() -> None:
    """The snapshot holds each provider's model and effective prices, None without a price table."""
    providers = (
        ProviderSpec(
            name="a",
            dialect="openai-chat",
            base_url="https://x.test",
            model="m",
            price=Price(input=1, output=2),
        ),
        ProviderSpec(name="b", dialect="openai-chat", base_url="https://x.test", model="n"),
    )
    job = JobSpec(
        name="j", providers=providers, cases=(CaseSpec(id="c", messages=({"role": "user", "content": "x"},)),)
    )
    snapshot = prices_snapshot(job)
    assert snapshot["b"] is None
    assert snapshot["a"] == {
        "model": "m",
        "currency": "USD",
        "per_tokens": 1_000_000,
        "input": 1,
        "output": 2,
        "cached_input": 1,
        "cache_write": 1,
    }
