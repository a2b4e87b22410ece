"""The job loader asks each dialect a case runs on whether it can express it (Dialect.check_messages)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from runner.errors import ConfigError
from runner.job.load import load_batch_jsonl, parse_job
from runner.spec import ProviderSpec
from tests.conversations import tool_conversation

ROOT = Path(__file__).resolve().parents[2]
PROVIDERS = [
    {
        "name": "claude",
        "dialect": "anthropic-messages",
        "base_url": "https://api.anthropic.com",
        "model": "m",
    },
    {"name": "rw", "dialect": "runware", "base_url": "https://api.runware.ai/v1", "model": "m"},
]


def job(case: dict[str, Any]) -> str:
    return orjson.dumps({"providers": PROVIDERS, "cases": [case]}).decode()


def test_a_case_is_checked_only_against_the_providers_it_runs_on() -> None:
    """An image case limited to the Anthropic provider loads although runware is in the job."""
    case = {"id": "img", "messages": tool_conversation(), "providers": ["claude"]}
    assert parse_job(job(case), path="j.yaml", fmt="yaml").cases[0].id == "img"
    with pytest.raises(ConfigError) as caught:
        parse_job(job({**case, "providers": ["claude", "rw"]}), path="j.yaml", fmt="yaml")
    assert caught.value.key == "cases[0].messages[1].tool_calls"
    assert "(provider 'rw')" in str(caught.value)


def test_a_batch_file_is_checked_against_the_provider_it_runs_on() -> None:
    """jobs/batch.jsonl's third request offers tools: on runware that line is a load error."""
    provider = ProviderSpec(name="rw", dialect="runware", base_url="https://api.runware.ai/v1", model="m")
    with pytest.raises(ConfigError) as caught:
        load_batch_jsonl(ROOT / "jobs" / "batch.jsonl", provider=provider)
    assert caught.value.key == "body.tools"
    assert caught.value.line == 3
    assert "case 'request-3': runware cannot express tools" in str(caught.value)


def _with(dialect: str, params: dict[str, Any], case_params: dict[str, Any] | None = None) -> str:
    base_url = {"gemini": "https://generativelanguage.googleapis.com"}.get(dialect, "https://api.example.com")
    provider = {"name": "p", "dialect": dialect, "base_url": base_url, "model": "m", "params": params}
    case = {"id": "c", "prompt": "hi", "params": case_params or {}}
    return orjson.dumps({"providers": [provider], "cases": [case]}).decode()


@pytest.mark.parametrize(
    ("dialect", "key", "value", "fix"),
    [
        pytest.param("anthropic-messages", "n", 2, "one answer per request", id="anthropic-n"),
        pytest.param(
            "anthropic-messages", "response_format", {"type": "json_object"}, "tool", id="anthropic-json"
        ),
        pytest.param(
            "anthropic-messages", "reasoning_effort", "high", "budget_tokens", id="anthropic-effort"
        ),
        pytest.param("anthropic-messages", "seed", 7, "no such field", id="anthropic-seed"),
        pytest.param("anthropic-messages", "user", "u1", "metadata", id="anthropic-user"),
        pytest.param("openai-responses", "stop", ["END"], "no stop sequences", id="responses-stop"),
        pytest.param("openai-responses", "n", 2, "one answer per request", id="responses-n"),
        # Chat params the Responses API has no field for: "Unknown parameter: 'seed'." (a 400).
        pytest.param("openai-responses", "seed", 7, "no such field", id="responses-seed"),
        pytest.param("openai-responses", "frequency_penalty", 0.5, "no such field", id="responses-penalty"),
        pytest.param("openai-responses", "logprobs", True, "top_logprobs", id="responses-logprobs"),
        pytest.param(
            "openai-responses",
            "stream_options",
            {"include_usage": True},
            "include_obfuscation",
            id="responses-stream-options",
        ),
        pytest.param("anthropic-messages", "modalities", ["text"], "no such field", id="anthropic-modal"),
        # OpenAI's metadata is free key/values; Anthropic's holds user_id only (metadata.run: Extra inputs).
        pytest.param("anthropic-messages", "metadata", {"run": "r1"}, "user_id", id="anthropic-metadata"),
        pytest.param("anthropic-messages", "functions", [{"name": "f"}], "tools", id="anthropic-functions"),
        pytest.param(
            "gemini", "reasoning_effort", "extreme", "'none', 'low', 'medium', 'high'", id="gemini-effort"
        ),
        pytest.param("gemini", "parallel_tool_calls", False, "generationConfig", id="gemini-unknown"),
        pytest.param("gemini", "reasoning_effort", {"effort": "high"}, "one of", id="gemini-effort-table"),
        # Shapes that are not chat's have no Gemini translation: sent as written, an unknown field.
        pytest.param(
            "gemini", "tool_choice", {"type": "tool", "name": "f"}, "toolConfig", id="gemini-tool-choice"
        ),
        pytest.param(
            "gemini",
            "response_format",
            {"type": "json_schema", "json_schema": {"name": "x"}},
            "responseMimeType",
            id="gemini-format-without-schema",
        ),
        pytest.param(
            "openai-responses", "response_format", {"type": "xml"}, "text", id="responses-unknown-format"
        ),
    ],
)
@pytest.mark.parametrize("where", ["provider", "case"])
def test_a_param_the_dialect_cannot_send_is_a_load_error(
    dialect: str, key: str, value: Any, fix: str, where: str
) -> None:
    """A chat param the provider's API would answer 400 to, in a provider's params or a case's: a
    load error naming the param, the dialect (and the case and provider), with the fix."""
    text = _with(dialect, {key: value}) if where == "provider" else _with(dialect, {}, {key: value})
    with pytest.raises(ConfigError) as caught:
        parse_job(text, path="j.yaml", fmt="yaml")
    assert caught.value.key == (
        f"providers[0].params.{key}" if where == "provider" else f"cases[0].params.{key}"
    )
    assert dialect in str(caught.value)
    assert repr(key) in str(caught.value)
    assert fix in (caught.value.fix or "")
    if where == "case":
        assert "case 'c'" in str(caught.value)
        assert "(provider 'p')" in str(caught.value)


@pytest.mark.parametrize(
    ("dialect", "params"),
    [
        (
            "anthropic-messages",
            {"temperature": 0, "top_k": 5, "stop": ["x"], "thinking": {"type": "disabled"}},
        ),
        ("openai-responses", {"reasoning_effort": "low", "response_format": {"type": "json_object"}}),
        ("openai-responses", {"top_logprobs": 2, "stream_options": {"include_obfuscation": False}}),
        ("anthropic-messages", {"max_output_tokens": 64, "metadata": {"user_id": "u"}}),
        ("gemini", {"reasoning_effort": "medium", "n": 2, "stop": "x", "safetySettings": [], "seed": 1}),
        ("gemini", {"tool_choice": {"type": "function", "function": {"name": "f"}}}),
        ("gemini", {"response_format": {"type": "json_schema", "json_schema": {"schema": {}}}}),
        (
            "openai-responses",
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}},
        ),
        ("openai-chat", {"n": 2, "seed": 1, "logprobs": True, "reasoning_effort": "high"}),
    ],
)
def test_params_a_dialect_sends_or_translates_load(dialect: str, params: dict[str, Any]) -> None:
    assert parse_job(_with(dialect, params, params), path="j.yaml", fmt="yaml").cases[0].id == "c"
