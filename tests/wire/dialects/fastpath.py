"""What the fast-path tests share: an accumulator fed event by event or read by read, and the
placeholders that put raw JSON tokens and duplicate keys where json.dumps cannot."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Final

from runner.wire.replay import accumulate
from runner.wire.sse import SSEDecoder, decode_all

if TYPE_CHECKING:
    from runner.model import Completion
    from runner.wire.dialects.base import Accumulator

# Strings replaced after json.dumps: RAW by a raw JSON token (or bytes that are not JSON), DUP (a key
# json.dumps cannot repeat) by a second copy of a real key.
RAW = "@@raw@@"
DUP = "@@dup@@"
# Raw JSON tokens every dialect's test puts where RAW stands (each adds its own): values msgspec and
# orjson might read differently (ints vs floats, huge ints, 1e400, NaN, invalid UTF-8, lone
# surrogates, nesting past orjson's depth limit of 1024), and bytes that are not JSON.
RAW_TOKENS: Final = [
    b"0",
    b"-0",
    b"1.0",
    b"1e0",
    b"true",
    b"null",
    b"[]",
    b"{}",
    b"9223372036854775807",
    b"9223372036854775808",
    b"18446744073709551616",
    b"9" * 400,
    b"1e400",
    b"NaN",
    b'"\\ud800"',
    b'"\\ud83d\\ude00"',
    b'"\\u0000"',
    b'"a\xffb"',
    b'"\xed\xa0\x80"',
    b"[" * 1100 + b"]" * 1100,
    b'"x"',
]

# What a path ends with: the completion, has_reasoning, has_answer, tokens.
Signals = tuple["Completion", bool, bool, int]


def fed_event_by_event(acc: Accumulator, body: bytes) -> Signals:
    """Every event of ``body`` decoded as text and fed one at a time (``feed``)."""
    for event in decode_all(body):
        acc.feed(event)
    return acc.result(), acc.has_reasoning, acc.has_answer, acc.tokens


def fed_in_reads(acc: Accumulator, body: bytes, cuts: list[int]) -> Signals:
    """``body`` in reads split at ``cuts`` through feed_read (the attempt layer's way)."""
    pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    return accumulate(acc, pieces), acc.has_reasoning, acc.has_answer, acc.tokens


def fed_raw_in_reads(acc: Accumulator, body: bytes, cuts: list[int]) -> Signals:
    """``body`` in reads split at ``cuts`` through feed_raw and then feed_many, never feed_read (the
    attempt layer's way until the first token of a dated stream)."""
    decoder = SSEDecoder()
    for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True):
        acc.feed_many(decoder.feed_raw(body[a:b]))
    acc.feed_many(decoder.close())
    return acc.result(), acc.has_reasoning, acc.has_answer, acc.tokens


def dump_with_placeholders(payload: dict[str, Any], *, dup_key: str, raw: bytes) -> bytes:
    """``payload`` as JSON, its DUP entry a second ``dup_key`` and every RAW string ``raw``."""
    text = json.dumps(payload, ensure_ascii=False).replace(f'"{DUP}": "dup"', f'"{dup_key}": "dup"')
    return text.encode("utf-8", "surrogatepass").replace(f'"{RAW}"'.encode(), raw)
