"""Differential test: the gemini dialect against google-genai's typed chunks, over a real socket.

The fixtures' edge cases (a cut stream, a malformed call) as google-genai reads them; the simulator's
live streams are compared in tests/simulator/test_sdk_gemini.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from google import genai
from google.genai import types as genai_types

from runner.wire.replay import parse_stream
from tests.fakes.raw_server import RawSSEServer, serve_raw
from tests.genai_oracle import genai_candidates
from tests.streams import FIXTURES


@pytest.fixture
def server() -> Iterator[RawSSEServer]:
    """A real local HTTP server that streams the fixture bytes."""
    yield from serve_raw()


# The gemini fixtures google-genai reads to the end: an error event makes it raise, and a blocked
# prompt has no candidates to compare.
GEMINI_FIXTURES = [
    FIXTURES / "gemini_thoughts_text.sse",
    FIXTURES / "gemini_function_call.sse",
    FIXTURES / "gemini_two_candidates.sse",
    FIXTURES / "gemini_cut.sse",
    FIXTURES / "gemini_malformed_function_call.sse",
]


@pytest.mark.parametrize("path", [pytest.param(p, id=p.name) for p in GEMINI_FIXTURES])
def test_google_genai_sdk_agrees(server: RawSSEServer, path: Path) -> None:
    """google-genai's typed chunks give the same text, thoughts, function calls, finish and usage."""
    server.body = path.read_bytes()
    options = genai_types.HttpOptions(base_url=server.url, api_version="v1")
    client = genai.Client(api_key="test", http_options=options)
    chunks = list(client.models.generate_content_stream(model="m", contents="hi"))
    sdk = genai_candidates(chunks)
    ours = parse_stream("gemini", server.body)
    assert sorted(sdk) == [choice.index for choice in ours.choices]
    for choice in ours.choices:
        theirs = sdk[choice.index]
        assert (choice.text, choice.reasoning, choice.raw_finish_reason) == (
            theirs["text"],
            theirs["thoughts"],
            theirs["finish"],
        )
        ours_calls = [(c.name, json.loads(c.arguments)) for c in choice.tool_calls]
        assert ours_calls == [(name, args) for _, name, args in theirs["calls"]]
        # Google's id where it sent one; ours is generated only where it sent none.
        for call, (their_id, _, _) in zip(choice.tool_calls, theirs["calls"], strict=True):
            assert call.id == (their_id or call.id)
    usage = next((c.usage_metadata for c in reversed(chunks) if c.usage_metadata is not None), None)
    if usage is None:
        assert ours.usage is None
        return
    assert ours.usage is not None
    assert ours.usage.input_tokens == usage.prompt_token_count
    assert ours.usage.total_tokens == usage.total_token_count
    assert ours.usage.reasoning_tokens == usage.thoughts_token_count
    assert ours.usage.output_tokens == (usage.candidates_token_count or 0) + (usage.thoughts_token_count or 0)
