"""The unit every dialect emitter produces: a Frame is one SSE event (or comment), already encoded.

The server decides when each frame goes out (``token`` frames are paced by the latency model and are
what mid-stream faults count); emitters only decide what the bytes are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson

if TYPE_CHECKING:
    import random

    from runner.simulator.config import Dist


class Frame(NamedTuple):
    """One encoded SSE event. A NamedTuple: thousands are built per stream on the hot path."""

    wire: bytes
    token: bool = False  # carries reasoning, answer or tool-call content


@dataclass(frozen=True, slots=True, kw_only=True)
class EmitContext:
    """What an emitter needs besides the answer: ids, time, and the seeded chunking randomness."""

    rng: random.Random
    chunk: Dist
    response_id: str
    created: int
    received: float = 0.0  # time.monotonic() when the request was read (the log's first-token delay)

    def group(self, tokens: tuple[str, ...]) -> list[str]:
        """Join consecutive tokens into event-sized pieces (the ``chunk`` distribution)."""
        pieces: list[str] = []
        i = 0
        while i < len(tokens):
            size = max(1, round(self.chunk.sample(self.rng)))
            pieces.append("".join(tokens[i : i + size]))
            i += size
        return pieces

    def fragments(self, text: str) -> list[str]:
        """Cut a tool-argument string into arbitrary pieces of 1 to 12 characters."""
        pieces: list[str] = []
        i = 0
        while i < len(text):
            size = self.rng.randint(1, 12)
            pieces.append(text[i : i + size])
            i += size
        return pieces


def data_event(payload: Any, *, event: bytes | None = None) -> bytes:
    """``[event: NAME\\n]data: JSON\\n\\n`` with compact JSON (orjson: one line, UTF-8 as is)."""
    data = b"data: " + orjson.dumps(payload) + b"\n\n"
    return b"event: " + event + b"\n" + data if event is not None else data


def interleave(sequences: list[list[Frame]]) -> list[Frame]:
    """Round-robin the frames of several choices (0, 1, 2, 0, 1, 2, ...), as n > 1 streams do."""
    if len(sequences) == 1:
        return sequences[0]
    out: list[Frame] = []
    longest = max((len(s) for s in sequences), default=0)
    for i in range(longest):
        out.extend(s[i] for s in sequences if i < len(s))
    return out
