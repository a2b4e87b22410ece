"""A real loopback HTTP/1.1 server on trio that answers each request with a scripted byte sequence.

Tests use it where they must control every byte and every pause: chunk splits, stalls, a socket
dropped inside a chunk. Requests are answered in arrival order from a list of scripts; each script
is a list of steps: ``bytes`` to send, a ``float`` to sleep, or ``CLOSE`` to end the connection.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import trio

CLOSE: Final = "close"

Step = bytes | float | str


def sse_response(
    *body_parts: bytes | float, status: int = 200, headers: dict[str, str] | None = None
) -> list[Step]:
    """A chunked ``text/event-stream`` response: each bytes part is one HTTP chunk, floats pause."""
    head = [f"HTTP/1.1 {status} X", "content-type: text/event-stream", "transfer-encoding: chunked"]
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    steps: list[Step] = [("\r\n".join(head) + "\r\n\r\n").encode()]
    for part in body_parts:
        steps.append(part if isinstance(part, float) else chunk(part))
    steps.append(b"0\r\n\r\n")
    return steps


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked transfer encoding."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def bad_gzip_response() -> list[Step]:
    """A 200 event stream that claims ``content-encoding: gzip`` but whose body is plain SSE."""
    return sse_response(b"data: T:not gzip\n\n", headers={"content-encoding": "gzip"})


def json_response(status: int, body: bytes, headers: dict[str, str] | None = None) -> list[Step]:
    """A plain JSON response with Content-Length."""
    head = [f"HTTP/1.1 {status} X", "content-type: application/json", f"content-length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return [("\r\n".join(head) + "\r\n\r\n").encode() + body]


@dataclass
class ScriptedServer:
    """Serves ``scripts`` in order; records every request's head and body bytes.

    ``respond``, when set, makes each request's script from its body instead (a server whose answer
    depends on what it was asked); ``base_path`` is appended to ``base_url`` (``"/v1"``: an OpenAI base URL).
    """

    scripts: list[list[Step]] = field(default_factory=list)
    requests: list[bytes] = field(default_factory=list)
    port: int = 0
    respond: Callable[[bytes], list[Step]] | None = None
    base_path: str = ""

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.base_path}"

    @property
    def bodies(self) -> list[bytes]:
        """The body bytes of every request, in arrival order."""
        return [request.partition(b"\r\n\r\n")[2] for request in self.requests]

    async def serve(self, *, task_status: trio.TaskStatus[ScriptedServer] = trio.TASK_STATUS_IGNORED) -> None:
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
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(buffer) < length:
                    buffer += await stream.receive_some(65536)
                self.requests.append(head + b"\r\n\r\n" + buffer[:length])
                buffer = buffer[length:]
                if self.respond is not None:
                    script = self.respond(self.requests[-1].partition(b"\r\n\r\n")[2])
                else:
                    script = self.scripts.pop(0) if self.scripts else json_response(500, b"{}")
                for step in script:
                    if isinstance(step, float):
                        await trio.sleep(step)
                    elif step == CLOSE:
                        return
                    else:
                        assert isinstance(step, bytes)
                        await stream.send_all(step)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return
        finally:
            await stream.aclose()
