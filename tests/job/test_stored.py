"""A run's stored job spec: the loaded spec round-trips, and the stored form keeps the tables as written."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest

from runner.errors import ConfigError
from runner.job.load import parse_job
from runner.job.stored import job_from_json, stored_dialect
from runner.spec import CaseSpec, JobSpec, ProviderSpec
from runner.store.repository import job_spec_json

JOB = """\
name = "stored"

[[providers]]
name = "sim"
dialect = "openai-chat"
model = "m"
[providers.simulator]
seed = 7
faults = "1=http_429:ra=1,2=close_abrupt:3,http_500@0.02"
latency = { ttft = "lognormal:0.3:0.5", gap = "0.02" }
price = { input = 1, output = 2 }

[[providers]]
name = "real"
dialect = "anthropic-messages"
base_url = "https://api.example.com"
model = "m"
headers = { x-team = "evals" }
price = { input = 3, output = 15 }

[[cases]]
id = "every-key"
prompt = "hi"
[cases.expect]
max_ttft_s = 2
contains = "a"
not_contains = ["b", "c"]
regex = "^a"
equals = "a"
json_valid = false
tool_call = { name = "f", arguments = { type = "object", required = ["city"] } }
finish_reason = ["stop", "tool_calls"]
max_duration_s = 30.5
max_cost_usd = 0.5

[[cases]]
id = "empty-expect"
prompt = "ho"
expect = {}

[[cases]]
id = "no-expect"
prompt = "hu"
"""


def _stored(text: str = JOB) -> dict[str, Any]:
    """The job as a new run stores it, through the JSON text the database column holds."""
    data: dict[str, Any] = orjson.loads(orjson.dumps(job_spec_json(parse_job(text, path="stored.toml"))))
    return data


def test_load_store_resume_gives_an_equal_spec() -> None:
    """load -> stored form -> job_from_json gives a spec equal to the loaded one, typed parts included."""
    job = parse_job(JOB, path="stored.toml")
    back = job_from_json(_stored())
    assert back == job
    assert back.providers[0].simulator == job.providers[0].simulator is not None
    expect, back_expect = job.cases[0].expect, back.cases[0].expect
    assert back_expect == expect is not None
    assert back_expect is not None
    assert back_expect.keys == expect.keys  # outcomes keep the written order
    assert job_from_json(job_spec_json(back)) == job  # a resumed run stores nothing different


def test_stored_form_keeps_the_tables_as_written() -> None:
    """The simulator and expect tables are stored as the file wrote them, not as parsed fields."""
    stored = _stored()
    sim, real = stored["providers"]
    assert sim["simulator"] == {
        "seed": 7,
        "faults": "1=http_429:ra=1,2=close_abrupt:3,http_500@0.02",
        "latency": {"ttft": "lognormal:0.3:0.5", "gap": "0.02"},
        "price": {"input": 1, "output": 2},
    }
    assert real["simulator"] is None
    every, empty, none = stored["cases"]
    assert list(every["expect"]) == [
        "max_ttft_s",
        "contains",
        "not_contains",
        "regex",
        "equals",
        "json_valid",
        "tool_call",
        "finish_reason",
        "max_duration_s",
        "max_cost_usd",
    ]
    assert every["expect"]["contains"] == "a"
    assert every["expect"]["tool_call"] == {
        "name": "f",
        "arguments": {"type": "object", "required": ["city"]},
    }
    assert empty["expect"] == {}
    assert none["expect"] is None


def test_stored_form_has_the_spec_fields_and_nothing_else() -> None:
    """Providers and cases are stored under their dataclass field names, as before the typed records."""
    stored = _stored()
    assert set(stored) == {f.name for f in dataclasses.fields(JobSpec)}
    assert set(stored["providers"][0]) == {f.name for f in dataclasses.fields(ProviderSpec)}
    assert set(stored["cases"][0]) == {f.name for f in dataclasses.fields(CaseSpec)}


def test_an_old_runs_stored_spec_still_resumes() -> None:
    """A spec stored before the typed records (raw tables, as written) reads back into typed ones."""
    old = _stored()
    old["providers"][0]["simulator"] = {"faults": "http_500@0.5", "output_tokens": "4"}
    old["cases"][0]["expect"] = {"contains": ["x"], "max_ttft_s": 1}
    job = job_from_json(old)
    simulator, expect = job.providers[0].simulator, job.cases[0].expect
    assert simulator is not None
    assert simulator.faults.rates[0][1] == 0.5
    assert simulator.output_tokens.a == 4.0
    assert expect is not None
    assert expect.contains == ("x",)
    assert expect.max_ttft_s == 1.0


def test_a_bad_stored_table_is_a_config_error() -> None:
    """A stored simulator table that no longer parses fails as a ConfigError naming the key."""
    old = _stored()
    old["providers"][0]["simulator"] = {"latency": "fast"}
    with pytest.raises(ConfigError) as info:
        job_from_json(old)
    assert info.value.key == "simulator.latency"


def test_stored_dialect_reads_the_json_without_rebuilding_the_spec() -> None:
    """``runner parse --attempt`` finds a provider's dialect even where the stored tables no longer parse."""
    data: dict[str, Any] = {
        "providers": [
            {"name": "a", "dialect": "runware", "simulator": {"faults": "not a fault spec"}},
            {"name": "b", "dialect": "anthropic-messages", "unknown_field_of_a_later_version": 1},
        ]
    }
    assert stored_dialect(data, "a") == "runware"
    assert stored_dialect(data, "b") == "anthropic-messages"
    assert stored_dialect(data, "c") is None
    assert stored_dialect({}, "a") is None
