"""A job cut down to the providers and cases a run was asked for (``runner run --providers / --cases /
--limit``). Pure: the subset is recorded in the spec, so the run stores it and ``--resume`` keeps it."""

from __future__ import annotations

import dataclasses
import fnmatch
from typing import TYPE_CHECKING, Final

from runner.errors import ConfigError
from runner.job.plan import count_units
from runner.spec import Subset

if TYPE_CHECKING:
    from collections.abc import Sequence

    from runner.spec import JobSpec

# Names listed in an error before "... and N more": a job of 5,000 cases must still give one line.
_SHOWN: Final = 10


def select_subset(
    job: JobSpec,
    *,
    providers: Sequence[str] | None = None,
    cases: str | None = None,
    limit: int | None = None,
) -> JobSpec:
    """``job`` with only the named ``providers`` and the cases whose id matches the ``cases`` pattern
    (``fnmatch``, case-sensitive), planning at most ``limit`` units; the subset is recorded in it.

    Judge providers (``role = "judge"``) stay whether named or not: they grade the answers of the
    providers that are. Nothing to select returns ``job`` unchanged.

    Raises:
        ConfigError: a provider the job does not have, a pattern no case matches, or a subset that
            plans no unit.
    """
    if providers is None and cases is None and limit is None:
        return job
    if providers is not None:
        known = [p.name for p in job.providers]
        for name in providers:
            if name not in known:
                raise ConfigError(
                    f"no provider {name!r} in job {job.name!r}; its providers: {_listed(known)}",
                    path=job.source_path,
                    key="--providers",
                    fix="name providers of the job, comma-separated",
                )
        kept = tuple(p for p in job.providers if p.name in providers or p.role == "judge")
        job = dataclasses.replace(job, providers=kept)
    if cases is not None:
        matched = tuple(case for case in job.cases if fnmatch.fnmatchcase(case.id, cases))
        if not matched:
            raise ConfigError(
                f"{cases!r} matches no case id of job {job.name!r}; its cases: "
                f"{_listed([c.id for c in job.cases])}",
                path=job.source_path,
                key="--cases",
                fix="give an fnmatch pattern (* ? [seq]) that matches case ids, quoted for the shell",
            )
        job = dataclasses.replace(job, cases=matched)
    names = None if providers is None else tuple(dict.fromkeys(providers))
    job = dataclasses.replace(job, subset=Subset(providers=names, cases=cases, limit=limit))
    if count_units(job) == 0:
        raise ConfigError(
            f"the subset plans no unit of job {job.name!r}: none of its cases runs on "
            f"{', '.join(names or ())}",
            path=job.source_path,
            key="--providers",
            fix="name a provider the selected cases run on (see each case's providers)",
        )
    return job


def parse_names(text: str) -> tuple[str, ...]:
    """``a,b`` -> ``("a", "b")``, spaces around names ignored.

    Raises:
        ValueError: an empty name (``a,,b``, or nothing at all).
    """
    names = tuple(name.strip() for name in text.split(","))
    if not all(names):
        raise ValueError(f"expected provider names separated by commas, got {text!r}")
    return names


def describe_subset(subset: Subset) -> str:
    """The subset in the words of the options that chose it: ``providers a,b; cases 'x*'; limit 10``."""
    parts = []
    if subset.providers is not None:
        parts.append(f"providers {','.join(subset.providers)}")
    if subset.cases is not None:
        parts.append(f"cases {subset.cases!r}")
    if subset.limit is not None:
        parts.append(f"limit {subset.limit}")
    return "; ".join(parts)


def _listed(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_SHOWN])
    return shown if len(names) <= _SHOWN else f"{shown} ... and {len(names) - _SHOWN} more"
