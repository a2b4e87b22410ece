"""Minimal, fast HTTP/1.1 for the simulator: sans-IO request parsing and response framing.

Only what LLM clients send: a request line, headers, and a Content-Length body (keep-alive by
default, pipelining tolerated). Chunked request bodies are refused with 411; the simulator is a
loopback tool, not a general server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from runner.simulator.faults import REASONS

if TYPE_CHECKING:
    from collections.abc import Sequence

MAX_HEAD: Final = 64 * 1024
MAX_BODY: Final = 64 * 1024 * 1024


class HttpParseError(Exception):
    """The bytes are not an HTTP/1.1 request we accept; ``status`` is what to answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        self.status = status
        super().__init__(message)


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """One parsed request; header names are lower-cased."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def keep_alive(self) -> bool:
        return self.headers.get("connection", "").lower() != "close"


class RequestReader:
    """Feed bytes as they arrive; ``next_request`` returns a Request once one is complete."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def next_request(self) -> Request | None:
        buffer = self._buffer
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > MAX_HEAD:
                raise HttpParseError("request head too large", 431)
            return None
        lines = bytes(buffer[:end]).decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise HttpParseError(f"bad request line {lines[0]!r}")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon or not name or name != name.strip():
                raise HttpParseError(f"bad header line {line!r}")
            headers[name.lower()] = value.strip()
        if "transfer-encoding" in headers:
            raise HttpParseError("chunked request bodies are not supported", 411)
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            raise HttpParseError("bad content-length") from None
        if length < 0 or length > MAX_BODY:
            raise HttpParseError("content-length out of range", 413)
        start = end + 4
        if len(buffer) < start + length:
            return None
        body = bytes(buffer[start : start + length])
        del buffer[: start + length]
        return Request(method=parts[0], path=parts[1], headers=headers, body=body)


def response_head(status: int, headers: list[tuple[bytes, bytes]]) -> bytes:
    """Status line and headers, ending with the blank line."""
    reason = REASONS.get(status, "OK" if status < 300 else "Error").encode()
    lines = [b"HTTP/1.1 %d %s" % (status, reason)]
    lines.extend(name + b": " + value for name, value in headers)
    return b"\r\n".join(lines) + b"\r\n\r\n"


def json_response(
    status: int, body: bytes, *, extra: Sequence[tuple[bytes, bytes]] = (), keep_alive: bool = True
) -> bytes:
    """A whole JSON response with Content-Length."""
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *extra,
    ]
    if not keep_alive:
        headers.append((b"connection", b"close"))
    return response_head(status, headers) + body


SSE_HEAD: Final = response_head(
    200,
    [
        (b"content-type", b"text/event-stream; charset=utf-8"),
        (b"cache-control", b"no-cache"),
        (b"x-accel-buffering", b"no"),
        (b"transfer-encoding", b"chunked"),
    ],
)
LAST_CHUNK: Final = b"0\r\n\r\n"


def chunk(data: bytes) -> bytes:
    """One HTTP/1.1 chunk holding ``data`` (never empty: an empty chunk ends the body)."""
    return b"%x\r\n%b\r\n" % (len(data), data)
