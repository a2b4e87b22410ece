"""JobSpec -> Units with stable keys. Pure: no I/O.

Units come from a generator, case by case, so a 100,000-unit job is stored in batches by the caller
without ever existing as one list here.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runner.spec import request_params

if TYPE_CHECKING:
    from collections.abc import Iterator

    from runner.spec import CaseSpec, JobSpec, ProviderSpec


@dataclass(frozen=True, slots=True, kw_only=True)
class Unit:
    """One provider x case x repeat of a run: the thing that is queued, claimed, retried and stored.

    ``key`` is stable across resumes and runs (``provider/case/repeat``); ``request_hash`` is the
    sha256 of the exact request (dialect, base URL, model, messages, tools, params) for ``--reuse``.
    """

    key: str
    provider: str
    case_id: str
    repeat: int
    request_hash: str


def request_hash(provider: ProviderSpec, case: CaseSpec) -> str:
    """sha256 of the canonical JSON of everything that decides what the provider is asked.

    The provider's name, headers and limits are left out on purpose: two providers with the same
    endpoint, model and request produce reusable answers for each other.
    """
    canonical = {
        "dialect": provider.dialect,
        "base_url": provider.base_url,
        "model": provider.model,
        "system": case.system,
        "messages": list(case.messages),
        "tools": list(case.tools),
        "params": request_params(provider, case),
    }
    if provider.api_version is not None:  # gemini's path; absent otherwise, so older hashes still match
        canonical["api_version"] = provider.api_version
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def unit_key(provider: str, case_id: str, repeat: int) -> str:
    """The stable key of a unit; provider names hold no ``/`` (the loader checks), so it splits back."""
    return f"{provider}/{case_id}/{repeat}"


def case_providers(job: JobSpec, case: CaseSpec) -> Iterator[ProviderSpec]:
    """The providers ``case`` runs on, in the job's order; judge providers are never sent cases."""
    for provider in job.providers:
        if provider.role == "judge":
            continue
        if case.providers is None or provider.name in case.providers:
            yield provider


def count_units(job: JobSpec) -> int:
    """How many units ``plan_units(job)`` yields, without planning them (for planning progress)."""
    total = sum(
        (case.repeats if case.repeats is not None else job.repeats) * len(list(case_providers(job, case)))
        for case in job.cases
    )
    limit = job.subset.limit if job.subset is not None else None
    return total if limit is None else min(total, limit)


def plan_units(job: JobSpec) -> Iterator[Unit]:
    """Every unit of ``job``: for each case, for each repeat (1-based), for each of its providers.

    Providers vary fastest so that, taken in order, the units keep every provider's limiter busy at
    once rather than running one provider dry before the next starts. Each request hash is computed
    once per (provider, case), not per repeat. A subset's ``limit`` keeps the first units of that
    order (the same ones every time, so a run cut off while planning plans the same on resume).
    """
    units = _all_units(job)
    limit = job.subset.limit if job.subset is not None else None
    return units if limit is None else itertools.islice(units, limit)


def _all_units(job: JobSpec) -> Iterator[Unit]:
    for case in job.cases:
        repeats = case.repeats if case.repeats is not None else job.repeats
        pairs = [(p.name, request_hash(p, case)) for p in case_providers(job, case)]
        for repeat in range(1, repeats + 1):
            for name, digest in pairs:
                yield Unit(
                    key=unit_key(name, case.id, repeat),
                    provider=name,
                    case_id=case.id,
                    repeat=repeat,
                    request_hash=digest,
                )
