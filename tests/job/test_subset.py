"""``select_subset``: a job cut down to named providers, a case-id pattern and a unit limit, recorded in
the spec so that a stored run reads back with the same subset."""

from __future__ import annotations

from typing import Any

import pytest

from runner.errors import ConfigError
from runner.job.plan import count_units, plan_units
from runner.job.stored import job_from_json
from runner.job.subset import describe_subset, parse_names, select_subset
from runner.spec import JobSpec, Subset, job_to_json
from tests.job.specs import case_spec, provider_spec

JOB = JobSpec(
    name="j",
    providers=(
        provider_spec("a"),
        provider_spec("b"),
        provider_spec("c"),
        provider_spec("grader", role="judge"),
    ),
    cases=(case_spec("fr-1"), case_spec("fr-2"), case_spec("de-1", providers=("c",))),
    repeats=2,
    source_path="jobs/j.toml",
)


def test_providers_and_cases_cut_the_plan() -> None:
    """Only the named providers and the matching cases are planned; judges stay to grade."""
    job = select_subset(JOB, providers=("b", "a"), cases="fr-*")
    assert [p.name for p in job.providers] == ["a", "b", "grader"]  # the job's order
    assert [c.id for c in job.cases] == ["fr-1", "fr-2"]
    assert job.subset == Subset(providers=("b", "a"), cases="fr-*", limit=None)
    keys = [u.key for u in plan_units(job) if u.provider != "grader"]
    assert keys == [
        "a/fr-1/1",
        "b/fr-1/1",
        "a/fr-1/2",
        "b/fr-1/2",
        "a/fr-2/1",
        "b/fr-2/1",
        "a/fr-2/2",
        "b/fr-2/2",
    ]


def test_limit_keeps_the_first_units_in_plan_order() -> None:
    """--limit N plans the first N units of the whole plan, and counts agree with the plan."""
    job = select_subset(JOB, limit=3)
    assert [u.key for u in plan_units(job)] == [u.key for u in plan_units(JOB)][:3]
    assert count_units(job) == 3
    assert count_units(select_subset(JOB, limit=10_000)) == count_units(JOB)


def test_subset_survives_the_stored_spec() -> None:
    """A run's stored spec reads back with its subset (what --resume plans from)."""
    job = select_subset(JOB, providers=("a",), cases="fr-?", limit=2)
    back = job_from_json(job_to_json(job))
    assert back.subset == job.subset
    assert [u.key for u in plan_units(back)] == [u.key for u in plan_units(job)]
    assert job_from_json(job_to_json(JOB)).subset is None


def test_nothing_selected_is_the_whole_job() -> None:
    """Without options the job is unchanged and records no subset."""
    assert select_subset(JOB) is JOB


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        pytest.param(
            {"providers": ("a", "zz")},
            "jobs/j.toml: --providers: no provider 'zz' in job 'j'; its providers: a, b, c, grader",
            id="unknown-provider",
        ),
        pytest.param(
            {"cases": "es-*"}, "jobs/j.toml: --cases: 'es-*' matches no case id", id="glob-matches-none"
        ),
        pytest.param({"providers": ("a",), "cases": "de-*"}, "the subset plans no unit", id="empty-cross"),
    ],
)
def test_bad_subset_names_the_option_and_the_choices(options: dict[str, Any], expected: str) -> None:
    """An unknown provider, a pattern matching nothing, or an empty subset is a ConfigError naming it."""
    with pytest.raises(ConfigError) as caught:
        select_subset(JOB, **options)
    assert str(caught.value).startswith(expected) or expected in str(caught.value)
    assert "(fix: " in str(caught.value)


def test_names_and_description() -> None:
    """Comma lists parse with spaces ignored; empty names are refused; a subset reads as its options."""
    assert parse_names("a, b") == ("a", "b")
    with pytest.raises(ValueError, match="separated by commas"):
        parse_names("a,,b")
    assert (
        describe_subset(Subset(providers=("a", "b"), cases="x*", limit=5))
        == "providers a,b; cases 'x*'; limit 5"
    )
