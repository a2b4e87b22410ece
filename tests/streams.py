"""Helpers shared by the dialect tests: fixture files, SSE bodies built from payloads, parsing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from runner.model import Completion
from runner.wire.replay import parse_stream

FIXTURES = Path(__file__).parent / "fixtures" / "streams"


def fixture(name: str) -> bytes:
    """The raw bytes of one fixture stream."""
    return (FIXTURES / name).read_bytes()


def dialect_of(name: str) -> str:
    """The dialect a fixture file is written in, from its name prefix."""
    if name.startswith("openai_responses_"):
        return "openai-responses"
    if name.startswith(("anthropic_", "melious_messages")):
        return "anthropic-messages"
    if name.startswith("runware_"):
        return "runware"
    if name.startswith("gemini_"):
        return "gemini"
    return "openai-chat"


def all_fixtures() -> list[str]:
    """Every fixture file name, sorted."""
    return sorted(path.name for path in FIXTURES.glob("*.sse"))


def body(*payloads: Any) -> bytes:
    """An SSE body: each payload is a data event (dicts as JSON); ``(event, payload)`` names it."""
    parts = []
    for payload in payloads:
        event = None
        if isinstance(payload, tuple):
            event, payload = payload
        data = payload if isinstance(payload, str) else json.dumps(payload)
        parts.append((f"event: {event}\n" if event else "") + f"data: {data}\n\n")
    return "".join(parts).encode()


def chunk(*choices: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """An OpenAI chat.completion.chunk with the given choices and top-level fields."""
    return {"id": "c1", "object": "chat.completion.chunk", "model": "m", "choices": list(choices), **fields}


def delta(index: int = 0, finish: str | None = None, **fields: Any) -> dict[str, Any]:
    """One OpenAI choice with a delta made of ``fields``."""
    return {"index": index, "delta": fields, "finish_reason": finish}


def openai(*payloads: Any) -> Completion:
    """Parse payloads as an openai-chat stream."""
    return parse_stream("openai-chat", body(*payloads))
