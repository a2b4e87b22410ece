"""Sans-IO HTTP/1.1 response reading: the status line and headers, then the body's framing.

Bytes go in as the socket delivered them, however split; heads and body bytes come out. No I/O and no
trio or httpx here (h11's shape, cut down to what a client needs), so hypothesis can feed it any chunking.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

# h11 accepts heads up to 16 KiB by default; providers' heads are far smaller, a proxy's error page head too.
MAX_HEAD_BYTES: Final = 64 * 1024
# A chunk-size line (size and extensions) or a trailer line longer than this is not a real server's.
MAX_LINE_BYTES: Final = 8 * 1024
MAX_TRAILER_BYTES: Final = 64 * 1024

_STATUS_LINE: Final = re.compile(rb"HTTP/(\d\.\d) (\d{3})(?: ([^\r\n]*))?")
_TOKEN: Final = re.compile(rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+")
# h11's rule (RFC 9112 7.1 without BWS before ';'), so both transports refuse the same lines.
_CHUNK_SIZE: Final = re.compile(rb"([0-9A-Fa-f]{1,20})(?:;.*)?[ \t]*")
# Like h11, a bare LF ends a line too (RFC 9112 2.2 lets a recipient accept it).
_HEAD_END: Final = re.compile(rb"\n\r?\n")
_LINE: Final = re.compile(rb"\r?\n")

_SIZE, _DATA, _DATA_END, _TRAILER, _DONE = range(5)


class ProtocolError(Exception):
    """The server's bytes are not valid HTTP/1.1 (the transport raises httpx.RemoteProtocolError)."""


@dataclass(frozen=True, slots=True)
class Head:
    """A response's status line and headers (names lower-cased, values stripped)."""

    status: int
    reason: bytes
    version: bytes  # b"HTTP/1.1"
    headers: list[tuple[bytes, bytes]]

    def values(self, name: bytes) -> list[bytes]:
        """Every value of header ``name`` (lower case), comma-separated lists split, lower-cased."""
        return [
            part.strip().lower()
            for key, value in self.headers
            if key == name
            for part in value.split(b",")
            if part.strip()
        ]


def parse_head(block: bytes) -> Head:
    """One head (without its blank line) -> ``Head``; ``ProtocolError`` when it is not HTTP/1.x."""
    lines = _LINE.split(block)
    status = _STATUS_LINE.fullmatch(lines[0])
    if status is None:
        raise ProtocolError(f"not an HTTP/1.1 status line: {lines[0][:80]!r}")
    headers: list[tuple[bytes, bytes]] = []
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t"):  # obs-fold (RFC 9112 5.2): a continuation of the previous value
            if not headers:
                raise ProtocolError("a header continuation line before any header")
            name, value = headers[-1]
            headers[-1] = (name, (value + b" " + line.strip(b" \t")).strip(b" \t"))
            continue
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.fullmatch(name):
            raise ProtocolError(f"malformed header line: {line[:80]!r}")
        headers.append((name.lower(), value.strip(b" \t")))
    version, code, reason = status.groups()
    return Head(status=int(code), reason=reason or b"", version=b"HTTP/" + version, headers=headers)


class HeadReader:
    """Collects bytes until a final response head; interim 1xx heads (100 Continue) are skipped."""

    __slots__ = ("_buffer", "rest")

    def __init__(self) -> None:
        self._buffer = b""
        self.rest = b""  # the bytes after the final head: the start of the body

    def feed(self, data: bytes) -> Head | None:
        """Add received bytes; the final head once it is complete, else None."""
        buffer = self._buffer + data if self._buffer else data
        while True:
            end = _HEAD_END.search(buffer)
            if end is None:
                if len(buffer) > MAX_HEAD_BYTES:
                    raise ProtocolError(f"response head longer than {MAX_HEAD_BYTES} bytes")
                self._buffer = buffer
                return None
            block = buffer[: end.start()]
            # The match starts at the last line's LF: its CR (if any) is still on the block.
            head = parse_head(block[:-1] if block.endswith(b"\r") else block)
            buffer = buffer[end.end() :]
            # 101 would switch protocols: nothing runner asks for; it is taken as final (and not reused).
            if 100 <= head.status < 200 and head.status != 101:
                continue
            self._buffer = b""
            self.rest = buffer
            return head


class BodyReader:
    """The framing of one response body: ``feed`` returns its payload bytes, ``eof`` says the peer closed.

    ``done`` once the body is complete; ``extra`` holds bytes past its end (none from a sane server).
    """

    __slots__ = ("_pending", "_remaining", "_state", "done", "extra", "trailers")

    def __init__(self) -> None:
        self.done = False
        self.extra = b""
        self.trailers: list[bytes] = []
        self._pending = b""
        self._remaining = 0
        self._state = _SIZE

    def feed(self, data: bytes) -> bytes:  # pragma: no cover - every framing overrides it
        raise NotImplementedError

    def eof(self) -> None:
        """The peer closed the connection: fine only when the body is complete."""
        if not self.done:
            raise ProtocolError("peer closed connection without sending complete message body")


class EmptyBody(BodyReader):
    """No body: HEAD, 1xx, 204, 304."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__()
        self.done = True

    def feed(self, data: bytes) -> bytes:
        self.extra += data
        return b""


class LengthBody(BodyReader):
    """``Content-Length: n``."""

    __slots__ = ()

    def __init__(self, length: int) -> None:
        super().__init__()
        self._remaining = length
        self.done = length == 0

    def feed(self, data: bytes) -> bytes:
        remaining = self._remaining
        if len(data) < remaining:
            self._remaining = remaining - len(data)
            return data
        self._remaining = 0
        self.done = True
        if len(data) > remaining:
            self.extra += data[remaining:]
            return data[:remaining]
        return data


class CloseBody(BodyReader):
    """No length and not chunked: the body runs until the server closes the connection."""

    __slots__ = ()

    def feed(self, data: bytes) -> bytes:
        return data

    def eof(self) -> None:
        self.done = True


class ChunkedBody(BodyReader):
    """``Transfer-Encoding: chunked``; extensions are ignored, trailers kept (raw lines) and not used."""

    __slots__ = ()

    def feed(self, data: bytes) -> bytes:
        # The hot path of a streamed response: one call per socket read, whatever the number of chunks
        # in it, and one join of the payload slices (PERFORMANCE.md: per read, not per chunk).
        if self._pending:
            data = self._pending + data
            self._pending = b""
        out: list[bytes] = []
        pos, size, state, remaining = 0, len(data), self._state, self._remaining
        while pos < size:
            if state == _DATA:
                end = pos + remaining
                if end >= size:
                    out.append(data[pos:] if pos else data)
                    remaining = end - size
                    pos = size
                    if remaining == 0:
                        state = _DATA_END
                    break
                out.append(data[pos:end])
                pos, remaining, state = end, 0, _DATA_END
            elif state == _DATA_END:
                if size - pos < 2:
                    self._pending = data[pos:]
                    break
                if data[pos : pos + 2] != b"\r\n":
                    raise ProtocolError("chunk data not followed by CRLF")
                pos += 2
                state = _SIZE
            elif state in (_SIZE, _TRAILER):
                # A chunk-size line ends in CRLF (h11's rule); a trailer line, like a head's, may end
                # in a bare LF: h11 accepts that, and waiting for a CRLF that never comes would hang.
                eol = data.find(b"\r\n" if state == _SIZE else b"\n", pos)
                if eol < 0:
                    if size - pos > MAX_LINE_BYTES:
                        raise ProtocolError(f"chunk size or trailer line over {MAX_LINE_BYTES} bytes")
                    self._pending = data[pos:]
                    break
                if state == _SIZE:
                    line, pos = data[pos:eol], eol + 2
                    remaining = _chunk_size(line)
                    state = _DATA if remaining else _TRAILER
                    continue
                line = data[pos : eol - 1 if eol > pos and data[eol - 1] == 13 else eol]  # 13: CR
                pos = eol + 1
                if line:
                    self.trailers.append(line)
                    if sum(map(len, self.trailers)) > MAX_TRAILER_BYTES:
                        raise ProtocolError(f"trailers longer than {MAX_TRAILER_BYTES} bytes")
                else:
                    state = _DONE
                    self.done = True
                    self.extra = data[pos:]
                    break
            else:  # pragma: no cover - _DONE breaks out above
                break
        self._state, self._remaining = state, remaining
        if len(out) == 1:
            return out[0]
        return b"".join(out)


def _chunk_size(line: bytes) -> int:
    match = _CHUNK_SIZE.fullmatch(line)
    if match is None:
        raise ProtocolError(f"malformed chunk size line: {line[:40]!r}")
    return int(match.group(1), 16)


def body_reader(head: Head, *, method: bytes) -> BodyReader:
    """The framing of the body that follows ``head`` (RFC 9112 6.3), for a request of ``method``."""
    if method == b"HEAD" or head.status in (204, 304) or head.status < 200:
        return EmptyBody()
    codings = head.values(b"transfer-encoding")
    if codings:
        # chunked alone, as h11 (and so httpx) accepts: another coding under it would reach the reader
        # still applied, its bytes taken for the body.
        if codings != [b"chunked"]:
            raise ProtocolError(f"unsupported Transfer-Encoding: {b', '.join(codings)!r}")
        return ChunkedBody()
    lengths = set(head.values(b"content-length"))
    if lengths:
        if len(lengths) > 1 or not next(iter(lengths)).isdigit():
            raise ProtocolError(f"invalid Content-Length: {b', '.join(sorted(lengths))!r}")
        return LengthBody(int(next(iter(lengths))))
    return CloseBody()


def is_keep_alive(head: Head, body: BodyReader) -> bool:
    """Whether the connection can carry another request once ``body`` is complete."""
    if isinstance(body, CloseBody) or head.status == 101 or body.extra:
        return False
    connection = head.values(b"connection")
    if head.version == b"HTTP/1.0":
        return b"keep-alive" in connection
    return b"close" not in connection
