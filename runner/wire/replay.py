"""Replay a captured SSE body through a dialect: the pure core of ``runner parse``."""

from __future__ import annotations

import itertools
import sys
from typing import TYPE_CHECKING

from runner.model import Completion, CompletionError
from runner.wire.dialects import get_dialect
from runner.wire.sse import SSEDecoder

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from runner.wire.dialects.base import Accumulator
    from runner.wire.events import ServerSentEvent


def accumulate(accumulator: Accumulator, reads: Iterable[bytes]) -> Completion:
    """Feed raw body reads through a fresh SSE decoder into ``accumulator``; return its result.

    Reading stops at the accumulator's terminal signal, as the attempt layer does on a live stream.
    """
    # A stored body was bounded when it was read (max_response_bytes): replay it whole.
    decoder = SSEDecoder(max_event_bytes=sys.maxsize)
    for read in reads:
        if accumulator.feed_read(decoder, read) and accumulator.is_done:
            return accumulator.result()
    accumulator.feed_many(decoder.close())
    return accumulator.result()


def parse_stream(dialect_name: str, body: bytes) -> Completion:
    """Rebuild the ``Completion`` a whole captured body carries.

    Raises:
        ConfigError: ``dialect_name`` is not a known dialect.
    """
    return accumulate(get_dialect(dialect_name).new_accumulator(), (body,))


def parse_error_response(dialect_name: str, status: int, body: bytes) -> Completion:
    """The ``Completion`` of a non-2xx response: no choices, the provider's error as the dialect
    reads it (the body of an HTTP error is a JSON error object, not a stream)."""
    error = get_dialect(dialect_name).parse_error_body(status, body)
    if error is None:
        text = body.decode("utf-8", "replace")[:500]
        error = CompletionError(type="http_error", message=f"HTTP {status}: {text}", code=status)
    return Completion(complete=False, error=error)


def parse_body(dialect_name: str, body: bytes, *, http_status: int | None = None) -> Completion:
    """The ``Completion`` of a captured body: a stream, or the error object of a non-2xx response.

    ``http_status`` is the stored attempt's status; ``None`` (bytes from a file) reads ``body`` as a stream.
    """
    if http_status is not None and not 200 <= http_status < 300:
        return parse_error_response(dialect_name, http_status, body)
    return parse_stream(dialect_name, body)


def events_by_read(body: bytes, offsets: Sequence[int]) -> list[tuple[bytes, list[ServerSentEvent]]]:
    """Split a captured ``body`` at the reads' start ``offsets`` and decode it read by read: each
    read's bytes with the events it completed (an event split across reads comes out with the read
    that ended it), one entry per offset. Without offsets the body is one read."""
    starts = [min(max(o, 0), len(body)) for o in offsets] or [0]
    bounds = [*starts, len(body)]
    decoder = SSEDecoder(max_event_bytes=sys.maxsize)
    out = []
    for start, end in itertools.pairwise(bounds):
        chunk = body[start:end]
        out.append((chunk, decoder.feed(chunk)))
    return out
