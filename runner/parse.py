"""Replay a captured SSE body through a dialect: the pure core of ``runner parse``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runner.dialects import get_dialect
from runner.sse import SSEDecoder

if TYPE_CHECKING:
    from collections.abc import Iterable

    from runner.dialects.base import Accumulator
    from runner.model import Completion


def accumulate(accumulator: Accumulator, reads: Iterable[bytes]) -> Completion:
    """Feed raw body reads through a fresh SSE decoder into ``accumulator``; return its result.

    Reading stops at the accumulator's terminal signal, as the attempt layer does on a live stream.
    """
    decoder = SSEDecoder()
    for read in reads:
        events = decoder.feed_raw(read)
        if events:
            accumulator.feed_many(events)
            if accumulator.is_done:
                return accumulator.result()
    accumulator.feed_many(decoder.close())
    return accumulator.result()


def parse_stream(dialect_name: str, body: bytes) -> Completion:
    """Rebuild the ``Completion`` a whole captured body carries.

    Raises:
        ConfigError: ``dialect_name`` is not a known dialect.
    """
    return accumulate(get_dialect(dialect_name).new_accumulator(), (body,))
