"""A loopback OpenAI-chat provider that plays a judge: its answer depends on the grading request's question.

The question (the ``<question>`` section of runner's default grading prompt) names the behaviour: ``fenced``
answers a verdict in a code fence with prose around it, ``garbage`` answers prose without a verdict,
``broken`` answers HTTP 500 every time. Every request body is kept, in arrival order.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Final

import trio

FENCED_ANSWER: Final = (
    'Looking at it.\n```json\n{"pass": true, "score": 0.8, "reason": "names the city"}\n```\nDone.'
)
GARBAGE_ANSWER: Final = "I would rather not say {whether it passes}."
USAGE: Final = {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100}


@dataclass
class JudgeServer:
    """Start with ``await nursery.start(server.serve)``; ``base_url`` is its OpenAI base URL."""

    bodies: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def serve(self, *, task_status: trio.TaskStatus[JudgeServer] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started(self)
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, stream: trio.SocketStream) -> None:
        buffer = b""
        try:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = await stream.receive_some(65536)
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = next(
                    (
                        int(line.partition(b":")[2])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                while len(buffer) < length:
                    buffer += await stream.receive_some(65536)
                body, buffer = json.loads(buffer[:length]), buffer[length:]
                self.bodies.append(body)
                await stream.send_all(_answer(body))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return
        finally:
            await stream.aclose()


def _answer(body: dict[str, Any]) -> bytes:
    prompt = body["messages"][-1]["content"]
    question = re.search(r"<question>\n(.*?)\n</question>", prompt, re.DOTALL)
    behaviour = question.group(1) if question else ""
    if "broken" in behaviour:
        payload = b'{"error": {"message": "judge overloaded", "type": "server_error"}}'
        status = "HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\n"
        return f"{status}content-length: {len(payload)}\r\n\r\n".encode() + payload
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
    return head.encode() + events
