"""google-genai (an outside oracle) and our gemini dialect read the simulator's live streams alike.

Each test asks the SDK's own streaming client, over loopback, then posts the very body the SDK sent
to the same simulator with our dialect's URL and headers, and compares the two rebuilds: per candidate
text, thoughts, function calls and finish reason, and the usage. The simulator's answer is a pure
function of the body, so both read the same stream (``expected_output`` says what it is).
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
import trio
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types

from runner.model import Completion
from runner.simulator import expected_output
from runner.simulator.server import SimulatorHandle
from runner.spec import CaseSpec, ProviderSpec
from runner.wire.dialects import get_dialect
from runner.wire.dialects.base import HttpRequest
from runner.wire.replay import accumulate
from tests.conftest import StartSimulator
from tests.genai_oracle import genai_candidates

# The emitter's expected_output reads a body for this model (the path names it on the wire).
MODEL = "sim-model"
PROMPT = "What's the weather in Tokyo?"
WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
}
TOOLS: list[genai_types.ToolUnion] = [
    genai_types.Tool(
        function_declarations=[
            genai_types.FunctionDeclaration(name="get_weather", parameters_json_schema=WEATHER)
        ]
    )
]
THOUGHTS = genai_types.ThinkingConfig(include_thoughts=True)


def _client(handle: SimulatorHandle, headers: dict[str, str] | None = None) -> genai.Client:
    # No api_version: the SDK's own default is part of what is checked. One attempt: the SDK's retry
    # would hide a fault the test injects.
    options = genai_types.HttpOptions(
        base_url=handle.base_url("gemini"),
        headers=headers,
        retry_options=genai_types.HttpRetryOptions(attempts=1),
    )
    return genai.Client(api_key="test-key", http_options=options)


def sdk_stream(
    handle: SimulatorHandle, config: genai_types.GenerateContentConfig, headers: dict[str, str] | None = None
) -> tuple[list[genai_types.GenerateContentResponse], genai_errors.APIError | None]:
    """The SDK's typed chunks for one streamed request, and the error it raised mid-stream, if any."""
    chunks: list[genai_types.GenerateContentResponse] = []
    client = _client(handle, headers)
    try:
        for chunk in client.models.generate_content_stream(model=MODEL, contents=PROMPT, config=config):
            chunks.append(chunk)
    except genai_errors.APIError as exc:
        return chunks, exc
    finally:
        client.close()
    return chunks, None


def our_request(handle: SimulatorHandle, headers: dict[str, str] | None) -> HttpRequest:
    """Our dialect's request, with the provider defaults (the API version among them)."""
    provider = ProviderSpec(
        name="g", dialect="gemini", base_url=handle.base_url("gemini"), model=MODEL, headers=headers or {}
    )
    case = CaseSpec(id="c", messages=({"role": "user", "content": PROMPT},))
    return get_dialect("gemini").build_request(provider, case, api_key="test-key")


def our_stream(request: HttpRequest, body: bytes) -> Completion:
    """Post ``body`` where our dialect posts, with its headers; accumulate the reads as they arrive."""
    with (
        httpx.Client(timeout=10) as client,
        client.stream("POST", request.url, headers=request.headers, content=body) as response,
    ):
        assert response.status_code == 200
        return accumulate(get_dialect("gemini").new_accumulator(), response.iter_raw())


def our_candidates(completion: Completion) -> dict[int, dict[str, Any]]:
    """The same view of our dialect's rebuild (arguments parsed back from their JSON text)."""
    return {
        choice.index: {
            "text": choice.text,
            "thoughts": choice.reasoning,
            "calls": [(c.id, c.name, orjson.loads(c.arguments)) for c in choice.tool_calls],
            "finish": choice.raw_finish_reason,
        }
        for choice in completion.choices
    }


async def exchange(
    handle: SimulatorHandle, config: genai_types.GenerateContentConfig, headers: dict[str, str] | None = None
) -> tuple[list[genai_types.GenerateContentResponse], genai_errors.APIError | None, Completion, bytes]:
    """The SDK's read, then ours of the same body: (chunks, SDK error, our completion, the body)."""
    with trio.fail_after(20):
        chunks, error = await trio.to_thread.run_sync(sdk_stream, handle, config, headers)
        sent = handle.log[-1]
        request = our_request(handle, headers)
        # Neither names an API version: our default must be the one the SDK sends to (v1 in 3.x).
        assert httpx.URL(request.url).path == sent.path == f"/v1/models/{MODEL}:streamGenerateContent"
        body = orjson.dumps(sent.body)
        ours = await trio.to_thread.run_sync(our_stream, request, body)
    return chunks, error, ours, body


@pytest.mark.parametrize(
    ("simulator_config", "config"),
    [
        pytest.param({}, genai_types.GenerateContentConfig(), id="text"),
        pytest.param({}, genai_types.GenerateContentConfig(thinking_config=THOUGHTS), id="thoughts"),
        pytest.param({"tool_calls": 3}, genai_types.GenerateContentConfig(tools=TOOLS), id="function-calls"),
        pytest.param(
            {"tool_calls": 1},
            genai_types.GenerateContentConfig(
                candidate_count=3, thinking_config=THOUGHTS, system_instruction="Be brief.", tools=TOOLS
            ),
            id="three-candidates",
        ),
        pytest.param({}, genai_types.GenerateContentConfig(max_output_tokens=3), id="max-tokens"),
        pytest.param(
            {"reasoning": True}, genai_types.GenerateContentConfig(candidate_count=2), id="two-thinking"
        ),
    ],
)
async def test_google_genai_and_our_dialect_agree(
    start_simulator: StartSimulator,
    simulator_config: dict[str, Any],
    config: genai_types.GenerateContentConfig,
) -> None:
    """The SDK and our dialect rebuild the same text, thoughts, calls, finish reasons and usage."""
    handle = await start_simulator(**simulator_config)
    chunks, error, ours, body = await exchange(handle, config)
    assert error is None
    assert ours.complete
    assert ours.error is None
    theirs = genai_candidates(chunks)
    assert our_candidates(ours) == theirs
    # What was asked for came: thoughts when asked to include them, calls when tools were offered.
    assert all(slot["thoughts"] for slot in theirs.values()) == bool(
        config.thinking_config or simulator_config.get("reasoning")
    )
    assert all(slot["calls"] for slot in theirs.values()) == bool(config.tools)
    # Neither rebuild is vacuous: both are what the simulator meant to send.
    expected = expected_output("gemini", orjson.loads(body), handle.config)
    assert {c.index: (c.text, c.reasoning, len(c.tool_calls)) for c in expected.choices} == {
        index: (slot["text"], slot["thoughts"], len(slot["calls"])) for index, slot in theirs.items()
    }
    finishes = {c.index: c.finish_reason for c in expected.choices}
    assert {c.index: c.finish_reason for c in ours.choices} == finishes
    usage = next(c.usage_metadata for c in reversed(chunks) if c.usage_metadata is not None)
    assert ours.usage is not None
    assert ours.usage.input_tokens == usage.prompt_token_count
    assert ours.usage.output_tokens == (usage.candidates_token_count or 0) + (usage.thoughts_token_count or 0)
    assert ours.usage.total_tokens == usage.total_token_count
    assert ours.usage.reasoning_tokens == usage.thoughts_token_count
    assert ours.usage.cached_input_tokens == usage.cached_content_token_count


async def test_google_genai_and_our_dialect_read_a_mid_stream_error_alike(
    start_simulator: StartSimulator,
) -> None:
    """An error event mid-stream: the SDK raises it and we record it, with the same code and status,
    after the same text."""
    handle = await start_simulator()
    headers = {"x-sim-faults": "stream_error:2@1"}  # every attempt: the SDK's and ours
    chunks, error, ours, _ = await exchange(handle, genai_types.GenerateContentConfig(), headers)
    assert error is not None
    assert not ours.complete
    assert ours.error is not None
    assert (ours.error.code, ours.error.type, ours.error.message) == (error.code, error.status, error.message)
    assert {i: (s["text"], s["finish"]) for i, s in genai_candidates(chunks).items()} == {
        c.index: (c.text, c.raw_finish_reason) for c in ours.choices
    }
    assert ours.choices[0].text  # two token events came before the error
