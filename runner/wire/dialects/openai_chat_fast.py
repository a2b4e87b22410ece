"""The ``openai-chat`` msgspec fast path's schema: the common chunk shapes as typed Structs, and why
decoding into them is exact. ``OpenAIChatAccumulator.feed_many`` (openai_chat.py) uses it per chunk.
"""

from __future__ import annotations

from typing import Annotated, Final

import msgspec

# How many payloads per stream may miss the msgspec fast path (a shape it does not know, or a
# chunk it does not handle) before feed_many stops trying it for that stream: a provider whose
# every chunk carries an extra field pays a failed msgspec attempt 16 times, not on every chunk.
FAST_DECODE_MISSES: Final = 16


# Why it is exact: every Struct forbids unknown fields and every field has a concrete type (str,
# None, a bounded int, a list of Structs), so msgspec decodes every value of an accepted
# document with a typed decoder and skips nothing. Whatever it accepts, orjson accepts too and
# reads as the same values (checked value by value in tests/wire/dialects/test_openai_chat_fast_path.py):
# - strings: both reject invalid UTF-8 (msgspec raises UnicodeDecodeError, a ValueError), lone or
#   mismatched surrogate escapes (\ud800), raw control characters; both keep \u0000 and U+FFFE;
# - ints: orjson reads -2**63 .. 2**64-1 as int and anything larger as a float (or rejects it as
#   infinity: 1e400, 400 digits), msgspec would read any size as int: Int64 admits the int64 range
#   only, so an index of 2**64 or 1e400 is a miss, never a different value; bools and floats
#   (true, 1.0, 1e0) are not ints to msgspec, so they miss too;
# - NaN / Infinity, trailing commas, leading zeros, a BOM, trailing data: rejected by both;
# - duplicate keys: the last one wins in both;
# - skipped values: none (forbid_unknown_fields), so msgspec's skipping of unknown fields, which
#   checks neither UTF-8 nor number range (it accepts 1e400 and "\xff" there, orjson does not)
#   nor orjson's depth limit of 1024, never decides anything: an unknown key is a miss.
# Anything msgspec rejects (any ValueError) or a shape feed_many does not handle goes to the
# orjson path, which defines the result. No difference in results is known; the only observable
# one is speed (and the miss budget, the accumulator's ``msgspec_misses``).
Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]


class ChunkFunction(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    name: str | None = None
    arguments: str | None = None  # an object (a few servers) is a miss: add() dumps it


class ChunkToolCall(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    index: Int64 | None = None
    id: str | None = None
    type: str | None = None
    function: ChunkFunction | None = None


class ChunkDelta(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    # A null value reads as an absent key in the accumulator's _delta for each of these: content
    # (`content and`), reasoning (`or`), refusal (`is not None`), tool_calls (`and`). A non-null
    # refusal starts the refusal list, so it is left to the orjson path (type None).
    role: str | None = None
    content: str | None = None
    refusal: None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    tool_calls: list[ChunkToolCall] | None = None


class ChunkChoice(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    index: Int64 | None = None
    delta: ChunkDelta | None = None
    finish_reason: None = None  # a finish reason is left to the accumulator's _chunk
    logprobs: None = None


class Chunk(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    # usage, error, x_groq, citations, search_results: left to the accumulator's _chunk (not fields,
    # or null only).
    choices: list[ChunkChoice]
    id: str | None = None
    object: str | None = None
    created: Int64 | None = None
    model: str | None = None
    system_fingerprint: str | None = None
    service_tier: str | None = None
    obfuscation: str | None = None
    usage: None = None


decode_chunk: Final = msgspec.json.Decoder(Chunk).decode
