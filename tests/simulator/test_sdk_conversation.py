"""Differential: the anthropic SDK's accumulator and runner's dialect rebuild the same answer to a
translated conversation (tool call, tool result, data: URL image) served by the strict simulator."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import orjson
import trio

from runner.model import Completion
from runner.simulator.server import SimulatorHandle
from runner.spec import CaseSpec, ProviderSpec
from runner.wire.dialects import get_dialect
from runner.wire.replay import parse_stream
from tests.conversations import WEATHER_TOOL, tool_conversation

CASE = CaseSpec(id="conv", messages=tuple(tool_conversation()), system="be brief", tools=(WEATHER_TOOL,))


def both(handle: SimulatorHandle) -> tuple[Any, Completion]:
    """The SDK's final message for runner's translated body, and runner's own parse of the same request."""
    base = handle.base_url("anthropic-messages")
    provider = ProviderSpec(name="a", dialect="anthropic-messages", base_url=base, model="claude-sim")
    request = get_dialect("anthropic-messages").build_request(provider, CASE, api_key="k")
    body = orjson.loads(request.body)
    del body["stream"]  # the SDK's stream helper sets it
    with (
        anthropic.Anthropic(base_url=base, api_key="k", max_retries=0) as client,
        client.messages.stream(**body) as stream,
    ):
        message = stream.get_final_message()
    response = httpx.post(request.url, headers=request.headers, content=request.body, timeout=10)
    response.raise_for_status()
    return message, parse_stream("anthropic-messages", response.content)


async def test_anthropic_sdk_and_runner_agree_on_a_conversation(simulator: SimulatorHandle) -> None:
    with trio.fail_after(20):
        message, ours = await trio.to_thread.run_sync(both, simulator)
    (choice,) = ours.choices
    text = "".join(block.text for block in message.content if block.type == "text")
    calls = [(b.id, b.name, b.input) for b in message.content if b.type == "tool_use"]
    assert choice.text == text
    assert [(c.id, c.name, orjson.loads(c.arguments)) for c in choice.tool_calls] == calls
    assert choice.raw_finish_reason == message.stop_reason
    assert ours.usage is not None
    assert ours.usage.output_tokens == message.usage.output_tokens
    assert ours.complete
