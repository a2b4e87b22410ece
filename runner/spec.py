"""Frozen value objects a job file loads into: JobSpec, ProviderSpec, CaseSpec and their policies.

Pure data, no I/O. ``runner.job.load`` builds these from a file and validates them once; everything after
the loader trusts them. No field ever holds an API key: providers name the environment variable.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from runner.model import Completion

    # For the annotation only: the vocabulary imports nothing of runner at run time. runner.job parses
    # the table into this type at load (runner.job.provider) and from a stored run (runner.job.stored).
    from runner.simulator.config import SimulatorConfig

# A provider served by the built-in simulator has this base URL in its spec (a job file may omit
# base_url or write "sim://" when it has a [providers.simulator] table). The run service starts the
# in-process simulator and replaces it with the simulator's real http://127.0.0.1:PORT URL via
# dataclasses.replace before anything is sent; no other layer ever sees a sim:// URL on the wire.
SIMULATOR_BASE_URL: Final = "sim://"
# A provider's max_response_bytes unless its table sets one: far above any real answer, far below
# what hurts memory (a 2 GB stream, a gzip bomb). Counted after decompression.
DEFAULT_MAX_RESPONSE_BYTES: Final = 64 * 1024 * 1024


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
    token_idle: float | None = None  # longest wait between two tokens (heartbeats do not count); off


@dataclass(frozen=True, slots=True, kw_only=True)
class Price:
    """USD per million tokens. ``cached_input`` and ``cache_write`` default to ``input`` when unset."""

    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None


# What carries a provider's HTTP under httpx: runner's own transport (runner.http, the default) or
# stock httpx (httpcore), the fallback for a server runner's transport does not get along with.
TransportName = Literal["runner", "httpx"]
TRANSPORTS: Final[tuple[TransportName, ...]] = ("runner", "httpx")
ProviderRole = Literal["target", "judge"]
PROVIDER_ROLES: Final[tuple[ProviderRole, ...]] = ("target", "judge")


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
    # Where ``price`` came from when the job file declared none (a catalog entry, runner.job.catalog),
    # or why there is none; None: the job file's own price (or no catalog was asked). Set at run start.
    price_source: str | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeouts: Timeouts = field(default_factory=Timeouts)
    allow_insecure: bool = False  # plain http:// to a non-loopback host
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES  # body bound, decompressed bytes counted
    simulator: SimulatorConfig | None = None  # served in-process by the built-in simulator
    transport: TransportName = "runner"  # "httpx": stock httpx for this provider (runner run --transport)
    role: ProviderRole = "target"  # "judge": never sent the job's cases, only grading requests
    api_version: str | None = None  # gemini: the path's API version (None: the dialect's default, v1)

    @property
    def is_simulated(self) -> bool:
        """True when the built-in simulator serves this provider (no key, no network)."""
        return self.simulator is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCallExpectation:
    """``expect.tool_call``: some call to ``name`` (any, when None) whose arguments match ``arguments``."""

    name: str | None = None
    arguments: Mapping[str, Any] | None = None  # a JSON schema in runner.grading's supported subset


@dataclass(frozen=True, slots=True, kw_only=True)
class JudgeExpectation:
    """``[cases.expect] judge``: a provider of the job with ``role = "judge"`` grades the answer."""

    provider: str  # the judge provider's name
    rubric: str  # a Jinja2 template (rendered with the row's vars)
    threshold: float | None = None  # a score at or above passes; None: the judge's verdict decides
    prompt: str | None = None  # a template replacing the default grading prompt


# Fields of Expectation that are no per-unit assertion key.
_NOT_KEYS: Final = ("table", "pass_rate", "check")


@dataclass(frozen=True, slots=True, kw_only=True)
class Expectation:
    """A case's ``[cases.expect]`` table, parsed once at load by ``runner.grading.assertions.parse_expect``.

    One field per assertion key; None means the key is absent. Text assertions read the first choice.
    """

    contains: tuple[str, ...] | None = None
    not_contains: tuple[str, ...] | None = None
    regex: tuple[str, ...] | None = None  # each compiles (checked at load)
    equals: str | None = None  # compared with surrounding whitespace stripped
    json_valid: bool | None = None
    tool_call: ToolCallExpectation | None = None
    finish_reason: tuple[str, ...] | None = None  # each one of runner.model.FINISH_REASONS
    max_ttft_s: float | None = None
    max_duration_s: float | None = None
    max_cost_usd: float | None = None  # the unit's total over all its attempts
    judge: JudgeExpectation | None = None  # graded by a judge provider's request, after the final result
    python: str | None = None  # "module:function", a module beside the job file
    # The function ``python`` names, imported by the job loader (runner.job.checks) from the job file's
    # directory; None until then (grading, which imports nothing, reports an unloaded check as an error).
    check: Callable[[Completion, Mapping[str, Any]], object] | None = field(
        default=None, compare=False, repr=False
    )
    # Not a per-unit assertion: the share of a case's repeats that must pass (judged over the case).
    pass_rate: float | None = None
    # The table as written: a run stores it (so a stored spec reads back exactly as it was), and
    # outcomes are reported in its key order. Not compared: "x" and ["x"] expect the same.
    table: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def keys(self) -> tuple[str, ...]:
        """The assertion keys set, in the order the table wrote them (declaration order without one)."""
        names = [f.name for f in dataclasses.fields(self) if f.name not in _NOT_KEYS]
        ordered = dict.fromkeys([*self.table, *names])  # written keys first, no duplicates
        return tuple(k for k in ordered if k in names and getattr(self, k) is not None)

    def __bool__(self) -> bool:
        # An empty [cases.expect] table checks nothing: the engine stores no outcomes for it.
        return bool(self.keys)


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
    expect: Expectation | None = None  # graded on the unit's final completion
    # The data row this case was expanded from (`vars` / `vars_file`), empty for a case without rows:
    # its templates were rendered with these at load, and custom checks and the judge receive them.
    vars: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Subset:
    """The part of a job a run was started on (``runner run --providers / --cases / --limit``).

    A run stores it with its spec (whose providers and cases are already cut down to it), so the
    report shows it and ``--resume`` keeps it; ``limit`` is applied by ``runner.job.plan``.
    """

    providers: tuple[str, ...] | None = None  # the providers named; None: every provider
    cases: str | None = None  # an fnmatch pattern on case ids; None: every case
    limit: int | None = None  # at most this many units, the first in plan order; None: all


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
    subset: Subset | None = None  # None: the whole job (runner.job.subset.select_subset sets it)


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


def job_to_json(job: JobSpec) -> dict[str, Any]:
    """The job as a run stores it: ``dataclasses.asdict``, with simulator and expect tables as written.

    ``runner.job.stored.job_from_json`` reads it back. Parsed records are not stored field by field, so
    an old run still reads back after they change, and a stored spec is the job file's own words.
    """
    data = dataclasses.asdict(job)
    for stored, provider in zip(data["providers"], job.providers, strict=True):
        stored["simulator"] = None if provider.simulator is None else dict(provider.simulator.table)
    for stored, case in zip(data["cases"], job.cases, strict=True):
        stored["expect"] = None if case.expect is None else dict(case.expect.table)
    return data
