"""Differential test: our dialects against the official SDKs' own accumulators, over a real socket.

For every openai-chat, openai-responses and anthropic fixture the SDK can read, the text, tool calls,
finish reason and usage we rebuild equal what the SDK builds from the same bytes served by a local HTTP
server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState

from runner.wire.replay import parse_stream
from tests.fakes.raw_server import RawSSEServer, serve_raw
from tests.streams import FIXTURES

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "streams"

# Fixtures left out, and why the SDK cannot read them: error streams make it raise;
# solrouter_tool_chunks has choices without an index (the helper indexes a list with None);
# melious_openai_chunk is a lone first chunk (no finish, nothing to compare beyond the text);
# miromind_lifecycle's reasoning_steps lists have no `index`, on which the helper's deep merge raises.
OPENAI_FIXTURES = [
    FIXTURES / "miromind_chunk_format.sse",
    FIXTURES / "solrouter_typical.sse",
    FIXTURES / "melious_openai_usage.sse",
    FIXTURES / "openai_n3_interleaved.sse",
    FIXTURES / "openai_refusal.sse",
    EXAMPLES / "solrouter_tool_calls.sse",
]
# anthropic_max_tokens_in_tool is left out on purpose: the SDK partial-parses the cut tool input
# into an object while we keep the exact partial string (PROTOCOLS.md 33). Error streams raise.
ANTHROPIC_FIXTURES = [
    FIXTURES / "anthropic_minimal.sse",
    FIXTURES / "anthropic_tool_use.sse",
    FIXTURES / "anthropic_thinking.sse",
    FIXTURES / "melious_messages.sse",
]


@pytest.fixture
def server() -> Iterator[RawSSEServer]:
    """A real local HTTP server that streams the fixture bytes."""
    yield from serve_raw()


@pytest.mark.parametrize("path", [pytest.param(p, id=p.name) for p in OPENAI_FIXTURES])
def test_openai_sdk_agrees(server: RawSSEServer, path: Path) -> None:
    """The openai SDK's ChatCompletionStreamState builds the same text, tool calls, finish and usage."""
    server.body = path.read_bytes()
    state: ChatCompletionStreamState[None] = ChatCompletionStreamState()
    with (
        openai.OpenAI(base_url=f"{server.url}/v1", api_key="test", max_retries=0) as client,
        client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], stream=True
        ) as stream,
    ):
        for chunk in stream:
            state.handle_chunk(chunk)
    sdk = state.current_completion_snapshot  # get_final_completion raises on "length"
    ours = parse_stream("openai-chat", server.body)
    assert len(ours.choices) == len(sdk.choices)
    for mine, theirs in zip(ours.choices, sorted(sdk.choices, key=lambda c: c.index), strict=True):
        assert mine.text == (theirs.message.content or "")
        assert mine.refusal == theirs.message.refusal
        assert mine.raw_finish_reason == theirs.finish_reason
        their_calls = [(c.id, c.function.name, c.function.arguments) for c in theirs.message.tool_calls or []]
        assert [(c.id, c.name, c.arguments) for c in mine.tool_calls] == their_calls
    if sdk.usage is None:
        assert ours.usage is None
    else:
        assert ours.usage is not None
        assert ours.usage.input_tokens == sdk.usage.prompt_tokens
        assert ours.usage.output_tokens == sdk.usage.completion_tokens
        assert ours.usage.total_tokens == sdk.usage.total_tokens


@pytest.mark.parametrize("path", [pytest.param(p, id=p.name) for p in ANTHROPIC_FIXTURES])
def test_anthropic_sdk_agrees(server: RawSSEServer, path: Path) -> None:
    """The anthropic SDK's get_final_message builds the same text, tool calls, stop reason and usage."""
    server.body = path.read_bytes()
    with (
        anthropic.Anthropic(base_url=server.url, api_key="test", max_retries=0) as client,
        client.messages.stream(
            model="m", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
        ) as stream,
    ):
        sdk = stream.get_final_message()
    ours = parse_stream("anthropic-messages", server.body)
    (choice,) = ours.choices
    assert choice.text == "".join(block.text for block in sdk.content if block.type == "text")
    assert choice.reasoning == "".join(block.thinking for block in sdk.content if block.type == "thinking")
    their_calls = [(b.id, b.name, b.input) for b in sdk.content if b.type == "tool_use"]
    assert [(c.id, c.name, json.loads(c.arguments)) for c in choice.tool_calls] == their_calls
    assert choice.raw_finish_reason == sdk.stop_reason
    assert ours.usage is not None
    inputs = [
        sdk.usage.input_tokens,
        sdk.usage.cache_creation_input_tokens,
        sdk.usage.cache_read_input_tokens,
    ]
    assert ours.usage.input_tokens == sum(n or 0 for n in inputs)
    assert ours.usage.output_tokens == sdk.usage.output_tokens
    assert ours.usage.cached_input_tokens == sdk.usage.cache_read_input_tokens


# The openai-responses fixtures the SDK's stream helper reads to a response.completed; error streams
# make it raise, and the incomplete and cut ones have no final response (compared by snapshot below).
RESPONSES_FIXTURES = [
    FIXTURES / "openai_responses_text.sse",
    FIXTURES / "openai_responses_tools_interleaved.sse",
    FIXTURES / "openai_responses_refusal.sse",
    FIXTURES / "openai_responses_reasoning_text.sse",
    EXAMPLES / "openai_responses_tool_call.sse",
]


def _sdk_responses(server: RawSSEServer) -> tuple[dict[int, str], Any]:
    """The SDK's accumulation: each message's text snapshot by output index, and the final response."""
    snapshots: dict[int, str] = {}
    with (
        openai.OpenAI(base_url=f"{server.url}/v1", api_key="test", max_retries=0) as client,
        client.responses.stream(model="m", input="hi") as stream,
    ):
        for event in stream:
            if event.type == "response.output_text.delta":
                snapshots[event.output_index] = event.snapshot
        final = stream.get_final_response()
    return snapshots, final


@pytest.mark.parametrize("path", [pytest.param(p, id=p.name) for p in RESPONSES_FIXTURES])
def test_openai_responses_sdk_agrees(server: RawSSEServer, path: Path) -> None:
    """The openai SDK's Responses stream helper builds the same text, refusal, calls, status and usage."""
    server.body = path.read_bytes()
    snapshots, sdk = _sdk_responses(server)
    ours = parse_stream("openai-responses", server.body)
    (choice,) = ours.choices
    assert choice.text == sdk.output_text
    # Where deltas came, the SDK's delta snapshots agree too (the final text is not just copied).
    assert "".join(snapshots[i] for i in sorted(snapshots)) in choice.text
    refusals = [
        c.refusal
        for item in sdk.output
        if item.type == "message"
        for c in item.content
        if c.type == "refusal"
    ]
    assert choice.refusal == ("".join(refusals) if refusals else None)
    their_calls = [(i.call_id, i.name, i.arguments) for i in sdk.output if i.type == "function_call"]
    assert [(c.id, c.name, c.arguments) for c in choice.tool_calls] == their_calls
    assert choice.raw_finish_reason == sdk.status
    assert ours.id == sdk.id
    assert ours.usage is not None
    assert ours.usage.input_tokens == sdk.usage.input_tokens
    assert ours.usage.output_tokens == sdk.usage.output_tokens
    assert ours.usage.total_tokens == sdk.usage.total_tokens
    assert ours.usage.cached_input_tokens == sdk.usage.input_tokens_details.cached_tokens
    assert ours.usage.reasoning_tokens == sdk.usage.output_tokens_details.reasoning_tokens


def test_openai_responses_sdk_snapshot_agrees_on_a_cut_answer(server: RawSSEServer) -> None:
    """On response.incomplete (no final response) the SDK's delta snapshot equals our text."""
    server.body = (FIXTURES / "openai_responses_max_output_tokens.sse").read_bytes()
    snapshots: dict[int, str] = {}
    statuses = []
    with (
        openai.OpenAI(base_url=f"{server.url}/v1", api_key="test", max_retries=0) as client,
        client.responses.stream(model="m", input="hi") as stream,
    ):
        for event in stream:
            if event.type == "response.output_text.delta":
                snapshots[event.output_index] = event.snapshot
            elif event.type == "response.incomplete":
                statuses.append(event.response.incomplete_details)
    ours = parse_stream("openai-responses", server.body)
    assert ours.choices[0].text == snapshots[0]
    assert [d.reason for d in statuses if d is not None] == [ours.choices[0].raw_finish_reason]
