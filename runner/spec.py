"""Frozen value objects a job file loads into: JobSpec, ProviderSpec, CaseSpec and their policies.

Pure data, no I/O. ``runner.job.load`` builds these from a file and validates them once; everything after
the loader trusts them. No field ever holds an API key: providers name the environment variable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Mapping

# A provider served by the built-in simulator has this base URL in its spec (a job file may omit
# base_url or write "sim://" when it has a [providers.simulator] table). The engine starts the
# in-process simulator and replaces it with the simulator's real http://127.0.0.1:PORT URL via
# dataclasses.replace before anything is sent; no other layer ever sees a sim:// URL on the wire.
SIMULATOR_BASE_URL: Final = "sim://"


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How often and how patiently one unit is retried (attempts include the first)."""

    max_attempts: int = 5
    backoff_initial: float = 0.5  # seconds; exponential with full jitter
    backoff_max: float = 30.0
    retry_after_max: float = 120.0  # a longer Retry-After fails the unit instead of sleeping


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeouts:
    """Per-attempt time limits in seconds."""

    connect: float = 10.0
    first_byte: float = 60.0  # until response headers
    first_token: float = 120.0  # until the first reasoning or answer token
    idle: float = 60.0  # longest silence between bytes (heartbeats count)
    total: float = 900.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Price:
    """USD per million tokens. ``cached_input`` and ``cache_write`` default to ``input`` when unset."""

    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderSpec:
    """One provider of a job: where to send, how to speak, how hard to push."""

    name: str
    dialect: str  # a name in the dialect registry, runner.wire.dialects.names()
    base_url: str  # what the provider's official SDK takes as base URL
    model: str
    api_key_env: str | None = None  # the key is read from this variable, nowhere else
    concurrency: int = 8
    rpm: float | None = None
    tpm: float | None = None
    params: dict[str, Any] = field(default_factory=dict)  # merged into the request body
    headers: dict[str, str] = field(default_factory=dict)  # extra request headers (no secrets)
    price: Price | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeouts: Timeouts = field(default_factory=Timeouts)
    allow_insecure: bool = False  # plain http:// to a non-loopback host
    simulator: dict[str, Any] | None = None  # served in-process by the built-in simulator

    @property
    def is_simulated(self) -> bool:
        """True when the built-in simulator serves this provider (no key, no network)."""
        return self.simulator is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseSpec:
    """One prompt of a job. ``messages`` are OpenAI-format chat messages without the system one."""

    id: str
    messages: tuple[dict[str, Any], ...]
    system: str | None = None
    tools: tuple[dict[str, Any], ...] = ()  # OpenAI function-tool format; dialects translate
    params: dict[str, Any] = field(default_factory=dict)  # merged over the provider's params
    providers: tuple[str, ...] | None = None  # None: every provider
    repeats: int | None = None  # None: the job default
    expect: dict[str, Any] | None = None  # assertions (runner.grading), checked on each result


@dataclass(frozen=True, slots=True, kw_only=True)
class JobSpec:
    """A whole job as loaded and validated."""

    name: str
    providers: tuple[ProviderSpec, ...]
    cases: tuple[CaseSpec, ...]
    tags: tuple[str, ...] = ()
    repeats: int = 1
    max_cost_usd: float | None = None
    source_path: str | None = None
    source_sha256: str | None = None
    # Dotted key -> 1-based line in source_path, for errors found after loading (check_environment).
    locations: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)


def merge_params(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` merged onto ``base``: nested tables merge key by key, any other value replaces.

    Deep on purpose: ``defaults.params.stream_options = {include_usage = true}`` must survive a
    provider that adds ``stream_options.include_obfuscation``.
    """
    merged = dict(base)
    for key, value in over.items():
        old = merged.get(key)
        if isinstance(old, dict) and isinstance(value, dict):
            merged[key] = merge_params(old, value)
        else:
            merged[key] = value
    return merged


def request_params(provider: ProviderSpec, case: CaseSpec) -> dict[str, Any]:
    """The body params of ``case`` on ``provider``: the case's params merged over the provider's.

    One merge for the request a dialect builds and for the ``--reuse`` hash, so the two agree.
    """
    return merge_params(provider.params, case.params)


def job_from_json(data: Mapping[str, Any]) -> JobSpec:
    """Rebuild a JobSpec from the JSON a run stored (``dataclasses.asdict`` with lists for tuples).

    This is how ``runner run --resume`` and ``--join`` work without the job file: the run carries the
    spec it was started with, so a later edit of the file cannot change what a resumed run does.
    """

    def provider(raw: Mapping[str, Any]) -> ProviderSpec:
        price = raw.get("price")
        return ProviderSpec(
            **{k: v for k, v in raw.items() if k not in ("price", "retry", "timeouts")},
            price=Price(**price) if price else None,
            retry=RetryPolicy(**raw["retry"]),
            timeouts=Timeouts(**raw["timeouts"]),
        )

    def case(raw: Mapping[str, Any]) -> CaseSpec:
        providers = raw.get("providers")
        return CaseSpec(
            **{k: v for k, v in raw.items() if k not in ("messages", "tools", "providers")},
            messages=tuple(raw["messages"]),
            tools=tuple(raw.get("tools") or ()),
            providers=None if providers is None else tuple(providers),
        )

    return JobSpec(
        **{k: v for k, v in data.items() if k not in ("providers", "cases", "tags", "locations")},
        providers=tuple(provider(p) for p in data["providers"]),
        cases=tuple(case(c) for c in data["cases"]),
        tags=tuple(data.get("tags") or ()),
        locations=dict(data.get("locations") or {}),
    )
