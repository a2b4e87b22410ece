"""The planned timeline of a streamed response: every byte once, in order, with the latency model's waits."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from runner.simulator.config import Dist, Fault, Latency
from runner.simulator.frames import Frame
from runner.simulator.http import LAST_CHUNK, SSE_HEAD, chunk
from runner.simulator.pacing import FLUSH_AT, plan_stream

HEARTBEAT = chunk(b": heartbeat\n\n")


def _frames(tokens: list[bool]) -> list[Frame]:
    return [Frame(b"data: %d\n\n" % i, token) for i, token in enumerate(tokens)]


def _body(frames: list[Frame]) -> bytes:
    return SSE_HEAD + b"".join(chunk(f.wire) for f in frames) + LAST_CHUNK


@given(
    tokens=st.lists(st.booleans(), max_size=40),
    ttft=st.sampled_from([0.0, 0.05, 2.5]),
    gap=st.sampled_from([0.0, 0.02, 1.5]),
    coalesce=st.booleans(),
)
def test_writes_hold_the_whole_body_and_the_drawn_waits(
    tokens: list[bool], ttft: float, gap: float, coalesce: bool
) -> None:
    """Without heartbeats the writes concatenate to the body and their delays sum to the drawn pauses."""
    frames = _frames(tokens)
    latency = Latency(ttft=Dist(a=ttft), gap=Dist(a=gap), heartbeat=10.0)
    writes, cut = plan_stream(
        frames, Fault(), latency=latency, rng=random.Random(0), coalesce=coalesce, heartbeat=HEARTBEAT
    )
    assert cut is None
    assert b"".join(w.data for w in writes) == _body(frames)
    assert all(w.data for w in writes)
    count = sum(tokens)
    assert abs(sum(w.delay for w in writes) - ((ttft if count else 0.0) + gap * max(0, count - 1))) < 1e-9
    assert sum(w.first_token for w in writes) == (1 if count else 0)
    if not coalesce:
        assert all(w.data.count(b"data: ") <= 1 for w in writes)  # one write per event at most
    elif ttft == gap == 0.0:
        assert len(writes) == 1


def test_long_pauses_are_filled_with_heartbeats() -> None:
    """A 2.5 s pause with a 1 s heartbeat interval is two heartbeats, then the 0.5 s rest."""
    latency = Latency(ttft=Dist(a=2.5), heartbeat=1.0)
    writes, _ = plan_stream(
        _frames([False, True]),
        Fault(),
        latency=latency,
        rng=random.Random(0),
        coalesce=True,
        heartbeat=HEARTBEAT,
    )
    assert [(w.delay, w.data == HEARTBEAT) for w in writes[:3]] == [(0.0, False), (1.0, True), (1.0, True)]
    assert abs(writes[3].delay - 0.5) < 1e-9
    assert writes[3].first_token


def test_a_mid_stream_fault_cuts_at_its_token_with_the_unsent_frames() -> None:
    """close_clean:2 stops before the third token frame, handing over what is not sent yet."""
    frames = _frames([False, True, True, True, True])
    latency = Latency(gap=Dist(a=0.01))
    writes, cut = plan_stream(
        frames,
        Fault(name="close_clean", arg="2"),
        latency=latency,
        rng=random.Random(0),
        coalesce=True,
        heartbeat=HEARTBEAT,
    )
    assert cut is not None
    assert cut.frame == frames[3]
    assert b"".join(w.data for w in writes) + cut.pending == SSE_HEAD + b"".join(
        chunk(f.wire) for f in frames[:3]
    )
    assert abs(cut.delay - 0.01) < 1e-9  # the pause before the second token, still owed


def test_big_bursts_split_at_the_flush_size() -> None:
    """Back-to-back frames share a write only up to FLUSH_AT bytes."""
    frames = [Frame(b"data: " + b"x" * 1000 + b"\n\n", True) for _ in range(40)]
    writes, _ = plan_stream(
        frames, Fault(), latency=Latency(), rng=random.Random(0), coalesce=True, heartbeat=HEARTBEAT
    )
    assert len(writes) > 1
    assert all(len(w.data) < FLUSH_AT + 1100 for w in writes)
    assert b"".join(w.data for w in writes) == _body(frames)
