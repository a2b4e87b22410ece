"""Simulator configuration: latency distributions, fault plans and content options, parsed once.

Two mini-languages, shared by ``runner simulate --latency/--faults`` and a job file's
``[providers.simulator]`` table (where ``latency`` and ``faults`` may also be tables).

LATENCY SPEC: comma-separated ``KEY=DIST``. Keys: ``ttfb`` (request read -> response headers),
``ttft`` (headers -> first token event), ``gap`` (between token events), ``chunk`` (tokens per content
event, rounded, at least 1), ``heartbeat`` (a pause longer than this gets a heartbeat comment or ping
every that many seconds; fixed number only). DIST is ``X`` or ``fixed:X``, ``uniform:LO:HI``,
``lognormal:MEDIAN:SIGMA`` or ``exp:MEAN`` (seconds). Example: ``ttft=lognormal:0.3:0.5,gap=0.02``.

FAULT SPEC: comma-separated items, each ``N=FAULT`` (attempt N of a request gets FAULT: a script) or
``FAULT@P`` (each attempt not scripted gets FAULT with probability P, drawn from the seed). FAULT is
``NAME`` or ``NAME:ARG``:
  ok                      a normal response
  http_STATUS[:RA]        an error response in the dialect's error shape (400 401 402 404 429 500 502
                          503 529, any 4xx/5xx). RA sets the retry hint: ``ra=2`` (Retry-After: 2),
                          ``date=2`` (Retry-After as an HTTP date 2 s ahead), ``ms=1500``
                          (retry-after-ms). http_429 without RA sends Retry-After: 1.
  quota                   429 whose body says insufficient_quota (no retry hint)
  reset                   the connection is reset (RST) before any response byte
  stall[:K]               no bytes at all; with K, silence after the headers and K token events
  heartbeat_stall[:K]     after K token events only heartbeats/pings, never another token
  close_clean[:K]         after K token events the chunked body ends cleanly, no terminal signal
  close_abrupt[:K]        after K token events half an HTTP chunk is sent, then the socket is closed
  stream_error[:K]        after K token events an error in the dialect's shape (MiroMind flavor:
                          finish_reason "error" with an error object), then the body ends
  finish_error[:K]        MiroMind's shape on any openai-chat flavor
  malformed[:K]           the event after K token events carries truncated JSON; the stream goes on
  dribble                 the whole response is written one byte per send (UTF-8 split across writes)
K defaults to half the token events. Example: ``1=http_429:ra=1,2=close_abrupt:3,http_500@0.02``.
A request header ``x-sim-faults: SPEC`` replaces the configured spec for that request.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from runner.errors import ConfigError

if TYPE_CHECKING:
    import random
    from collections.abc import Mapping

DIST_KINDS: Final = ("fixed", "uniform", "lognormal", "exp")
LATENCY_KEYS: Final = ("ttfb", "ttft", "gap", "chunk", "heartbeat")
FLAVORS: Final = ("openai", "miromind", "solrouter")
# Mid-stream faults: they take the place of one token frame and end the stream their way.
MID_STREAM_FAULTS: Final = (
    "stall",
    "heartbeat_stall",
    "close_clean",
    "close_abrupt",
    "stream_error",
    "finish_error",
)
FAULT_NAMES: Final = (
    "ok",
    "quota",
    "reset",
    *MID_STREAM_FAULTS,
    "malformed",
    "dribble",
)
CONFIG_KEYS: Final = (
    "seed",
    "flavor",
    "latency",
    "faults",
    "output_tokens",
    "reasoning",
    "cost",
    "price",
    "tool_calls",
    "judge",
)
_STATUS_RE: Final = re.compile(r"http_([45]\d\d)")


@dataclass(frozen=True, slots=True, kw_only=True)
class Dist:
    """A seeded distribution of non-negative numbers (seconds, or tokens for ``chunk``)."""

    kind: str = "fixed"
    a: float = 0.0
    b: float = 0.0

    def sample(self, rng: random.Random) -> float:
        if self.kind == "fixed":
            return self.a
        if self.kind == "uniform":
            return rng.uniform(self.a, self.b)
        if self.kind == "lognormal":
            return rng.lognormvariate(math.log(self.a), self.b) if self.a > 0 else 0.0
        return rng.expovariate(1.0 / self.a) if self.a > 0 else 0.0  # exp

    @property
    def is_zero(self) -> bool:
        return self.kind == "fixed" and self.a == 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Latency:
    """The latency model; the default is as fast as possible, one token per event."""

    ttfb: Dist = field(default_factory=Dist)
    ttft: Dist = field(default_factory=Dist)
    gap: Dist = field(default_factory=Dist)
    chunk: Dist = field(default_factory=lambda: Dist(a=1.0))
    heartbeat: float = 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Fault:
    """One fault: ``name`` is a FAULT_NAMES entry or ``http_STATUS``; ``arg`` is its raw argument."""

    name: str = "ok"
    arg: str | None = None

    @property
    def status(self) -> int | None:
        m = _STATUS_RE.fullmatch(self.name)
        return int(m.group(1)) if m else (429 if self.name == "quota" else None)

    @property
    def after(self) -> int | None:
        """K for the mid-stream faults, None for "half the token events"."""
        return int(self.arg) if self.arg is not None and self.arg.isdigit() else None

    def __str__(self) -> str:
        return self.name if self.arg is None else f"{self.name}:{self.arg}"


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultPlan:
    """Scripted faults by attempt number, then faults drawn by probability, in order."""

    script: dict[int, Fault] = field(default_factory=dict)
    rates: tuple[tuple[Fault, float], ...] = ()

    def choose(self, attempt: int, rng: random.Random) -> Fault:
        if attempt in self.script:
            return self.script[attempt]
        for fault, rate in self.rates:
            if rng.random() < rate:
                return fault
        return Fault()


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulatorConfig:
    """Everything the simulator needs; build it from a dict with ``SimulatorConfig.from_dict``."""

    seed: int = 0
    flavor: str = "openai"  # openai-chat flavor: openai (Melious) | miromind | solrouter
    latency: Latency = field(default_factory=Latency)
    faults: FaultPlan = field(default_factory=FaultPlan)
    output_tokens: Dist = field(default_factory=lambda: Dist(kind="uniform", a=12, b=40))
    reasoning: bool = False  # reason even when the request does not ask for it
    cost: bool = False  # openai-chat: report usage.cost (SolRouter always does)
    price_input: float = 0.15  # USD per million tokens, for the reported cost
    price_output: float = 0.60
    tool_calls: int = 2  # parallel tool calls when the request carries tools
    # Plays a judge: answers every request with a verdict JSON object, passing when this regular
    # expression matches the graded answer (the <answer> section of the grading prompt). None: no judge.
    judge_pass_when: str | None = None
    # Back-to-back frames (no pause between them) share one send, whole chunks only. False sends
    # every event in its own write, as a slow provider would (benchmarks of the worst case).
    coalesce: bool = True
    # The table as written: a run stores it (not these parsed fields) so a resumed run parses it again
    # exactly as it was started. Not compared: two spellings of one config are the same config.
    table: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], *, prefix: str = "simulator") -> SimulatorConfig:
        """Validate a ``[providers.simulator]`` table; a ConfigError names the bad key."""
        for key in raw:
            if key not in CONFIG_KEYS:
                raise ConfigError(
                    f"unknown key {key!r}", key=f"{prefix}.{key}", fix=f"use one of {', '.join(CONFIG_KEYS)}"
                )
        kwargs: dict[str, Any] = {}
        if "seed" in raw:
            kwargs["seed"] = _int(raw["seed"], f"{prefix}.seed")
        if "flavor" in raw:
            if raw["flavor"] not in FLAVORS:
                raise ConfigError(
                    f"unknown flavor {raw['flavor']!r}",
                    key=f"{prefix}.flavor",
                    fix=f"use {'|'.join(FLAVORS)}",
                )
            kwargs["flavor"] = raw["flavor"]
        if "latency" in raw:
            kwargs["latency"] = parse_latency(raw["latency"], key=f"{prefix}.latency")
        if "faults" in raw:
            kwargs["faults"] = parse_faults(raw["faults"], key=f"{prefix}.faults")
        if "output_tokens" in raw:
            value = raw["output_tokens"]
            dist = parse_dist(str(value), key=f"{prefix}.output_tokens")
            kwargs["output_tokens"] = dist
        for name in ("reasoning", "cost"):
            if name in raw:
                if not isinstance(raw[name], bool):
                    raise ConfigError("must be true or false", key=f"{prefix}.{name}")
                kwargs[name] = raw[name]
        if "price" in raw:
            price = raw["price"]
            if not isinstance(price, dict) or set(price) - {"input", "output"}:
                raise ConfigError("must be a table {input, output}", key=f"{prefix}.price")
            for side in ("input", "output"):
                if side in price:
                    kwargs[f"price_{side}"] = _number(price[side], f"{prefix}.price.{side}")
        if "tool_calls" in raw:
            kwargs["tool_calls"] = max(1, _int(raw["tool_calls"], f"{prefix}.tool_calls"))
        if "judge" in raw:
            kwargs["judge_pass_when"] = _judge(raw["judge"], f"{prefix}.judge")
        return cls(**kwargs, table=dict(raw))


def _judge(raw: Any, key: str) -> str:
    """``judge = { pass_when = "<regex>" }``: the pattern, checked to compile."""
    fix = 'write judge = { pass_when = "<regular expression over the graded answer>" }'
    if not isinstance(raw, dict) or set(raw) != {"pass_when"} or not isinstance(raw["pass_when"], str):
        raise ConfigError("must be a table with one key, pass_when (a string)", key=key, fix=fix)
    try:
        re.compile(raw["pass_when"])
    except re.error as exc:
        raise ConfigError(
            f"pass_when is not a valid regular expression ({exc})", key=f"{key}.pass_when"
        ) from exc
    return str(raw["pass_when"])


def parse_dist(text: str, *, key: str) -> Dist:
    """Parse ``X``, ``fixed:X``, ``uniform:LO:HI``, ``lognormal:MEDIAN:SIGMA`` or ``exp:MEAN``."""
    parts = text.strip().split(":")
    try:
        if len(parts) == 1:
            dist = Dist(a=float(parts[0]))
        else:
            kind, numbers = parts[0], [float(p) for p in parts[1:]]
            want = {"fixed": 1, "uniform": 2, "lognormal": 2, "exp": 1}.get(kind)
            if want is None or len(numbers) != want:
                raise ValueError(text)
            dist = Dist(kind=kind, a=numbers[0], b=numbers[1] if want == 2 else 0.0)
    except ValueError:
        raise ConfigError(
            f"bad distribution {text!r}",
            key=key,
            fix="write X, fixed:X, uniform:LO:HI, lognormal:MEDIAN:SIGMA or exp:MEAN",
        ) from None
    if dist.a < 0 or dist.b < 0 or not (math.isfinite(dist.a) and math.isfinite(dist.b)):
        raise ConfigError(f"negative or infinite value in {text!r}", key=key)
    if dist.kind == "uniform" and dist.b < dist.a:
        raise ConfigError(f"uniform needs LO <= HI in {text!r}", key=key)
    return dist


def parse_latency(spec: str | dict[str, Any], *, key: str = "latency") -> Latency:
    """Parse a LATENCY SPEC string (or a table of KEY = DIST) into a Latency."""
    items = _items(spec, key, sep="=")
    kwargs: dict[str, Any] = {}
    for name, value in items:
        if name not in LATENCY_KEYS:
            raise ConfigError(
                f"unknown latency key {name!r}", key=f"{key}.{name}", fix=", ".join(LATENCY_KEYS)
            )
        dist = parse_dist(value, key=f"{key}.{name}")
        if name == "heartbeat":
            if dist.kind != "fixed" or dist.a <= 0:
                raise ConfigError("heartbeat must be a positive number of seconds", key=f"{key}.{name}")
            kwargs[name] = dist.a
        else:
            kwargs[name] = dist
    return Latency(**kwargs)


def parse_fault(text: str, *, key: str = "faults") -> Fault:
    """Parse one FAULT (``NAME`` or ``NAME:ARG``)."""
    name, _, arg = text.strip().partition(":")
    if name not in FAULT_NAMES and not _STATUS_RE.fullmatch(name):
        raise ConfigError(
            f"unknown fault {name!r}", key=key, fix=f"use http_STATUS or one of {', '.join(FAULT_NAMES)}"
        )
    fault = Fault(name=name, arg=arg or None)
    if fault.arg is not None:
        ok = (
            fault.arg.isdigit()
            if fault.status is None
            else re.fullmatch(r"(ra|date|ms)=\d+(\.\d+)?", fault.arg)
        )
        if not ok:
            raise ConfigError(f"bad argument in fault {text!r}", key=key, fix="K, ra=S, date=S or ms=MS")
    return fault


def parse_faults(spec: str | dict[str, Any], *, key: str = "faults") -> FaultPlan:
    """Parse a FAULT SPEC string (or a table of FAULT = probability) into a FaultPlan."""
    if isinstance(spec, dict):
        spec = ",".join(f"{name}@{rate}" for name, rate in spec.items())
    if not isinstance(spec, str):
        raise ConfigError("must be a string or a table", key=key)
    script: dict[int, Fault] = {}
    rates: list[tuple[Fault, float]] = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        head, eq, tail = item.partition("=")
        if eq and head.strip().isdigit():
            script[int(head)] = parse_fault(tail, key=key)
            continue
        body, at, rate = item.rpartition("@")
        if not at:
            raise ConfigError(f"bad fault item {item!r}", key=key, fix="write N=FAULT or FAULT@PROBABILITY")
        probability = _number(rate, key)
        if not 0 <= probability <= 1:
            raise ConfigError(f"probability out of [0, 1] in {item!r}", key=key)
        rates.append((parse_fault(body, key=key), probability))
    return FaultPlan(script=script, rates=tuple(rates))


def _items(spec: str | dict[str, Any], key: str, *, sep: str) -> list[tuple[str, str]]:
    if isinstance(spec, dict):
        return [(str(k), str(v)) for k, v in spec.items()]
    if not isinstance(spec, str):
        raise ConfigError("must be a string or a table", key=key)
    items = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, eq, value = item.partition(sep)
        if not eq:
            raise ConfigError(f"bad item {item!r}", key=key, fix=f"write KEY{sep}VALUE")
        items.append((name.strip(), value.strip()))
    return items


def _int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"must be an integer, not {value!r}", key=key)
    return value


def _number(value: Any, key: str) -> float:
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"must be a number, not {value!r}", key=key) from None
    if not math.isfinite(number) or number < 0:
        raise ConfigError(f"must be a finite non-negative number, not {value!r}", key=key)
    return number
