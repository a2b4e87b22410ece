"""Loop lag: how late a periodic task wakes on runner's trio loop, in a fixed-size histogram.

Every instant runner notes (headers, first token, gaps) is taken when its task next runs, so it is late
by about as much as the loop is busy: a run whose loop lagged stored its own delay in its timing figures.
``watch_loop_lag`` runs for the whole of every run; ``LoopLag`` (``runner.model``) says how honest
its clock was.
"""

from __future__ import annotations

import bisect
import math
from typing import Final

import trio

from runner.model import LOOP_LAG_THRESHOLD_S, LoopLag

INTERVAL_S: Final = 0.01  # how often the watcher wakes: 100 cheap wake-ups a second
# A p99 above this marks the run's timing figures (the report, which cannot import run, reads the same one).
THRESHOLD_S: Final = LOOP_LAG_THRESHOLD_S
# Bucket upper bounds, 10% apart from 10 us up to about 110 s: a quantile read off them is at most
# 10% high (or exact when capped by the max), in a fixed 172-slot array whatever the run's length.
_BOUNDS: Final = tuple(1e-5 * 1.1**k for k in range(171))


class LagHistogram:
    """Lags recorded into fixed buckets (bounded memory for a run of any length), plus the exact max."""

    __slots__ = ("_counts", "closed", "count", "max")

    def __init__(self) -> None:
        self._counts = [0] * (len(_BOUNDS) + 1)  # the last slot holds lags past the last bound
        self.count = 0
        self.max = 0.0
        self.closed = False  # the work it times has ended: later lags time nothing

    def close(self) -> None:
        """Record nothing more: what the loop does after the run's last attempt (closing the client,
        its connections and the arrival watch's thread) times no attempt, so it is no lag of the run."""
        self.closed = True

    @property
    def buckets(self) -> int:
        """How many counters the histogram holds: fixed, whatever it recorded."""
        return len(self._counts)

    def record(self, lag: float) -> None:
        if self.closed:
            return
        self._counts[bisect.bisect_left(_BOUNDS, lag)] += 1
        self.count += 1
        if lag > self.max:
            self.max = lag

    def quantile(self, q: float) -> float:
        """The nearest-rank ``q`` quantile, as its bucket's upper bound (at most the max seen)."""
        if not self.count:
            return 0.0
        rank = max(1, math.ceil(q * self.count))
        seen = 0
        for slot, n in enumerate(self._counts):
            seen += n
            if seen >= rank:
                return min(_BOUNDS[slot], self.max) if slot < len(_BOUNDS) else self.max
        return self.max  # pragma: no cover - the counts add up to count

    def summary(self, interval: float = INTERVAL_S) -> LoopLag | None:
        """p50 / p99 / max so far; None before the first wake-up (a run shorter than ``interval``)."""
        if not self.count:
            return None
        return LoopLag(
            p50_s=self.quantile(0.5),
            p99_s=self.quantile(0.99),
            max_s=self.max,
            samples=self.count,
            interval_s=interval,
        )


async def watch_loop_lag(histogram: LagHistogram, *, interval: float = INTERVAL_S) -> None:
    """Sleep ``interval`` at a time until cancelled, recording how late each wake-up came."""
    while True:
        deadline = trio.current_time() + interval
        await trio.sleep_until(deadline)
        histogram.record(trio.current_time() - deadline)
