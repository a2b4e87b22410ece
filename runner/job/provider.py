"""A job's ``[[providers]]`` tables (with their retry, timeouts and price tables) -> ``ProviderSpec``.

Also the ``--provider SPEC`` option of ``runner run batch.jsonl``, checked the same way. Pure.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
from typing import Any
from urllib.parse import urlsplit

from runner.errors import ConfigError
from runner.job.source import Where, check_positive, check_table, line_of, optional_float, require
from runner.simulator.config import SimulatorConfig
from runner.spec import (
    DEFAULT_MAX_RESPONSE_BYTES,
    PROVIDER_ROLES,
    SIMULATOR_BASE_URL,
    TRANSPORTS,
    Price,
    ProviderSpec,
    RetryPolicy,
    Timeouts,
    merge_params,
)
from runner.wire.dialects import get_dialect
from runner.wire.dialects import names as dialect_names
from runner.wire.dialects.gemini_request import DEFAULT_BASE_URL as GEMINI_BASE_URL

# Key -> expected type, per table (runner.job.source.check_table); the builders add range checks.
_RETRY = {
    "max_attempts": "int",
    "backoff_initial": "number",
    "backoff_max": "number",
    "retry_after_max": "number",
}
_TIMEOUTS = {f.name: "number" for f in dataclasses.fields(Timeouts)}
_PRICE = {f.name: "number" for f in dataclasses.fields(Price)}
_PROVIDER = {
    "name": "str",
    "dialect": "str",
    "base_url": "str",
    "model": "str",
    "api_key_env": "str",
    "concurrency": "int",
    "rpm": "number",
    "tpm": "number",
    "params": "table",
    "headers": "table",
    "price": "table",
    "retry": "table",
    "timeouts": "table",
    "allow_insecure": "bool",
    "max_response_bytes": "int",
    "simulator": "table",
    "transport": "str",
    "api_version": "str",
    "role": "str",
}
# Dialects whose official SDK has a fixed default base URL, used when a job file names none.
_DEFAULT_BASE_URLS = {"gemini": GEMINI_BASE_URL}
# Credentials belong in api_key_env only: a header table would put them in the spec and the DB.
_SECRET_HEADERS = ("authorization", "proxy-authorization", "x-api-key", "api-key", "x-goog-api-key")


def parse_provider_option(text: str) -> ProviderSpec:
    """The provider of ``runner run batch.jsonl --provider SPEC``, checked like a job file's.

    SPEC is ``simulator`` (the built-in simulator, openai-chat) or comma-separated ``key=value`` pairs
    of a ``[[providers]]`` table: ``dialect=openai-chat,base_url=https://…/v1,model=…,api_key_env=…``
    (``name`` defaults to ``batch``; numbers are read as numbers).
    """
    if text.strip() == "simulator":
        raw: dict[str, Any] = {
            "name": "batch",
            "dialect": "openai-chat",
            "model": "simulated",
            "simulator": {},
        }
    else:
        raw = {"name": "batch"}
        for item in filter(None, (part.strip() for part in text.split(","))):
            key, sep, value = item.partition("=")
            if not sep:
                raise ConfigError(
                    f"{item!r} is not key=value",
                    key="--provider",
                    fix="write --provider dialect=openai-chat,base_url=https://…/v1,model=…,api_key_env=…",
                )
            raw[key.strip()] = _option_value(value.strip())
    where = Where(path="--provider", locations={})
    return build_provider(where, raw, "--provider", {}, RetryPolicy(), Timeouts())


def _option_value(value: str) -> Any:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(value, value)


def build_retry(where: Where, raw: Any, prefix: str, base: RetryPolicy) -> RetryPolicy:
    """A ``retry`` table at ``prefix`` over ``base`` (the job's defaults, or the built-in policy)."""
    table = check_table(where, raw, prefix, _RETRY)
    check_positive(where, table, prefix, "max_attempts", zero=False)
    for key in ("backoff_initial", "backoff_max", "retry_after_max"):
        check_positive(where, table, prefix, key, zero=True)
    numbers: dict[str, Any] = {k: float(v) if _RETRY[k] == "number" else v for k, v in table.items()}
    return dataclasses.replace(base, **numbers)


def build_timeouts(where: Where, raw: Any, prefix: str, base: Timeouts) -> Timeouts:
    """A ``timeouts`` table at ``prefix`` over ``base``."""
    table = check_table(where, raw, prefix, _TIMEOUTS)
    for key in table:
        check_positive(where, table, prefix, key, zero=False)
    return dataclasses.replace(base, **{k: float(v) for k, v in table.items()})


def build_provider(
    where: Where,
    raw: Any,
    prefix: str,
    base_params: dict[str, Any],
    retry: RetryPolicy,
    timeouts: Timeouts,
) -> ProviderSpec:
    """One ``[[providers]]`` table at ``prefix``; the job's defaults fill in params, retry and timeouts."""
    table = check_table(where, raw, prefix, _PROVIDER)
    name = require(where, table, prefix, "name", 'name the provider, e.g. name = "mini"')
    if "/" in name:
        raise where.error(
            f"{prefix}.name", "must not contain '/'", "unit keys are provider/case/repeat; drop the '/'"
        )
    known = dialect_names()
    dialect = require(where, table, prefix, "dialect", f"set dialect to one of {', '.join(known)}")
    if dialect not in known:
        close = difflib.get_close_matches(dialect, known, n=1, cutoff=0.5)
        fix = f"did you mean {close[0]!r}?" if close else f"use one of {', '.join(known)}"
        raise where.error(f"{prefix}.dialect", f"unknown dialect {dialect!r}", fix)
    model = require(where, table, prefix, "model", "name the model the provider should run")
    for key in ("concurrency", "rpm", "tpm", "max_response_bytes"):
        check_positive(where, table, prefix, key, zero=False)
    base_url = table.get("base_url")
    simulator = table.get("simulator")
    if simulator is not None or (base_url or "").startswith(SIMULATOR_BASE_URL):
        if base_url is not None and not base_url.startswith(SIMULATOR_BASE_URL):
            raise where.error(
                f"{prefix}.base_url",
                "a simulated provider cannot have a real base_url",
                f'remove base_url (or write "{SIMULATOR_BASE_URL}"), or remove the simulator table',
            )
        base_url, simulator = SIMULATOR_BASE_URL, _simulator(where, simulator or {}, f"{prefix}.simulator")
    else:
        base_url = base_url or _DEFAULT_BASE_URLS.get(dialect)
        if base_url is None:
            base_url = require(where, table, prefix, "base_url", "set the provider's https:// API base URL")
        _check_url(where, f"{prefix}.base_url", base_url, insecure_ok=table.get("allow_insecure", False))
    transport = table.get("transport", "runner")
    if transport not in TRANSPORTS:
        raise where.error(
            f"{prefix}.transport",
            f"unknown transport {transport!r}",
            'use "runner" (the default) or "httpx" (stock httpx)',
        )
    role = table.get("role", "target")
    if role not in PROVIDER_ROLES:
        raise where.error(
            f"{prefix}.role",
            f"unknown role {role!r}",
            'use "target" (the default: it is sent the cases) or "judge" (it only grades answers)',
        )
    headers = table.get("headers", {})
    for header, value in headers.items():
        key = f"{prefix}.headers.{header}"
        if not isinstance(value, str):
            raise where.error(key, "a header value must be a string", "quote the value")
        if header.lower() in _SECRET_HEADERS:
            raise where.error(
                key, "credentials may not be written in a job file", "name the variable in api_key_env"
            )
    own = table.get("params", {})
    params = merge_params(base_params, own)
    # A param the dialect cannot send would make every request of the run a 400 (a case's own
    # params are checked with its messages: check_expressible).
    wire = get_dialect(dialect)
    for key, value in params.items():
        problem = wire.param_problem(key, value)
        if problem is None:
            continue
        if key in own:
            raise where.error(f"{prefix}.params.{key}", f"the {dialect} dialect cannot send {key!r}", problem)
        # Written in [defaults] params, which every provider gets: point there, and say which provider.
        message = f"provider {name!r}: the {dialect} dialect cannot send {key!r} (from defaults.params)"
        fix = f"move {key!r} to the providers whose API takes it; for {dialect}: {problem}"
        raise where.error(f"defaults.params.{key}", message, fix)
    price = None
    if "price" in table:
        price_table = check_table(where, table["price"], f"{prefix}.price", _PRICE)
        for key in ("input", "output"):
            require(
                where, price_table, f"{prefix}.price", key, "give input and output in USD per million tokens"
            )
        for key in price_table:
            check_positive(where, price_table, f"{prefix}.price", key, zero=True)
        price = Price(**{k: float(v) for k, v in price_table.items()})
    return ProviderSpec(
        name=name,
        dialect=dialect,
        base_url=base_url,
        model=model,
        api_key_env=table.get("api_key_env") or None,
        concurrency=table.get("concurrency", 8),
        rpm=optional_float(table.get("rpm")),
        tpm=optional_float(table.get("tpm")),
        params=params,
        headers=dict(headers),
        price=price,
        retry=build_retry(where, table.get("retry", {}), f"{prefix}.retry", retry),
        timeouts=build_timeouts(where, table.get("timeouts", {}), f"{prefix}.timeouts", timeouts),
        allow_insecure=table.get("allow_insecure", False),
        max_response_bytes=table.get("max_response_bytes", DEFAULT_MAX_RESPONSE_BYTES),
        simulator=simulator,
        transport=transport,
        role=role,
        api_version=_api_version(where, table, prefix, dialect),
    )


def _api_version(where: Where, table: dict[str, Any], prefix: str, dialect: str) -> str | None:
    """``api_version`` (gemini only: the path segment, ``v1`` or ``v1beta``), checked to be one segment."""
    value: str | None = table.get("api_version")
    if value is None:
        return None
    if dialect != "gemini":
        raise where.error(f"{prefix}.api_version", f"the {dialect} dialect has no api_version", "remove it")
    if not value or not value.isascii() or not value.replace("_", "").isalnum():
        raise where.error(
            f"{prefix}.api_version", f"{value!r} is not an API version", 'write "v1" or "v1beta"'
        )
    return value


def _simulator(where: Where, raw: dict[str, Any], prefix: str) -> SimulatorConfig:
    """The ``[providers.simulator]`` table, parsed by the simulator (which owns its mini-languages)."""
    try:
        return SimulatorConfig.from_dict(raw, prefix=prefix)
    except ConfigError as exc:
        # The simulator names the key; only the loader knows the file and the line.
        key = exc.key or prefix
        raise ConfigError(
            str(exc.args[0]), path=where.path, key=key, line=line_of(where.locations, key), fix=exc.fix
        ) from exc


def _check_url(where: Where, key: str, url: str, *, insecure_ok: bool) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise where.error(key, f"{url!r} is not an http(s) URL", "write it as https://host/path")
    if parts.username or parts.password or parts.query:
        raise where.error(
            key, "must not carry credentials or a query", "put the key's variable in api_key_env"
        )
    if parts.scheme == "http" and not insecure_ok and not _is_loopback(parts.hostname):
        raise where.error(
            key,
            "plain http:// is only allowed for loopback hosts",
            "use https://, or set allow_insecure = true if this network is trusted",
        )


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
