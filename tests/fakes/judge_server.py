"""A loopback OpenAI-chat provider that plays a judge: its answer depends on the grading request's question.

The question (the ``<question>`` section of runner's default grading prompt) names the behaviour: ``fenced``
answers a verdict in a code fence with prose around it, ``garbage`` answers prose without a verdict,
``broken`` answers HTTP 500 every time. Every request body is kept, in arrival order.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

from tests.fakes.scripted_http import ScriptedServer, Step

FENCED_ANSWER: Final = (
    'Looking at it.\n```json\n{"pass": true, "score": 0.8, "reason": "names the city"}\n```\nDone.'
)
GARBAGE_ANSWER: Final = "I would rather not say {whether it passes}."
USAGE: Final = {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100}


def judge_server() -> ScriptedServer:
    """Start with ``await nursery.start(server.serve)``; ``base_url`` is its OpenAI base URL and
    ``bodies`` the requests' bodies."""
    return ScriptedServer(respond=_answer, base_path="/v1")


def _answer(raw: bytes) -> list[Step]:
    prompt = json.loads(raw)["messages"][-1]["content"]
    question = re.search(r"<question>\n(.*?)\n</question>", prompt, re.DOTALL)
    behaviour = question.group(1) if question else ""
    if "broken" in behaviour:
        payload = b'{"error": {"message": "judge overloaded", "type": "server_error"}}'
        status = "HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\n"
        return [f"{status}content-length: {len(payload)}\r\n\r\n".encode() + payload]
    text = FENCED_ANSWER if "fenced" in behaviour else GARBAGE_ANSWER
    chunks: list[dict[str, Any]] = [
        {
            "choices": [
                {"index": 0, "delta": {"role": "assistant", "content": text[:10]}, "finish_reason": None}
            ]
        },
        {"choices": [{"index": 0, "delta": {"content": text[10:]}, "finish_reason": None}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {"choices": [], "usage": USAGE},
    ]
    events = b"".join(
        b"data: "
        + json.dumps({"id": "j1", "object": "chat.completion.chunk", "model": "judge", **c}).encode()
        + b"\n\n"
        for c in chunks
    )
    events += b"data: [DONE]\n\n"
    head = f"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {len(events)}\r\n\r\n"
    return [head.encode() + events]
