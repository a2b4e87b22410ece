"""Cost in USD from token usage and a price table. Pure: no I/O.

Prices are USD per million tokens. Arithmetic is done in ``Decimal`` (prices like 0.075 are not exact
binary floats, and a run adds up thousands of costs) and handed out as ``float`` rounded to 1e-12 USD.

Reasoning tokens are not priced separately: OpenAI, Anthropic (thinking) and the OpenAI-compatible
seed providers count them inside ``output_tokens``, which is what ``Usage`` promises, so adding them
again would bill them twice.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runner.model import Usage
    from runner.spec import JobSpec, Price

_MILLION = Decimal(1_000_000)
_QUANTUM = Decimal("1e-12")


def _decimal(value: float) -> Decimal:
    return Decimal(str(value))  # str() keeps 0.075 as 0.075, not its binary neighbour


def compute_cost(usage: Usage, price: Price | None) -> float | None:
    """The price-computed cost of ``usage``, or None without a price or without any token count.

    Input tokens minus cache reads and cache writes are billed at ``input``, cache reads at
    ``cached_input`` and cache writes at ``cache_write`` (both default to ``input``), output tokens
    (reasoning included) at ``output``. A missing count is zero when the other side is known.
    """
    if price is None or (usage.input_tokens is None and usage.output_tokens is None):
        return None
    cached = usage.cached_input_tokens or 0
    written = usage.cache_write_tokens or 0
    # Clamped: a provider that reports cache counts outside input_tokens must not yield a credit.
    fresh = max((usage.input_tokens or 0) - cached - written, 0)
    input_price = _decimal(price.input)
    cached_price = _decimal(price.cached_input) if price.cached_input is not None else input_price
    write_price = _decimal(price.cache_write) if price.cache_write is not None else input_price
    total = (
        fresh * input_price
        + cached * cached_price
        + written * write_price
        + (usage.output_tokens or 0) * _decimal(price.output)
    ) / _MILLION
    return float(total.quantize(_QUANTUM))


def booked_cost(reported: float | None, computed: float | None) -> float | None:
    """The cost to book for one attempt, in USD: the provider's figure where it sent one, else the
    one computed from the run's frozen prices; None when neither is known.

    The one statement of this rule: the engine's budget, the writer's batch totals, exports and
    reports call it, and ``runner.store.repository.sql.booked_cost_sql`` mirrors it in SQL.
    """
    return reported if reported is not None else computed


def prices_snapshot(job: JobSpec) -> dict[str, dict[str, Any] | None]:
    """Provider name -> its model and effective prices, frozen into the run at start.

    Defaults are resolved (``cached_input`` and ``cache_write`` fall back to ``input``) so a later
    change to how defaults work cannot rewrite an old run's costs. A price taken from the catalog
    carries its ``source`` ("genai-prices 0.2.3: openai/gpt-4o-mini"); a declared one has none.
    """
    snapshot: dict[str, dict[str, Any] | None] = {}
    for provider in job.providers:
        price = provider.price
        if price is None:
            snapshot[provider.name] = None
            continue
        entry: dict[str, Any] = {
            "model": provider.model,
            "currency": "USD",
            "per_tokens": 1_000_000,
            "input": price.input,
            "output": price.output,
            "cached_input": price.cached_input if price.cached_input is not None else price.input,
            "cache_write": price.cache_write if price.cache_write is not None else price.input,
        }
        # A price the job file declared has no "source" (as in runs made before the catalog).
        if provider.price_source is not None:
            entry["source"] = provider.price_source
        snapshot[provider.name] = entry
    return snapshot
