"""A streamed response's timeline, planned before its first byte: which bytes each write sends, and
how long after the previous write it goes out.

Sans-IO: the latency model's draws, the coalescing of frames that go out together, heartbeats during
long pauses and the frame a mid-stream fault replaces are all decided here, in the order the server
used to decide them while it sent (so a seed still gives the same timeline). ``runner.simulator.pacer``
then plays the writes for every stream from one task.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, NamedTuple

from runner.simulator.config import MID_STREAM_FAULTS
from runner.simulator.faults import malformed
from runner.simulator.http import LAST_CHUNK, SSE_HEAD, chunk

if TYPE_CHECKING:
    import random

    from runner.simulator.config import Fault, Latency
    from runner.simulator.frames import Frame

FLUSH_AT: Final = 16 * 1024  # back-to-back frames share one write (whole chunks only) up to this size


class Write(NamedTuple):
    """One send of a stream: ``data`` goes out ``delay`` seconds after the previous write returned."""

    delay: float
    data: bytes
    # Holds the stream's first token event: its send instant is what the log keeps for comparing
    # with a client's TTFT (ServedLog.first_token_at).
    first_token: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Cut:
    """Where a mid-stream fault takes over: the bytes still unsent and the frame it replaces."""

    delay: float  # before the fault's first write
    pending: bytes  # coalesced frames not sent yet: the fault's first write starts with them
    first_token: bool  # ``pending`` holds the first token event
    frame: Frame


def plan_stream(
    frames: list[Frame],
    fault: Fault,
    *,
    latency: Latency,
    rng: random.Random,
    coalesce: bool,
    heartbeat: bytes,
) -> tuple[list[Write], Cut | None]:
    """The writes of a streamed response (head and last chunk included), or those before a mid-stream
    fault and the ``Cut`` it starts at.

    ``heartbeat`` is one HTTP chunk: a pause longer than ``latency.heartbeat`` is filled with it every
    that many seconds, the way providers keep proxies awake.
    """
    tokens = [i for i, f in enumerate(frames) if f.token]
    trigger = -1
    if fault.name in (*MID_STREAM_FAULTS, "malformed"):
        k = fault.after if fault.after is not None else len(tokens) // 2
        trigger = tokens[k] if k < len(tokens) else len(frames) - 1
    writes: list[Write] = []
    pending = bytearray(SSE_HEAD)
    wait = 0.0  # seconds since the previous write, owed by the next one
    seen = 0
    first_pending = False  # the first token's frame waits in `pending` (coalesced)
    interval = latency.heartbeat
    for i, frame in enumerate(frames):
        if i == trigger:
            if fault.name != "malformed":
                return writes, Cut(delay=wait, pending=bytes(pending), first_token=first_pending, frame=frame)
            frame = malformed(frame)
        if frame.token:
            dist = latency.ttft if seen == 0 else latency.gap
            seen += 1
            if not dist.is_zero:
                delay = dist.sample(rng)
                if delay > 0:
                    if pending:  # an empty flush sends nothing: its wait carries on to the next write
                        writes.append(Write(wait, bytes(pending), first_pending))
                        wait, first_pending = 0.0, False
                        pending.clear()
                    while delay > interval:
                        writes.append(Write(wait + interval, heartbeat))
                        wait = 0.0
                        delay -= interval
                    wait += delay
            first_pending = first_pending or seen == 1
        pending += chunk(frame.wire)
        if len(pending) >= FLUSH_AT or not coalesce:
            writes.append(Write(wait, bytes(pending), first_pending))
            wait, first_pending = 0.0, False
            pending.clear()
    pending += LAST_CHUNK
    writes.append(Write(wait, bytes(pending), first_pending))
    return writes, None
