"""A loopback openai-chat provider that echoes what a careless or hostile one would: the request's key.

Each request is answered by the behaviour its last user message names (``BEHAVIOURS``). Echoing
answers quote the request's own ``Authorization`` value and every string in ``also_echo`` (another
provider's key, as a shared gateway might). The ``nul-*`` behaviours answer with U+0000 and U+2400
(the store's escape character) in every free-text field. Real HTTP/1.1 over a trio socket.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import orjson
import trio

from tests.fakes.scripted_http import chunk

# Text with a NUL and the store's escape character (U+2400) around it, in the fields a model fills.
NUL_TEXT: Final = "a\x00b\u2400c\u24000\x00"
NUL_REASONING: Final = "r\x00\u2400\u2400"
NUL_ARGUMENTS: Final = '{"x": "\x00\u2400"}'
NUL_MODEL: Final = "m\x00\u2400"
NUL_ERROR: Final = "bad \x00 \u2400 request"

BEHAVIOURS: Final = ("echo-401", "echo-stream-error", "echo-answer", "nul-answer", "nul-error")


@dataclass
class EchoProvider:
    """Serves openai-chat streams on 127.0.0.1; ``requests`` counts the requests answered."""

    also_echo: tuple[str, ...] = ()
    port: int = 0
    requests: int = 0
    behaviours: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def serve(self, *, task_status: trio.TaskStatus[EchoProvider] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started(self)
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, stream: trio.SocketStream) -> None:
        async with stream:
            try:
                head, body = await _read_request(stream)
            except (trio.BrokenResourceError, ValueError):
                return
            authorization = head.get("authorization", "")
            request = orjson.loads(body)
            behaviour = request["messages"][-1]["content"]
            self.requests += 1
            self.behaviours.append(behaviour)
            echo = " | ".join((authorization, *self.also_echo))
            try:
                for piece in _answer(behaviour, echo, authorization.removeprefix("Bearer ")):
                    await stream.send_all(piece)
            except trio.BrokenResourceError:
                return


async def _read_request(stream: trio.SocketStream) -> tuple[dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        piece = await stream.receive_some(65536)
        if not piece:
            raise ValueError("closed before the request head")
        data += piece
    raw_head, _, body = data.partition(b"\r\n\r\n")
    head: dict[str, str] = {}
    for line in raw_head.decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        head[name.strip().lower()] = value.strip()
    length = int(head.get("content-length", "0"))
    while len(body) < length:
        body += await stream.receive_some(65536)
    return head, body


def _answer(behaviour: str, echo: str, key: str) -> list[bytes]:
    """The response bytes of one behaviour, as the socket writes they are sent in."""
    if behaviour == "echo-401":
        error = {"error": {"message": f"Invalid key: {echo}", "type": "invalid_request_error"}}
        return [_json_response(401, error, {"x-echo-authorization": echo})]
    if behaviour == "nul-error":
        return [_json_response(400, {"error": {"message": NUL_ERROR, "type": "invalid_request_error"}})]
    if behaviour == "echo-stream-error":
        events = [
            _delta({"content": "partial "}),
            _event({"error": {"message": f"upstream refused Authorization: {echo}", "type": "server_error"}}),
        ]
        return _sse(events)
    if behaviour == "nul-answer":
        return _sse(
            [
                _delta({"reasoning_content": NUL_REASONING}, model=NUL_MODEL),
                _delta({"content": NUL_TEXT}, model=NUL_MODEL),
                _delta(_tool_call(NUL_ARGUMENTS), model=NUL_MODEL),
                _finish("tool_calls", model=NUL_MODEL),
                b"data: [DONE]\n\n",
            ]
        )
    if behaviour == "echo-answer":
        # The key whole, split across two SSE events, and split across two HTTP chunks inside one
        # event: redaction must work on assembled text and whole captures, never per piece.
        split = _delta({"content": f" again: {key} end."})
        cut = split.index(key.encode()) + len(key) // 2
        return _sse(
            [
                _delta({"reasoning_content": f"the header was {echo}"}),
                _delta({"content": f"Your key is {echo}."}),
                _delta({"content": f" Split: {key[:5]}"}),
                _delta({"content": f"{key[5:]} done."}),
                split[:cut],
                split[cut:],
                _delta(_tool_call(orjson.dumps({"x-api-key": key}).decode())),
                _finish("stop"),
                b"data: [DONE]\n\n",
            ]
        )
    raise AssertionError(f"unknown behaviour {behaviour!r}; known: {BEHAVIOURS}")


def _json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> bytes:
    data = orjson.dumps(body)
    head = [f"HTTP/1.1 {status} X", "content-type: application/json", f"content-length: {len(data)}"]
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    head.append("connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + data


def _sse(events: list[bytes]) -> list[bytes]:
    head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n"
    return [(head + "connection: close\r\n\r\n").encode(), *(chunk(e) for e in events), b"0\r\n\r\n"]


def _event(payload: Any) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def _delta(delta: dict[str, Any], *, model: str = "echo-model") -> bytes:
    return _event({"id": "c1", "model": model, "choices": [{"index": 0, "delta": delta}]})


def _finish(reason: str, *, model: str = "echo-model") -> bytes:
    return _event(
        {"id": "c1", "model": model, "choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}
    )


def _tool_call(arguments: str) -> dict[str, Any]:
    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": arguments}}
    return {"tool_calls": [call]}
