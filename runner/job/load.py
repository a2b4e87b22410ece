"""Job files (TOML, YAML, OpenAI Batch input JSONL) -> one frozen, validated ``JobSpec``.

Only ``load_job`` and ``load_batch_jsonl`` touch the file system; ``parse_job`` and
``parse_batch_jsonl`` work on text. Every problem is a ``ConfigError`` naming the file, the line (found
from YAML node marks, or by scanning TOML headers and keys), the dotted key and a fix. The tables are
checked in ``runner.job.provider`` and ``runner.job.case``, Batch lines in ``runner.job.batch``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.errors import ConfigError
from runner.job.batch import parse_batch_jsonl
from runner.job.case import cases_file_sources, check_expressible, expand_case
from runner.job.checks import CheckLoader
from runner.job.judge import check_case_providers, check_judge, check_judges_used
from runner.job.plan import case_providers
from runner.job.provider import build_provider, build_retry, build_timeouts, parse_provider_option
from runner.job.source import (
    Format,
    Where,
    check_positive,
    check_table,
    line_of,
    optional_float,
    parse_document,
)
from runner.job.template import new_environment
from runner.spec import CaseSpec, JobSpec, ProviderSpec, RetryPolicy, Timeouts

if TYPE_CHECKING:
    import os
    from collections.abc import Callable, Mapping

    from runner.job.vars import ReadText

__all__ = [
    "check_environment",
    "check_plan_size",
    "decode_text",
    "load_batch_jsonl",
    "load_job",
    "parse_batch_jsonl",
    "parse_job",
    "parse_provider_option",
]


# Key -> expected type, per table. "number" is int or float (never bool); "strs" is a str or a list
# of str. The builders add the range and cross-field checks (providers and cases: runner.job.provider,
# runner.job.case).
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

log = logging.getLogger(__name__)


# -- file I/O: the only two functions that read ------------------------------------------------------


def load_job(path: str | os.PathLike[str], *, provider: ProviderSpec | None = None) -> JobSpec:
    """Read and validate a job file; ``.jsonl`` is an OpenAI Batch input file run on ``provider``.

    Raises:
        ConfigError: the file is unreadable or invalid; the error names file, line, key and fix.
    """
    file = Path(path)
    if file.suffix == ".json":
        raise ConfigError(
            "a .json job file is not read (job files are TOML, YAML, or an OpenAI Batch .jsonl)",
            path=str(file),
            fix="JSON is valid YAML: rename the file to .yaml, or write it as TOML",
        )
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
    doc, locations = parse_document(decode_text(data, str(file)), fmt, str(file))
    cases_text: tuple[str, str] | None = None
    digest = hashlib.sha256(data)
    if isinstance(doc.get("cases_file"), str):
        cases_path = file.parent / doc["cases_file"]
        cases_data = _read(cases_path, str(file), locations.get("cases_file"))
        digest.update(cases_data)  # the cases are part of what ran
        cases_text = (str(cases_path), decode_text(cases_data, str(cases_path)))
    read_vars = _vars_reader(file.parent, digest.update)
    job = _build_job(
        doc,
        locations,
        path=str(file),
        cases_text=cases_text,
        sha256="",
        read_vars=read_vars,
        checks=CheckLoader(file.parent),  # custom checks: Python files beside the job file
    )
    # Only now: the vars files the cases named were read (and digested) while they were built.
    return dataclasses.replace(job, source_sha256=digest.hexdigest())


def _vars_reader(folder: Path, digest: Callable[[bytes], object]) -> ReadText:
    """Reads a case's ``vars_file`` (relative to the job file) once, passing its bytes to ``digest``."""
    texts: dict[Path, tuple[str, str]] = {}

    def read(written: str) -> tuple[str, str]:
        path = folder / written
        if path not in texts:
            data = path.read_bytes()  # an OSError: the case names the job file's line
            digest(data)  # the rows are part of what ran, as a cases_file's cases are
            texts[path] = (str(path), decode_text(data, str(path)))
        return texts[path]

    return read


def load_batch_jsonl(path: str | os.PathLike[str], *, provider: ProviderSpec) -> JobSpec:
    """Read an OpenAI Batch API input file and run every line as a case on ``provider``."""
    file = Path(path)
    data = _read(file, None, None)
    job = parse_batch_jsonl(
        decode_text(data, str(file)),
        path=str(file),
        provider=provider,
        sha256=hashlib.sha256(data).hexdigest(),
    )
    return job


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


def decode_text(data: bytes, path: str) -> str:
    """A job file's text: UTF-8, a leading byte order mark dropped (it is valid UTF-8 with a marker).

    Anything else fails: decoding with replacement would run the job with names and prompts mangled.
    """
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(
            f"not UTF-8: byte 0x{data[exc.start]:02x} at column {column} cannot be decoded",
            path=path,
            line=line,
            fix="save the file as UTF-8 (from Latin-1: iconv -f latin1 -t utf-8 FILE)",
        ) from exc


def check_plan_size(job: JobSpec, limit: int) -> int:
    """The number of units ``job`` plans; more than ``limit`` fails, pointing at the largest repeats.

    Every unit is a database row written before anything is sent, so a typo in ``repeats`` would
    otherwise fill the database for minutes before the first request.

    Raises:
        ConfigError: the plan has more than ``limit`` units.
    """
    sizes = [
        (len(list(case_providers(job, case))) * _repeats(job, case), index)
        for index, case in enumerate(job.cases)
    ]
    total = sum(size for size, _ in sizes)
    if job.subset is not None and job.subset.limit is not None:  # --limit caps what is planned
        total = min(total, job.subset.limit)
    if total <= limit:
        return total
    _, biggest = max(sizes)
    case = job.cases[biggest]
    key = "defaults.repeats" if case.repeats is None else f"cases[{biggest}].repeats"
    raise ConfigError(
        f"the job plans {total:,} units (providers x cases x repeats), more than {limit:,}; "
        f"case {case.id!r} alone has {max(sizes)[0]:,}",
        path=job.source_path,
        key=key,
        line=line_of(job.locations, key),
        fix="lower repeats, or pass --yes to plan that many units",
    )


def _warn_single_rates(cases: list[CaseSpec], repeats: int) -> None:
    # Allowed (a job may lower repeats for a quick try), but a rate over one repeat is that unit's verdict.
    # One line for them all: a case expanded from 500 rows is 500 cases.
    single = [
        case.id
        for case in cases
        if case.expect is not None and case.expect.pass_rate is not None and (case.repeats or repeats) == 1
    ]
    if single:
        log.warning(
            "%d case(s) set pass_rate over 1 repeat (first: %r): the rate is the unit's own verdict; "
            "set repeats above 1",
            len(single),
            single[0],
        )


def _repeats(job: JobSpec, case: CaseSpec) -> int:
    return case.repeats if case.repeats is not None else job.repeats


# -- pure parsing -----------------------------------------------------------------------------------


def parse_job(
    text: str,
    *,
    path: str,
    fmt: Format = "toml",
    cases_text: tuple[str, str] | None = None,
    sha256: str | None = None,
    vars_files: Mapping[str, str] | None = None,
) -> JobSpec:
    """Validate a TOML or YAML job from its text; ``cases_text`` is ``(path, text)`` of its cases_file.

    ``vars_files`` maps a ``vars_file`` as the cases write it to its text (a missing one is unreadable).
    """
    doc, locations = parse_document(text, fmt, path)
    digest = sha256 or hashlib.sha256(text.encode()).hexdigest()
    texts = dict(vars_files or {})

    def read_vars(written: str) -> tuple[str, str]:
        if written not in texts:
            raise FileNotFoundError(2, "No such file or directory")
        return written, texts[written]

    return _build_job(doc, locations, path=path, cases_text=cases_text, sha256=digest, read_vars=read_vars)


def check_environment(job: JobSpec, environ: Mapping[str, str]) -> None:
    """Fail unless every non-simulated provider's ``api_key_env`` is set, non-empty and sendable.

    The value is never read into the spec, an error or a log: errors name the variable only.
    """
    missing: list[tuple[int, ProviderSpec]] = []
    for index, provider in enumerate(job.providers):
        if not provider.api_key_env or provider.is_simulated:
            continue
        value = environ.get(provider.api_key_env)
        if not value:
            missing.append((index, provider))
        elif not (value.isascii() and value.isprintable() and " " not in value):
            # KEY=$(cat key.txt) with CRLF: no header can carry it, and the HTTP library's error
            # would quote it. Fail before anything is sent.
            raise _key_error(
                job,
                index,
                f"environment variable {provider.api_key_env} (provider {provider.name!r}) holds "
                "whitespace, a control or a non-ASCII character, which no HTTP header can carry",
                f"export {provider.api_key_env} again without the stray characters (a trailing newline?)",
            )
    if missing:
        index, first = missing[0]
        names = ", ".join(sorted({p.api_key_env for _, p in missing if p.api_key_env}))
        raise _key_error(
            job,
            index,
            f"environment variable {first.api_key_env} (provider {first.name!r}) is not set",
            f"export {names} before running, or remove api_key_env for a keyless provider",
        )


def _moved_system(raw: dict[str, Any]) -> int:
    """1 when the case's messages began with a system message (build_case moved it to ``system``)."""
    messages = raw.get("messages")
    first = messages[0] if isinstance(messages, list) and messages else None
    return 1 if isinstance(first, dict) and first.get("role") == "system" else 0


def _key_error(job: JobSpec, index: int, message: str, fix: str) -> ConfigError:
    key = f"providers[{index}].api_key_env"
    return ConfigError(message, path=job.source_path, key=key, line=line_of(job.locations, key), fix=fix)


def _build_job(
    doc: dict[str, Any],
    locations: Mapping[str, int],
    *,
    path: str,
    cases_text: tuple[str, str] | None,
    sha256: str,
    read_vars: ReadText,
    checks: CheckLoader | None = None,
) -> JobSpec:
    """The job of a parsed document; ``checks`` imports custom checks (None: parse_job, which runs no
    Python, leaves them unloaded and grading reports them as errors)."""
    where = Where(path=path, locations=locations)
    check_table(where, doc, "", _TOP)
    if not all(isinstance(tag, str) for tag in doc.get("tags", [])):
        raise where.error("tags", "must be a list of strings", 'write tags = ["nightly"]')
    check_positive(where, doc, "", "max_cost_usd", zero=True)
    defaults = check_table(where, doc.get("defaults", {}), "defaults", _DEFAULTS)
    check_positive(where, defaults, "defaults", "repeats", zero=False)
    retry = build_retry(where, defaults.get("retry", {}), "defaults.retry", RetryPolicy())
    timeouts = build_timeouts(where, defaults.get("timeouts", {}), "defaults.timeouts", Timeouts())
    base_params = defaults.get("params", {})

    raw_providers = doc.get("providers")
    if not raw_providers:
        raise where.error("providers", "a job needs at least one provider", "add a [[providers]] table")
    providers: list[ProviderSpec] = []
    for index, raw in enumerate(raw_providers):
        provider = build_provider(where, raw, f"providers[{index}]", base_params, retry, timeouts)
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
        sources.extend(cases_file_sources(*cases_text, start=len(sources)))
    env = new_environment()  # one per job: the cases' templates are compiled in it
    for case_where, prefix, raw in sources:
        for case in expand_case(case_where, raw, prefix, names, read=read_vars, env=env):
            if checks is not None:
                case = checks.resolve(case_where, prefix, case)
            check_expressible(case_where, case, prefix, providers, shift=_moved_system(raw))
            check_case_providers(case_where, prefix, case, providers)
            check_judge(case_where, prefix, case, providers)
            if case.id in seen:
                raise case_where.error(
                    f"{prefix}.id", f"duplicate case id {case.id!r}", "give each case a unique id"
                )
            seen.add(case.id)
            cases.append(case)
    if not cases:
        raise where.error(None, "the job has no cases", "add a [[cases]] table or a cases_file")
    _warn_single_rates(cases, defaults.get("repeats", 1))
    check_judges_used(where, providers, cases)

    return JobSpec(
        name=doc.get("name") or Path(path).stem,
        providers=tuple(providers),
        cases=tuple(cases),
        tags=tuple(doc.get("tags", ())),
        repeats=defaults.get("repeats", 1),
        max_cost_usd=optional_float(doc.get("max_cost_usd")),
        source_path=path,
        source_sha256=sha256,
        locations=locations,
    )
