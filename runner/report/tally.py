"""Streaming tallies: exact sums, bounded samples and bounded "best k" picks over a stream of values.

The run report reads a run's units once, in batches, and keeps only these; so a million-unit run
renders in the memory of a thousand-unit one. Pure and deterministic: the same stream, the same result.
"""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING, Final, Generic, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

T = TypeVar("T")
K = TypeVar("K")

# Values a Sample keeps: below it every value (percentiles are exact, as over a list); above it a
# uniform sample of between half and all of it, whose p99 rests on 50 to 200 values past it.
SAMPLE_CAP: Final = 20_000
_FOLD_AT: Final = 65_536  # values an ExactSum buffers before folding them into its partials


class ExactSum:
    """A running sum equal to ``math.fsum`` of every value added, and None while nothing was added.

    Values are buffered (``add`` is a list append; a hot loop appends to ``incoming`` itself and calls
    ``settle()`` once in a while) and folded, a buffer at a time, into a few floats whose exact sum is
    the exact sum so far: each round's ``fsum`` (exactly rounded) takes the leading part of what is
    left, until nothing is. Where the folds fall does not change the sum.
    """

    __slots__ = ("_parts", "count", "incoming")

    def __init__(self) -> None:
        self._parts: list[float] = []
        self.incoming: list[float] = []
        self.count = 0

    def add(self, value: float) -> None:
        self.incoming.append(value)
        self.settle()

    def settle(self) -> None:
        if len(self.incoming) >= _FOLD_AT:
            self._fold()

    def _fold(self) -> None:
        values = self._parts + self.incoming
        self.count += len(self.incoming)
        self.incoming.clear()  # in place: a hot loop may hold the list
        parts: list[float] = []
        while (rest := math.fsum(values + [-p for p in parts])) != 0.0:
            parts.append(rest)
        self._parts = parts

    def merged(self, other: ExactSum) -> ExactSum:
        """A sum of both streams' values (neither is changed)."""
        both = ExactSum()
        both.incoming = [*self._parts, *self.incoming, *other._parts, *other.incoming]
        both.count = self.count + other.count
        return both

    @property
    def value(self) -> float | None:
        if not self.count and not self.incoming:
            return None
        return math.fsum(self._parts + self.incoming)


class Sample(Generic[T]):
    """A bounded uniform sample of a stream: every item while there are at most ``capacity``, then each
    item kept with the same chance (halved whenever the sample outgrows its capacity). Seeded: a
    report is reproducible.

    Adding is ``sample.incoming.append(item)`` (the hot loop runs it per attempt); ``settle()``, called
    once per unit, folds what came in when it has grown to ``capacity``.
    """

    __slots__ = ("_kept", "_rng", "_seen", "capacity", "incoming", "rate")

    def __init__(self, capacity: int = SAMPLE_CAP, *, seed: int = 0) -> None:
        self.capacity = capacity
        self.incoming: list[T] = []
        self._kept: list[T] = []
        self._seen = 0
        self.rate = 1.0  # the chance each item of the stream had to be kept
        self._rng = random.Random(seed)

    def add(self, item: T) -> None:
        self.incoming.append(item)
        self.settle()

    def settle(self) -> None:
        if len(self.incoming) >= self.capacity:
            self._fold()

    def _fold(self) -> None:
        batch = self.incoming[:]
        self.incoming.clear()  # in place: a hot loop may hold the list
        self._seen += len(batch)
        if self.rate < 1.0:
            batch = self._rng.sample(batch, round(len(batch) * self.rate))
        self._kept += batch
        self._shrink()

    def _shrink(self) -> None:
        while len(self._kept) > self.capacity:
            self._kept = self._rng.sample(self._kept, len(self._kept) // 2)
            self.rate /= 2

    @property
    def seen(self) -> int:
        return self._seen + len(self.incoming)

    @property
    def items(self) -> list[T]:
        """The sample (every item, in stream order, while none was left out)."""
        self._fold()
        return self._kept

    @property
    def is_sample(self) -> bool:
        """True when items were left out."""
        self._fold()
        return self.rate < 1.0

    def merged(self, other: Sample[T]) -> Sample[T]:
        """A uniform sample of both streams: the one kept at the higher rate is thinned to the other's."""
        both: Sample[T] = Sample(self.capacity)
        both.rate = min(self.rate, other.rate)
        for part in (self, other):
            items = part.items
            if part.rate > both.rate:
                items = both._rng.sample(items, round(len(items) * both.rate / part.rate))
            both._kept += items
            both._seen += part.seen
        both._shrink()
        return both


class BestK(Generic[K, T]):
    """The ``k`` items of a stream with the smallest ranks (ties: the earlier item), in rank order.

    ``offer`` makes the item (``make()``) only when it would be kept, so a stream of a million units
    builds a few thousand rows. Kept items are pruned in batches (sort, cut at ``k``): amortized
    O(log k) an item, without a heap's need for a total order on the items themselves.
    """

    __slots__ = ("_items", "_worst", "k", "seen")

    def __init__(self, k: int) -> None:
        self.k = k
        self.seen = 0
        self._items: list[tuple[K, int, T]] = []
        self._worst: K | None = None  # once pruned: the rank an item must beat to be kept

    def offer(self, rank: K, make: Callable[[], T]) -> None:
        self.seen += 1
        if self.k <= 0 or (self._worst is not None and not rank < self._worst):  # type: ignore[operator]
            return
        self._items.append((rank, self.seen, make()))
        if len(self._items) >= 2 * self.k:
            self._prune()

    def _prune(self) -> None:
        self._items.sort(key=lambda entry: (entry[0], entry[1]))
        del self._items[self.k :]
        if self._items and len(self._items) == self.k:
            self._worst = self._items[-1][0]

    def kept(self) -> list[T]:
        """The kept items, best rank first."""
        self._prune()
        return [item for _, _, item in self._items]
