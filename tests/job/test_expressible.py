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
