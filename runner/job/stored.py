"""A run's stored job spec (``runner.spec.job_to_json``) -> the ``JobSpec`` it was started with. Pure.

This is how ``runner run --resume`` and ``--join`` work without the job file: the run carries the spec
it was started with, so a later edit of the file cannot change what a resumed run does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runner.grading.assertions import parse_expect
from runner.simulator.config import SimulatorConfig
from runner.spec import CaseSpec, JobSpec, Price, ProviderSpec, RetryPolicy, Subset, Timeouts

if TYPE_CHECKING:
    from collections.abc import Mapping


def job_from_json(data: Mapping[str, Any]) -> JobSpec:
    """Rebuild a JobSpec from the JSON a run stored (``dataclasses.asdict`` with lists for tuples).

    The simulator and expect tables are stored as written and parsed here as the loader parsed them.
    """
    return JobSpec(
        **{k: v for k, v in data.items() if k not in ("providers", "cases", "tags", "locations", "subset")},
        providers=tuple(_provider(p) for p in data["providers"]),
        cases=tuple(_case(c) for c in data["cases"]),
        tags=tuple(data.get("tags") or ()),
        locations=dict(data.get("locations") or {}),
        subset=stored_subset(data),
    )


def stored_subset(data: Mapping[str, Any]) -> Subset | None:
    """The subset a stored spec records (None: the whole job, or a run stored before subsets existed)."""
    raw = data.get("subset")
    if not isinstance(raw, dict):
        return None
    providers = raw.get("providers")
    return Subset(
        providers=None if providers is None else tuple(providers),
        cases=raw.get("cases"),
        limit=raw.get("limit"),
    )


def _provider(raw: Mapping[str, Any]) -> ProviderSpec:
    price, simulator = raw.get("price"), raw.get("simulator")
    return ProviderSpec(
        **{k: v for k, v in raw.items() if k not in ("price", "retry", "timeouts", "simulator")},
        price=Price(**price) if price else None,
        retry=RetryPolicy(**raw["retry"]),
        timeouts=Timeouts(**raw["timeouts"]),
        simulator=None if simulator is None else SimulatorConfig.from_dict(simulator),
    )


def _case(raw: Mapping[str, Any]) -> CaseSpec:
    providers, expect = raw.get("providers"), raw.get("expect")
    return CaseSpec(
        **{k: v for k, v in raw.items() if k not in ("messages", "tools", "providers", "expect")},
        messages=tuple(raw["messages"]),
        tools=tuple(raw.get("tools") or ()),
        providers=None if providers is None else tuple(providers),
        expect=None if expect is None else parse_expect(expect),
    )


def stored_dialect(data: Mapping[str, Any], provider: str) -> str | None:
    """The dialect the stored spec ``data`` names for ``provider`` (None when it names none).

    Reads the JSON as stored, without rebuilding the spec, so a spec another runner version wrote (or one
    whose tables no longer parse) still names its dialects for ``runner parse --attempt``.
    """
    for raw in data.get("providers") or ():
        if isinstance(raw, dict) and raw.get("name") == provider and isinstance(raw.get("dialect"), str):
            return str(raw["dialect"])
    return None
