"""The differential of every dialect's fast path: what its orjson (general) path gives for a body
against what the fast path gives for the same body split into reads at any cuts.

One helper for every dialect: the accumulator comes in built (``fast_path=False`` or the budget
a test wants), so the comparison and its outcome are written once.
"""

from __future__ import annotations

from typing import NamedTuple

from runner.model import Completion
from runner.wire.dialects.base import Accumulator
from runner.wire.replay import accumulate
from runner.wire.sse import decode_all


class Outcome(NamedTuple):
    """What a differential compares: the completion and the signals the attempt layer reads."""

    completion: Completion
    has_reasoning: bool
    has_answer: bool
    tokens: int


def outcome(accumulator: Accumulator, completion: Completion) -> Outcome:
    return Outcome(completion, accumulator.has_reasoning, accumulator.has_answer, accumulator.tokens)


def general_path(accumulator: Accumulator, body: bytes) -> Outcome:
    """Every event of ``body`` decoded as text and fed one at a time (``feed``)."""
    for event in decode_all(body):
        accumulator.feed(event)
    return outcome(accumulator, accumulator.result())


def split_reads(body: bytes, cuts: list[int]) -> list[bytes]:
    """``body`` cut at ``cuts`` (sorted offsets, repeats allowed: an empty read)."""
    return [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]


def fast_path(accumulator: Accumulator, body: bytes, cuts: list[int]) -> Outcome:
    """``body`` in reads split at ``cuts`` through feed_raw and feed_many (the attempt layer's way)."""
    return outcome(accumulator, accumulate(accumulator, split_reads(body, cuts)))
