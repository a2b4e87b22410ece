"""Each accumulator counts its token deltas (the attempt layer's token_idle clock), never heartbeats."""

from __future__ import annotations

import pytest

from runner.wire.dialects import get_dialect
from runner.wire.sse import decode_all
from tests.streams import dialect_of, fixture


@pytest.mark.parametrize(
    ("name", "minimum"),
    [
        pytest.param("anthropic_tool_use.sse", 2, id="anthropic-tool-json-fragments"),
        pytest.param("anthropic_thinking.sse", 2, id="anthropic-thinking"),
        pytest.param("solrouter_tool_chunks.sse", 2, id="openai-tool-fragments"),
        pytest.param("runware_reasoning.sse", 2, id="runware-reasoning"),
        pytest.param("miromind_lifecycle.sse", 2, id="miromind-steps"),
    ],
)
def test_token_deltas_are_counted(name: str, minimum: int) -> None:
    """Answer, reasoning and tool-call fragments each count as a token delta."""
    accumulator = get_dialect(dialect_of(name)).new_accumulator()
    for event in decode_all(fixture(name)):
        accumulator.feed(event)
    assert accumulator.tokens >= minimum


@pytest.mark.parametrize(
    ("dialect", "body"),
    [
        pytest.param("openai-chat", b": heartbeat\n\ndata:\n\ndata: \n\n", id="openai-comment-and-blank"),
        pytest.param(
            "anthropic-messages",
            b'event: ping\ndata: {"type": "ping"}\n\n: keep-alive\n\n',
            id="anthropic-ping",
        ),
        pytest.param("runware", b": ping\n\ndata:\n\n", id="runware-ping"),
    ],
)
def test_heartbeats_are_no_tokens(dialect: str, body: bytes) -> None:
    """Comments, blank keep-alive payloads and ping events never count as tokens."""
    accumulator = get_dialect(dialect).new_accumulator()
    for event in decode_all(body):
        accumulator.feed(event)
    assert accumulator.tokens == 0
