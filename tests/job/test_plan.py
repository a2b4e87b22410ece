"""Planning: provider x case x repeat units with stable keys and request hashes, lazily."""

from __future__ import annotations

import dataclasses
import itertools
import types

from hypothesis import given
from hypothesis import strategies as st

from runner.job.plan import plan_units, request_hash
from runner.spec import JobSpec, request_params
from tests.job.specs import case_spec, provider_spec


def test_units_cross_providers_cases_and_repeats() -> None:
    """Units honour case subsets and repeats, with keys provider/case/repeat (1-based)."""
    job = JobSpec(
        name="j",
        providers=(provider_spec("a"), provider_spec("b")),
        cases=(case_spec("x"), case_spec("y", providers=("b",), repeats=3)),
        repeats=2,
    )
    keys = [unit.key for unit in plan_units(job)]
    assert keys == ["a/x/1", "b/x/1", "a/x/2", "b/x/2", "b/y/1", "b/y/2", "b/y/3"]


def test_plan_is_a_lazy_generator() -> None:
    """A 100,000-unit job yields units one by one without building them all."""
    job = JobSpec(
        name="big",
        providers=(provider_spec("a"), provider_spec("b")),
        cases=tuple(case_spec(f"c{i}") for i in range(500)),
        repeats=100,
    )
    units = plan_units(job)
    assert isinstance(units, types.GeneratorType)
    assert [u.key for u in itertools.islice(units, 3)] == ["a/c0/1", "b/c0/1", "a/c0/2"]
    assert sum(1 for _ in units) == 100_000 - 3


def test_request_hash_covers_what_is_sent() -> None:
    """The hash changes with model, messages, tools and merged params, but not with the provider's name."""
    case = case_spec("x", params={"temperature": 0})
    base = request_hash(provider_spec("a"), case)
    assert request_hash(provider_spec("renamed", concurrency=99), case) == base
    assert request_hash(provider_spec("a", model="other"), case) != base
    assert request_hash(provider_spec("a"), dataclasses.replace(case, system="s")) != base
    assert request_hash(provider_spec("a"), dataclasses.replace(case, params={"temperature": 1})) != base
    tools = ({"type": "function", "function": {"name": "f"}},)
    assert request_hash(provider_spec("a"), dataclasses.replace(case, tools=tools)) != base


def test_case_params_merge_over_provider_params() -> None:
    """Case params override provider params, nested tables merging key by key."""
    provider = provider_spec("a", params={"temperature": 0, "stream_options": {"include_usage": True}})
    case = case_spec("x", params={"temperature": 1, "stream_options": {"extra": 1}})
    assert request_params(provider, case) == {
        "temperature": 1,
        "stream_options": {"include_usage": True, "extra": 1},
    }


@given(
    providers=st.integers(min_value=1, max_value=4),
    repeats=st.lists(st.one_of(st.none(), st.integers(min_value=1, max_value=4)), min_size=1, max_size=5),
    default=st.integers(min_value=1, max_value=3),
    subset_seed=st.integers(min_value=0, max_value=15),
)
def test_keys_unique_stable_and_counted(
    providers: int, repeats: list[int | None], default: int, subset_seed: int
) -> None:
    """For any job shape, keys are unique, planning twice gives the same units, and the count matches."""
    specs = tuple(provider_spec(f"p{i}") for i in range(providers))
    names = [p.name for p in specs]
    cases = tuple(
        case_spec(
            f"c{i}",
            repeats=r,
            providers=None if (subset_seed >> i) & 1 else tuple(names[: i % providers + 1]),
        )
        for i, r in enumerate(repeats)
    )
    job = JobSpec(name="j", providers=specs, cases=cases, repeats=default)
    units = list(plan_units(job))
    assert len({u.key for u in units}) == len(units)
    assert units == list(plan_units(job))
    for unit in units:
        assert unit.key == f"{unit.provider}/{unit.case_id}/{unit.repeat}"
