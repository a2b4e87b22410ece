"""Sans-IO Content-Encoding decoding (gzip, deflate), incremental and bounded per step.

A gzip bomb cannot make one step allocate more than ``BLOCK_BYTES``: the rest of the input waits in the
decompressor (``unconsumed_tail``) until the reader asks again, so the body bound of run/stream.py stops
it early. Encodings outside ``SUPPORTED`` (br, zstd) are left to httpx's own decoders.
"""

from __future__ import annotations

import zlib
from typing import Final

BLOCK_BYTES: Final = 1024 * 1024
SUPPORTED: Final = frozenset({b"gzip", b"x-gzip", b"deflate", b"identity"})


class DecodeError(Exception):
    """The body does not match its Content-Encoding (the transport raises httpx.DecodingError)."""


class _Stage:
    """One zlib decompressor; deflate tries the zlib wrapper first, then raw deflate (as httpx does)."""

    __slots__ = ("_first", "_raw_fallback", "_zlib")

    def __init__(self, coding: bytes) -> None:
        self._raw_fallback = coding == b"deflate"
        self._first = True
        self._zlib = zlib.decompressobj(zlib.MAX_WBITS | 16 if coding != b"deflate" else zlib.MAX_WBITS)

    @property
    def has_more(self) -> bool:
        return bool(self._zlib.unconsumed_tail)

    def decode(self, data: bytes) -> bytes:
        tail = self._zlib.unconsumed_tail
        if tail:
            data = tail + data
        try:
            out = self._zlib.decompress(data, BLOCK_BYTES)
        except zlib.error as exc:
            if not (self._first and self._raw_fallback):
                raise DecodeError(f"body does not match its Content-Encoding: {exc}") from exc
            self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
            self._raw_fallback = False
            return self.decode(data)
        # Only a step that had input tells the wrapper apart: a read of framing alone (a chunk-size
        # line) decodes b"", and must not use up raw deflate's one fallback.
        if data:
            self._first = False
        return out

    def flush(self) -> bytes:
        try:
            return self._zlib.flush()
        except zlib.error as exc:  # pragma: no cover - flush of a truncated stream returns what it has
            raise DecodeError(f"body does not match its Content-Encoding: {exc}") from exc


class ContentDecoder:
    """Every coding of one Content-Encoding header, undone in reverse order of application."""

    __slots__ = ("_stages",)

    def __init__(self, codings: list[bytes]) -> None:
        self._stages = [_Stage(c) for c in reversed(codings) if c != b"identity"]

    @property
    def has_more(self) -> bool:
        """Input is waiting for a ``decode(b"")`` (the last step stopped at ``BLOCK_BYTES``)."""
        return any(stage.has_more for stage in self._stages)

    def decode(self, data: bytes) -> bytes:
        """At most ``BLOCK_BYTES`` of decoded body (per stage) from ``data`` and what waits."""
        for stage in self._stages:
            data = stage.decode(data)
        return data

    def flush(self) -> bytes:
        """What the decompressors still hold at the end of the body."""
        out = b""
        for stage in self._stages:
            out = stage.decode(out) + stage.flush() if out else stage.flush()
        return out


def decoder_for(codings: list[bytes]) -> ContentDecoder | None:
    """A decoder when runner decodes every coding listed; None to leave the body to httpx as it came."""
    if not codings or not all(c in SUPPORTED for c in codings) or all(c == b"identity" for c in codings):
        return None
    return ContentDecoder(codings)
