"""The conformance corpus: a raw-socket trio server that answers ``GET /<name>`` with scenario ``name``.

Each scenario is a list of steps: bytes to send, a float to sleep, ``CLOSE`` (a clean FIN), ``RESET``
(an RST: SO_LINGER 0); a scenario that ends otherwise keeps the connection for the next request.
Before a close or reset the server pauses briefly, so the client has read what came before it.
"""

from __future__ import annotations

import gzip
import socket
import ssl
import struct
import zlib
from dataclasses import dataclass, field
from typing import Final

import trio

CLOSE: Final = "close"
RESET: Final = "reset"
PAUSE: Final = 0.05  # long enough for the client to read what was sent before a close or reset

Step = bytes | float | str

SSE: Final = b'data: {"x": 1}\n\n' * 3
BIG: Final = bytes(range(256)) * 20_000  # 5 MB


def _chunk(data: bytes, ext: bytes = b"") -> bytes:
    return b"%x%s\r\n%s\r\n" % (len(data), ext, data)


def _head(*lines: str, status: str = "200 OK") -> bytes:
    return ("\r\n".join([f"HTTP/1.1 {status}", *lines]) + "\r\n\r\n").encode()


CHUNKED_HEAD: Final = _head("content-type: text/event-stream", "transfer-encoding: chunked")
ODD_PARTS: Final = [b"a", SSE[:7], SSE[7:30], b"z" * 4093, SSE[30:], b"\r", b"\n", b"\r\n"]
GZ: Final = gzip.compress(SSE * 50)
_RAW: Final = zlib.compressobj(wbits=-zlib.MAX_WBITS)
RAW_DEFLATE: Final = _RAW.compress(SSE) + _RAW.flush()


def _one_byte_writes(data: bytes) -> list[Step]:
    return [data[i : i + 1] for i in range(len(data))]


def _length(body: bytes, *extra: str) -> bytes:
    return _head(f"content-length: {len(body)}", *extra) + body


SCENARIOS: Final[dict[str, list[Step]]] = {
    "odd-chunks": [CHUNKED_HEAD, *(_chunk(p) for p in ODD_PARTS), b"0\r\n\r\n"],
    "chunk-extensions": [
        CHUNKED_HEAD,
        _chunk(SSE, b';a=1;b="x y"'),
        _chunk(b"end", b";q "),
        b"0;last\r\n\r\n",
    ],
    "trailers": [CHUNKED_HEAD, _chunk(SSE), b"0\r\nx-checksum: 1\r\nx-other: two\r\n\r\n"],
    # Trailer lines and the blank line after them ended by a bare LF (h11 accepts it, as in a head).
    "trailers-lf": [CHUNKED_HEAD, _chunk(SSE), b"0\r\nx-checksum: 1\n\n"],
    "no-trailers-lf": [CHUNKED_HEAD, _chunk(SSE), b"0\r\n\n"],
    "content-length": [_length(SSE, "content-type: text/event-stream")],
    "close-delimited": [_head("content-type: text/event-stream"), SSE, PAUSE, CLOSE],
    "http-1.0": [b"HTTP/1.0 200 OK\r\n\r\n", SSE, PAUSE, CLOSE],
    "no-reason": [b"HTTP/1.1 200\r\ncontent-length: 2\r\n\r\nok"],
    "lf-only": [b"HTTP/1.1 200 OK\ncontent-length: 2\nx-a: b\n\nok"],
    "gzip-length": [_length(GZ, "content-encoding: gzip")],
    "gzip-chunked": [
        _head("content-encoding: gzip", "transfer-encoding: chunked"),
        *(_chunk(GZ[i : i + 100]) for i in range(0, len(GZ), 100)),
        b"0\r\n\r\n",
    ],
    "deflate": [_length(zlib.compress(SSE), "content-encoding: deflate")],
    # Raw deflate (no zlib wrapper), its first chunk's size line in a read of its own: a first read
    # with no payload bytes must not use up the decoder's one fallback to raw deflate.
    "deflate-raw-late": [
        _head("content-encoding: deflate", "transfer-encoding: chunked"),
        b"%x\r\n" % len(RAW_DEFLATE),
        PAUSE,
        RAW_DEFLATE + b"\r\n0\r\n\r\n",
    ],
    "bad-gzip": [_length(SSE, "content-encoding: gzip")],
    "one-byte-writes": _one_byte_writes(CHUNKED_HEAD + _chunk(SSE) + _chunk(b"!") + b"0\r\n\r\n"),
    "continue": [b"HTTP/1.1 100 Continue\r\n\r\n", _length(b"after 100")],
    "no-content": [_head(status="204 No Content")],
    "error-429": [_length(b'{"error": "slow down"}', "retry-after: 3", "content-type: application/json")],
    "large": [_length(BIG)],
    "large-chunked": [
        CHUNKED_HEAD,
        *(_chunk(BIG[i : i + 65_000]) for i in range(0, len(BIG), 65_000)),
        b"0\r\n\r\n",
    ],
    # A transfer coding under chunked: like h11, refused rather than handed on still compressed.
    "te-gzip-chunked": [
        _head("transfer-encoding: gzip, chunked"),
        _chunk(gzip.compress(SSE)),
        b"0\r\n\r\n",
    ],
    "bad-chunk-size": [CHUNKED_HEAD, b"zz\r\n", PAUSE, CLOSE],
    "bad-status-line": [b"HTTP/1.1 OK\r\n\r\n", PAUSE, CLOSE],
    # Cut at each stage: a clean close (FIN) and a reset (RST).
    "close-before-head": [CLOSE],
    "close-mid-head": [CHUNKED_HEAD[:20], PAUSE, CLOSE],
    "close-after-head": [CHUNKED_HEAD, PAUSE, CLOSE],
    "close-mid-chunk": [CHUNKED_HEAD, _chunk(SSE)[:10], PAUSE, CLOSE],
    "close-before-terminator": [CHUNKED_HEAD, _chunk(SSE), PAUSE, CLOSE],
    "close-short-length": [_head("content-length: 100"), b"only this", PAUSE, CLOSE],
    "reset-before-head": [PAUSE, RESET],
    "reset-mid-head": [CHUNKED_HEAD[:20], PAUSE, RESET],
    "reset-after-head": [CHUNKED_HEAD, PAUSE, RESET],
    "reset-mid-chunk": [CHUNKED_HEAD, _chunk(SSE)[:10], PAUSE, RESET],
    "reset-before-terminator": [CHUNKED_HEAD, _chunk(SSE), PAUSE, RESET],
    # Keep-alive: the first answer, then the server closes the idle connection before the next request.
    "keep-alive-closed": [_length(b"first"), PAUSE, CLOSE],
}


async def _request_body(stream: trio.abc.Stream, head: bytes, buffer: bytes) -> tuple[bytes, bytes]:
    """The request's body (Content-Length, or chunked kept as it came) and what follows it."""
    lower = head.lower()
    if b"transfer-encoding: chunked" in lower:
        while b"0\r\n\r\n" not in buffer:
            buffer += await stream.receive_some(65536)
        body, _, rest = buffer.partition(b"0\r\n\r\n")
        return body + b"0\r\n\r\n", rest
    length = 0
    for line in lower.split(b"\r\n")[1:]:
        if line.startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    while len(buffer) < length:
        buffer += await stream.receive_some(65536)
    return buffer[:length], buffer[length:]


@dataclass
class CorpusServer:
    """Serves ``SCENARIOS`` by path; counts connections (a reused one is not counted again)."""

    scenarios: dict[str, list[Step]] = field(default_factory=lambda: dict(SCENARIOS))
    port: int = 0
    connections: int = 0
    closed_by_client: int = 0  # connections the client closed (EOF while the server waited for a request)
    in_flight: int = 0
    most_in_flight: int = 0
    requests: list[bytes] = field(default_factory=list)
    ssl_context: ssl.SSLContext | None = None

    def url(self, name: str, host: str = "127.0.0.1") -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{host}:{self.port}/{name}"

    async def serve(self, *, task_status: trio.TaskStatus[CorpusServer] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started(self)
        await trio.serve_listeners(self.handle, listeners)

    async def handle(self, stream: trio.abc.Stream) -> None:
        self.connections += 1
        buffer = b""
        try:
            if self.ssl_context is not None:
                stream = trio.SSLStream(stream, self.ssl_context, server_side=True, https_compatible=True)
                await stream.do_handshake()
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = await stream.receive_some(65536)
                    if not data:
                        self.closed_by_client += 1
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                body, buffer = await _request_body(stream, head, buffer)
                self.requests.append(head + b"\r\n\r\n" + body)
                name = head.split(b" ")[1].decode().lstrip("/")
                self.in_flight += 1
                self.most_in_flight = max(self.most_in_flight, self.in_flight)
                try:
                    if await self._play(stream, self.scenarios[name]):
                        return
                finally:
                    self.in_flight -= 1
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.closed_by_client += 1
            return
        finally:
            await trio.aclose_forcefully(stream)

    async def _play(self, stream: trio.abc.Stream, steps: list[Step]) -> bool:
        """Send one scenario; True when it ended the connection."""
        for step in steps:
            if isinstance(step, float):
                await trio.sleep(step)
            elif step == CLOSE:
                return True
            elif step == RESET:
                raw = stream.transport_stream if isinstance(stream, trio.SSLStream) else stream
                assert isinstance(raw, trio.SocketStream)
                raw.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return True
            else:
                assert isinstance(step, bytes)
                await stream.send_all(step)
        return False
