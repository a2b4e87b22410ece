"""Job files (TOML, YAML, OpenAI Batch input JSONL) -> one frozen, validated ``JobSpec``.

Only ``load_job`` and ``load_batch_jsonl`` touch the file system; ``parse_job`` and
``parse_batch_jsonl`` work on text. Every problem is a ``ConfigError`` naming the file, the line (found
from YAML node marks, or by scanning TOML headers and keys), the dotted key and a fix.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import ipaddress
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from runner.assertions import validate_expect
from runner.errors import ConfigError
from runner.jobsource import (
    Format,
    Where,
    check_positive,
    check_table,
    join_key,
    line_of,
    parse_document,
)
from runner.spec import (
    DIALECT_NAMES,
    SIMULATOR_BASE_URL,
    CaseSpec,
    JobSpec,
    Price,
    ProviderSpec,
    RetryPolicy,
    Timeouts,
    merge_params,
)

if TYPE_CHECKING:
    import os
    from collections.abc import Iterable, Mapping


# Key -> expected type, per table. "number" is int or float (never bool); "strs" is a str or a list
# of str. The builders below add the range and cross-field checks.
_TOP = {
    "name": "str",
    "tags": "list",
    "defaults": "table",
    "providers": "list",
    "cases": "list",
    "cases_file": "str",
    "max_cost_usd": "number",
}
_DEFAULTS = {"repeats": "int", "params": "table", "retry": "table", "timeouts": "table"}
_RETRY = {f.name: "int" if f.type == "int" else "number" for f in dataclasses.fields(RetryPolicy)}
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
    "simulator": "table",
}
_CASE = {
    "id": "str",
    "prompt": "str",
    "messages": "list",
    "system": "str",
    "tools": "list",
    "providers": "list",
    "repeats": "int",
    "params": "table",
    "expect": "table",
}
_JSON_TYPES = ("string", "number", "integer", "boolean", "object", "array", "null")
# Credentials belong in api_key_env only: a header table would put them in the spec and the DB.
_SECRET_HEADERS = ("authorization", "proxy-authorization", "x-api-key", "api-key", "x-goog-api-key")
_BATCH_URL = "/v1/chat/completions"
_BATCH_BODY_MOVED = ("model", "messages", "tools", "stream")


# -- file I/O: the only two functions that read ------------------------------------------------------


def load_job(path: str | os.PathLike[str], *, provider: ProviderSpec | None = None) -> JobSpec:
    """Read and validate a job file; ``.jsonl`` is an OpenAI Batch input file run on ``provider``.

    Raises:
        ConfigError: the file is unreadable or invalid; the error names file, line, key and fix.
    """
    file = Path(path)
    if file.suffix == ".jsonl":
        if provider is None:
            raise ConfigError(
                "an OpenAI Batch input file names no provider",
                path=str(file),
                fix="pass the provider to run it on (runner run batch.jsonl --provider ...)",
            )
        return load_batch_jsonl(file, provider=provider)
    fmt: Format = "yaml" if file.suffix in (".yaml", ".yml") else "toml"
    data = _read(file, None, None)
    doc, locations = parse_document(data.decode("utf-8", errors="replace"), fmt, str(file))
    cases_text: tuple[str, str] | None = None
    digest = hashlib.sha256(data)
    if isinstance(doc.get("cases_file"), str):
        cases_path = file.parent / doc["cases_file"]
        cases_data = _read(cases_path, str(file), locations.get("cases_file"))
        digest.update(cases_data)  # the cases are part of what ran
        cases_text = (str(cases_path), cases_data.decode("utf-8", errors="replace"))
    return _build_job(doc, locations, path=str(file), cases_text=cases_text, sha256=digest.hexdigest())


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
    return _provider(where, raw, "--provider", {}, RetryPolicy(), Timeouts())


def _option_value(value: str) -> Any:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(value, value)


def load_batch_jsonl(path: str | os.PathLike[str], *, provider: ProviderSpec) -> JobSpec:
    """Read an OpenAI Batch API input file and run every line as a case on ``provider``."""
    file = Path(path)
    data = _read(file, None, None)
    return parse_batch_jsonl(
        data.decode("utf-8", errors="replace"),
        path=str(file),
        provider=provider,
        sha256=hashlib.sha256(data).hexdigest(),
    )


def _read(file: Path, job_path: str | None, line: int | None) -> bytes:
    try:
        return file.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read {file}: {exc.strerror or exc}",
            path=job_path or str(file),
            key="cases_file" if job_path else None,
            line=line,
            fix="check the path (a cases_file is relative to the job file)",
        ) from exc


# -- pure parsing -----------------------------------------------------------------------------------


def parse_job(
    text: str,
    *,
    path: str,
    fmt: Format = "toml",
    cases_text: tuple[str, str] | None = None,
    sha256: str | None = None,
) -> JobSpec:
    """Validate a TOML or YAML job from its text; ``cases_text`` is ``(path, text)`` of its cases_file."""
    doc, locations = parse_document(text, fmt, path)
    digest = sha256 or hashlib.sha256(text.encode()).hexdigest()
    return _build_job(doc, locations, path=path, cases_text=cases_text, sha256=digest)


def check_environment(job: JobSpec, environ: Mapping[str, str]) -> None:
    """Fail unless every non-simulated provider's ``api_key_env`` is set and non-empty in ``environ``.

    Only presence is checked: the value is never read into the spec, an error or a log.
    """
    missing = [
        (index, provider)
        for index, provider in enumerate(job.providers)
        if provider.api_key_env and not provider.is_simulated and not environ.get(provider.api_key_env)
    ]
    if missing:
        index, first = missing[0]
        names = ", ".join(sorted({p.api_key_env for _, p in missing if p.api_key_env}))
        key = f"providers[{index}].api_key_env"
        raise ConfigError(
            f"environment variable {first.api_key_env} (provider {first.name!r}) is not set",
            path=job.source_path,
            key=key,
            line=line_of(job.locations, key),
            fix=f"export {names} before running, or remove api_key_env for a keyless provider",
        )


def _build_job(
    doc: dict[str, Any],
    locations: Mapping[str, int],
    *,
    path: str,
    cases_text: tuple[str, str] | None,
    sha256: str,
) -> JobSpec:
    where = Where(path=path, locations=locations)
    check_table(where, doc, "", _TOP)
    if not all(isinstance(tag, str) for tag in doc.get("tags", [])):
        raise where.error("tags", "must be a list of strings", 'write tags = ["nightly"]')
    check_positive(where, doc, "", "max_cost_usd", zero=True)
    defaults = check_table(where, doc.get("defaults", {}), "defaults", _DEFAULTS)
    check_positive(where, defaults, "defaults", "repeats", zero=False)
    retry = _retry(where, defaults.get("retry", {}), "defaults.retry", RetryPolicy())
    timeouts = _timeouts(where, defaults.get("timeouts", {}), "defaults.timeouts", Timeouts())
    base_params = defaults.get("params", {})

    raw_providers = doc.get("providers")
    if not raw_providers:
        raise where.error("providers", "a job needs at least one provider", "add a [[providers]] table")
    providers: list[ProviderSpec] = []
    for index, raw in enumerate(raw_providers):
        provider = _provider(where, raw, f"providers[{index}]", base_params, retry, timeouts)
        if any(p.name == provider.name for p in providers):
            key = f"providers[{index}].name"
            raise where.error(
                key, f"duplicate provider name {provider.name!r}", "give each provider a unique name"
            )
        providers.append(provider)
    names = [p.name for p in providers]

    cases: list[CaseSpec] = []
    seen: set[str] = set()
    sources: list[tuple[Where, str, Any]] = [
        (where, f"cases[{index}]", raw) for index, raw in enumerate(doc.get("cases", []))
    ]
    if cases_text is not None:
        sources.extend(_cases_file_sources(*cases_text, start=len(sources)))
    for case_where, prefix, raw in sources:
        case = _case(case_where, raw, prefix, names)
        if case.id in seen:
            raise case_where.error(
                f"{prefix}.id", f"duplicate case id {case.id!r}", "give each case a unique id"
            )
        seen.add(case.id)
        cases.append(case)
    if not cases:
        raise where.error(None, "the job has no cases", "add a [[cases]] table or a cases_file")

    return JobSpec(
        name=doc.get("name") or Path(path).stem,
        providers=tuple(providers),
        cases=tuple(cases),
        tags=tuple(doc.get("tags", ())),
        repeats=defaults.get("repeats", 1),
        max_cost_usd=_float_or_none(doc.get("max_cost_usd")),
        source_path=path,
        source_sha256=sha256,
        locations=locations,
    )


def _cases_file_sources(path: str, text: str, *, start: int) -> Iterable[tuple[Where, str, Any]]:
    index = start
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        prefix = f"cases[{index}]"
        where = Where(path=path, locations={prefix: number})
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise where.error(prefix, f"not valid JSON: {exc.msg}", "write one JSON object per line") from exc
        yield where, prefix, raw
        index += 1


def _retry(where: Where, raw: Any, prefix: str, base: RetryPolicy) -> RetryPolicy:
    table = check_table(where, raw, prefix, _RETRY)
    check_positive(where, table, prefix, "max_attempts", zero=False)
    for key in ("backoff_initial", "backoff_max", "retry_after_max"):
        check_positive(where, table, prefix, key, zero=True)
    numbers: dict[str, Any] = {k: float(v) if _RETRY[k] == "number" else v for k, v in table.items()}
    return dataclasses.replace(base, **numbers)


def _timeouts(where: Where, raw: Any, prefix: str, base: Timeouts) -> Timeouts:
    table = check_table(where, raw, prefix, _TIMEOUTS)
    for key in table:
        check_positive(where, table, prefix, key, zero=False)
    return dataclasses.replace(base, **{k: float(v) for k, v in table.items()})


def _float_or_none(value: int | float | None) -> float | None:
    return None if value is None else float(value)


def _required(where: Where, table: Mapping[str, Any], prefix: str, key: str, fix: str) -> Any:
    value = table.get(key)
    if value is None or value == "":
        raise where.error(join_key(prefix, key), f"{key} is required", fix)
    return value


def _provider(
    where: Where,
    raw: Any,
    prefix: str,
    base_params: dict[str, Any],
    retry: RetryPolicy,
    timeouts: Timeouts,
) -> ProviderSpec:
    table = check_table(where, raw, prefix, _PROVIDER)
    name = _required(where, table, prefix, "name", 'name the provider, e.g. name = "mini"')
    if "/" in name:
        raise where.error(
            f"{prefix}.name", "must not contain '/'", "unit keys are provider/case/repeat; drop the '/'"
        )
    dialect = _required(where, table, prefix, "dialect", f"set dialect to one of {', '.join(DIALECT_NAMES)}")
    if dialect not in DIALECT_NAMES:
        close = difflib.get_close_matches(dialect, DIALECT_NAMES, n=1, cutoff=0.5)
        fix = f"did you mean {close[0]!r}?" if close else f"use one of {', '.join(DIALECT_NAMES)}"
        raise where.error(f"{prefix}.dialect", f"unknown dialect {dialect!r}", fix)
    model = _required(where, table, prefix, "model", "name the model the provider should run")
    for key in ("concurrency",):
        check_positive(where, table, prefix, key, zero=False)
    for key in ("rpm", "tpm"):
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
        base_url, simulator = SIMULATOR_BASE_URL, dict(simulator or {})
    else:
        base_url = _required(where, table, prefix, "base_url", "set the provider's https:// API base URL")
        _check_url(where, f"{prefix}.base_url", base_url, insecure_ok=table.get("allow_insecure", False))
    headers = table.get("headers", {})
    for header, value in headers.items():
        key = f"{prefix}.headers.{header}"
        if not isinstance(value, str):
            raise where.error(key, "a header value must be a string", "quote the value")
        if header.lower() in _SECRET_HEADERS:
            raise where.error(
                key, "credentials may not be written in a job file", "name the variable in api_key_env"
            )
    price = None
    if "price" in table:
        price_table = check_table(where, table["price"], f"{prefix}.price", _PRICE)
        for key in ("input", "output"):
            _required(
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
        rpm=_float_or_none(table.get("rpm")),
        tpm=_float_or_none(table.get("tpm")),
        params=merge_params(base_params, table.get("params", {})),
        headers=dict(headers),
        price=price,
        retry=_retry(where, table.get("retry", {}), f"{prefix}.retry", retry),
        timeouts=_timeouts(where, table.get("timeouts", {}), f"{prefix}.timeouts", timeouts),
        allow_insecure=table.get("allow_insecure", False),
        simulator=simulator,
    )


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


def _case(where: Where, raw: Any, prefix: str, provider_names: list[str]) -> CaseSpec:
    table = check_table(where, raw, prefix, _CASE)
    case_id = _required(where, table, prefix, "id", "give the case an id unique in the job")
    check_positive(where, table, prefix, "repeats", zero=False)
    has_prompt, has_messages = "prompt" in table, "messages" in table
    if has_prompt == has_messages:
        raise where.error(
            prefix, "a case needs exactly one of prompt or messages", "keep prompt or messages, not both"
        )
    system = table.get("system")
    if has_prompt:
        messages: list[Any] = [{"role": "user", "content": table["prompt"]}]
    else:
        messages, system = _messages(where, table["messages"], f"{prefix}.messages", system)
    tools = table.get("tools", [])
    for index, tool in enumerate(tools):
        _check_tool(where, tool, f"{prefix}.tools[{index}]")
    subset = table.get("providers")
    if subset is not None:
        for index, name in enumerate(subset):
            if name not in provider_names:
                close = difflib.get_close_matches(str(name), provider_names, n=1)
                fix = f"did you mean {close[0]!r}?" if close else f"use one of {', '.join(provider_names)}"
                raise where.error(f"{prefix}.providers[{index}]", f"unknown provider {name!r}", fix)
    expect = table.get("expect")
    if expect is not None:
        _check_expect(where, expect, f"{prefix}.expect")
    return CaseSpec(
        id=case_id,
        messages=tuple(messages),
        system=system,
        tools=tuple(tools),
        params=dict(table.get("params", {})),
        providers=tuple(subset) if subset is not None else None,
        repeats=table.get("repeats"),
        expect=expect,
    )


def _messages(where: Where, raw: list[Any], prefix: str, system: str | None) -> tuple[list[Any], str | None]:
    """Check chat messages; a leading system message moves to ``system`` (dialects send it apart)."""
    if not raw:
        raise where.error(prefix, "must hold at least one message", 'add {role = "user", content = "..."}')
    for index, message in enumerate(raw):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise where.error(
                f"{prefix}[{index}]", "a message needs a role", 'write {role = "user", content = "..."}'
            )
    messages = list(raw)
    if messages[0]["role"] == "system":
        if system is not None or not isinstance(messages[0].get("content"), str):
            raise where.error(
                f"{prefix}[0]", "a system message here conflicts with system", "keep one system prompt"
            )
        system = messages.pop(0)["content"]
    return messages, system


def _check_tool(where: Where, tool: Any, prefix: str) -> None:
    function = tool.get("function") if isinstance(tool, dict) else None
    if not isinstance(function, dict) or tool.get("type") != "function" or not function.get("name"):
        raise where.error(
            prefix,
            "a tool must be in OpenAI function format",
            'write {type = "function", function = {name = "...", parameters = {...}}}',
        )


def _check_expect(where: Where, raw: Any, prefix: str) -> None:
    # runner.assertions owns what an expectation means, so it also says what a valid one is; the
    # loader only turns its first problem into an error that points at the file and line.
    problems = validate_expect(raw)
    if problems:
        key, _, problem = problems[0].partition(": ")
        full_key = prefix if key == "expect" else join_key(prefix, key)
        raise where.error(full_key, "invalid assertion", problem)


def parse_batch_jsonl(text: str, *, path: str, provider: ProviderSpec, sha256: str | None = None) -> JobSpec:
    """Turn OpenAI Batch input lines into a job: one case per line, ``custom_id`` as the case id.

    The body's ``model`` is used only when ``provider.model`` is empty (running one batch file on
    another provider is the point); ``messages`` and ``tools`` become the case, and the rest of the
    body (``temperature``, ``max_tokens``, ``stream_options``...) its params. ``stream`` is dropped:
    the dialect always streams.
    """
    cases: list[CaseSpec] = []
    seen: set[str] = set()
    models: set[str] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = Where(path=path, locations={"": number, "custom_id": number, "body": number, "url": number})
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"not valid JSON: {exc.msg}", path=path, line=number, fix="write one request per line"
            ) from exc
        if not isinstance(raw, dict):
            raise ConfigError(
                "a batch line must be a JSON object", path=path, line=number, fix="write one request per line"
            )
        case_id = raw.get("custom_id")
        if not isinstance(case_id, str) or not case_id:
            raise where.error("custom_id", "custom_id is required", "give every line a unique custom_id")
        if case_id in seen:
            raise where.error(
                "custom_id", f"duplicate custom_id {case_id!r}", "give every line a unique custom_id"
            )
        seen.add(case_id)
        if raw.get("method", "POST") != "POST" or raw.get("url") != _BATCH_URL:
            raise where.error("url", f"only POST {_BATCH_URL} can be streamed", f"use url {_BATCH_URL!r}")
        body = raw.get("body")
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            raise where.error("body.messages", "the body needs a messages list", "add body.messages")
        messages, system = _messages(where, body["messages"], "body.messages", None)
        tools = body.get("tools", [])
        for index, tool in enumerate(tools if isinstance(tools, list) else [None]):
            _check_tool(where, tool, f"body.tools[{index}]")
        if isinstance(body.get("model"), str):
            models.add(body["model"])
        params = {k: v for k, v in body.items() if k not in _BATCH_BODY_MOVED}
        cases.append(
            CaseSpec(id=case_id, messages=tuple(messages), system=system, tools=tuple(tools), params=params)
        )
    if not cases:
        raise ConfigError("the batch file has no requests", path=path, fix="write one request per line")
    if not provider.model:
        if len(models) != 1:
            raise ConfigError(
                f"the batch names {len(models)} models and the provider none",
                path=path,
                fix="give the provider a model",
            )
        provider = dataclasses.replace(provider, model=models.pop())
    return JobSpec(
        name=Path(path).stem,
        providers=(provider,),
        cases=tuple(cases),
        source_path=path,
        source_sha256=sha256 or hashlib.sha256(text.encode()).hexdigest(),
    )
