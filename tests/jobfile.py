"""Job files for tests: write one (and the data files it names) into the test's directory, and spell
``[[providers]]`` tables from keyword arguments so each test states only the fields it is about."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path


def write_job(directory: Path, text: str, name: str = "job.toml", *, files: Mapping[str, str] = {}) -> Path:
    """Write ``text`` (dedented) as ``directory/name``, and each of ``files`` (relative path -> text).

    Returns the job file's path.
    """
    for relative, content in files.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    job = directory / name
    job.write_text(textwrap.dedent(text), encoding="utf-8")
    return job


def toml_value(value: object) -> str:
    """``value`` as an inline TOML value (strings in JSON's escaping, which TOML basic strings share)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return json.dumps(value)
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{key} = {toml_value(item)}" for key, item in value.items()) + " }"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    raise TypeError(f"no TOML spelling for {value!r}")


def provider_toml(name: str, *, dialect: str = "openai-chat", model: str = "m", **fields: Any) -> str:
    """One ``[[providers]]`` table (name, dialect, model, then ``fields``) and the blank line after it."""
    table = {"name": name, "dialect": dialect, "model": model, **fields}
    lines = ["[[providers]]", *(f"{key} = {toml_value(value)}" for key, value in table.items())]
    return "\n".join(lines) + "\n\n"


def sim_provider(*, concurrency: int, output_tokens: int, ttft: float | None = None) -> str:
    """The ``sim`` provider of the process tests: the built-in simulator, ``output_tokens`` tokens an
    answer, the first after ``ttft`` seconds (then one every 20 ms) when given."""
    simulator = {"output_tokens": str(output_tokens)}
    if ttft is not None:
        simulator = {"latency": f"ttft={ttft},gap=0.02", **simulator}
    return provider_toml("sim", model="sim-model", concurrency=concurrency, simulator=simulator)


# One simulated provider and one case whose expect runs a Python check at a pass rate; line 17 is the
# `python` key (error lines name it).
_CHECKED_JOB = """\
name = "checked"

[defaults]
repeats = {repeats}

[[providers]]
name = "sim"
dialect = "openai-chat"
model = "m"
simulator = {{ seed = 7 }}

[[cases]]
id = "flaky"
prompt = "Say something."

[cases.expect]
python = "{check}"
pass_rate = {rate}
"""


def write_checked_job(directory: Path, checks: str, *, check: str, rate: float, repeats: int) -> Path:
    """Write ``checks`` as ``checks.py`` and a job.toml whose one case runs ``check`` at pass rate ``rate``.

    Returns the job file's path.
    """
    job = _CHECKED_JOB.format(repeats=repeats, check=check, rate=rate)
    return write_job(directory, job, files={"checks.py": checks})


def repeats_job(name: str, units: int) -> str:
    """A job of one case repeated ``units`` times on one simulated provider answering two tokens: many
    cheap units, for tests and benchmarks of planning, claiming and lifecycles at scale."""
    return f"""
name = "{name}"
[defaults]
repeats = {units}
[[providers]]
name = "sim"
dialect = "openai-chat"
model = "sim-model"
concurrency = 8
simulator = {{ output_tokens = "2" }}

[[cases]]
id = "c"
prompt = "Hi."
"""
