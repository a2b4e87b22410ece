"""Prices from a catalog (Pydantic's ``genai-prices``) for providers whose job declares none. Pure lookup.

The package ships its price data, and that bundled snapshot is the only one read here: its update
machinery (``UpdatePrices``, which fetches newer data over the network) is never started, so a lookup
works offline and a given runner + genai-prices version always answers the same. Importing the package
loads pydantic, asyncio and httpx2 without using them, so it is imported only when a lookup is needed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from decimal import Decimal
from importlib.metadata import version
from typing import TYPE_CHECKING, Any, Final

from runner.spec import Price

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from runner.spec import JobSpec, ProviderSpec

PACKAGE: Final = "genai-prices"


@dataclass(frozen=True, slots=True, kw_only=True)
class CatalogPrice:
    """What the catalog says about one model: its price (None when it has none) and where it came from."""

    model: str
    price: Price | None
    catalog: str  # "genai-prices 0.2.3"
    entry: str | None  # the catalog's provider and model ids, "openai/gpt-4o-mini"; None: not found
    note: str  # one line for people: the entry, or why there is no price (a run stores it)


def catalog_name() -> str:
    """The catalog and its version, "genai-prices 0.2.3" (the package's data is dated by its version)."""
    return f"{PACKAGE} {version(PACKAGE)}"


def lookup(model: str, *, base_url: str | None = None, at: datetime) -> CatalogPrice:
    """The catalog's per-token price of ``model`` on the day ``at``, as runner's ``Price``.

    ``base_url`` picks the catalog's provider when it is a known API (api.openai.com, ...); otherwise
    (a proxy, a gateway, loopback) the model name alone does, as the catalog matches it.
    """
    from genai_prices import data
    from genai_prices.data_snapshot import DataSnapshot

    catalog = catalog_name()
    # The bundled data only (never get_snapshot(), which would prefer fetched data).
    snapshot = DataSnapshot(providers=data.providers, from_auto_update=False)
    found = None
    for url in (base_url, None) if base_url else (None,):
        try:
            found = snapshot.find_provider_model(model, None, None, url)
            break
        except LookupError:
            continue
    if found is None:
        note = f"no price: {catalog} does not know model {model!r}"
        return CatalogPrice(model=model, price=None, catalog=catalog, entry=None, note=note)
    provider, info = found
    entry = f"{provider.id}/{info.id}"
    prices = info.get_prices(at)
    price, tiered = _price(prices)
    if price is None:
        note = f"no price: {catalog} has no per-token input and output price for {entry}"
        return CatalogPrice(model=model, price=None, catalog=catalog, entry=entry, note=note)
    note = f"{catalog}: {entry}" + (
        ", base rate (its higher tiers for long prompts are not applied)" if tiered else ""
    )
    return CatalogPrice(model=model, price=price, catalog=catalog, entry=entry, note=note)


def _price(prices: object) -> tuple[Price | None, bool]:
    """The catalog's ``ModelPrice`` as a ``Price`` (None without both input and output token prices),
    and whether any of its prices is tiered (the base rate is taken: runner's prices are flat)."""
    values: dict[str, float | None] = {}
    tiered = False
    for ours, theirs in (
        ("input", "input_mtok"),
        ("output", "output_mtok"),
        ("cached_input", "cache_read_mtok"),
        ("cache_write", "cache_write_mtok"),
    ):
        value = getattr(prices, theirs, None)
        if value is not None and not isinstance(value, Decimal):  # TieredPrices
            tiered = True
            value = value.base
        values[ours] = None if value is None else float(value)
    input_price, output_price = values.pop("input"), values.pop("output")
    if input_price is None or output_price is None:
        return None, tiered
    return Price(input=input_price, output=output_price, **values), tiered


def with_catalog_prices(job: JobSpec, *, at: datetime) -> JobSpec:
    """``job`` with a catalog price for each provider that declares none (a declared price always wins).

    A simulated provider is left alone: its model is made up and the simulator reports its own cost.
    Each provider looked up records where its price came from, or why it has none, in ``price_source``.
    """
    return dataclasses.replace(job, providers=tuple(_with_price(p, at) for p in job.providers))


def _with_price(provider: ProviderSpec, at: datetime) -> ProviderSpec:
    if provider.price is not None or provider.is_simulated:
        return provider
    found = lookup(provider.model, base_url=provider.base_url, at=at)
    return dataclasses.replace(provider, price=found.price, price_source=found.note)


def describe(model: str, price: Price | None, source: str, *, note: str, catalog: str) -> dict[str, Any]:
    """One row of ``runner prices``: where the price comes from and its four per-million figures
    (``cached_input`` and ``cache_write`` resolved to ``input`` when unset, as a run freezes them)."""
    return {
        "model": model,
        "source": source,  # "job file", "catalog", "none" or "simulated"
        "note": note,
        "catalog": catalog,
        "input": price.input if price else None,
        "output": price.output if price else None,
        "cached_input": (price.cached_input if price.cached_input is not None else price.input)
        if price
        else None,
        "cache_write": (price.cache_write if price.cache_write is not None else price.input)
        if price
        else None,
    }


def price_rows(models: Sequence[str], *, base_url: str | None, at: datetime) -> list[dict[str, Any]]:
    """What a run would use for each of ``models`` on a provider at ``base_url`` declaring no price."""
    rows = []
    for model in models:
        found = lookup(model, base_url=base_url, at=at)
        source = "catalog" if found.price else "none"
        rows.append(describe(model, found.price, source, note=found.note, catalog=found.catalog))
    return rows


def job_price_rows(job: JobSpec, *, at: datetime) -> list[dict[str, Any]]:
    """What a run of ``job`` would use, provider by provider (a declared price wins; see above)."""
    rows = []
    catalog = catalog_name()
    for provider in with_catalog_prices(job, at=at).providers:
        if provider.is_simulated and provider.price is None:
            source, note = "simulated", "no price: the simulator reports its own cost"
        elif provider.price_source is None:
            source, note = (
                ("job file", "declared in the job file") if provider.price else ("none", "no price")
            )
        else:
            source, note = ("catalog" if provider.price else "none"), provider.price_source
        row = describe(provider.model, provider.price, source, note=note, catalog=catalog)
        rows.append({"provider": provider.name, **row})
    return rows
