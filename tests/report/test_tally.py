"""The streaming tallies: exact sums, bounded samples and best-k picks, against their whole-list twins."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from runner.report.stats import group_stats
from runner.report.tally import BestK, ExactSum, Sample
from tests.report.factories import make_run

FLOATS = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_infinity=False)


@given(st.lists(FLOATS, max_size=300), st.integers(min_value=1, max_value=40))
def test_exact_sum_is_fsum_whatever_the_folding(values: list[float], fold_every: int) -> None:
    """Folding the buffer into partials at any point keeps the sum equal to math.fsum of all values."""
    total = ExactSum()
    for index, value in enumerate(values):
        total.add(value)
        if index % fold_every == 0:
            total._fold()
    assert total.value == (math.fsum(values) if values else None)


@given(st.lists(FLOATS, max_size=200), st.lists(FLOATS, max_size=200))
def test_merged_sums_add_exactly(a: list[float], b: list[float]) -> None:
    """Two sums merged are the fsum of both streams."""
    left, right = ExactSum(), ExactSum()
    for value in a:
        left.add(value)
    for value in b:
        right.add(value)
    assert left.merged(right).value == (math.fsum(a + b) if a or b else None)


def test_sample_keeps_everything_up_to_capacity_then_stays_bounded() -> None:
    """At most ``capacity`` items a sample is the stream itself; past it, between half and all of the
    capacity, each item kept at the same rate, and the same items for the same stream."""
    small: Sample[int] = Sample(100)
    for i in range(100):
        small.add(i)
    assert small.items == list(range(100))
    assert not small.is_sample
    big: Sample[int] = Sample(100)
    again: Sample[int] = Sample(100)
    for i in range(10_000):
        big.add(i)
        again.add(i)
    assert 50 <= len(big.items) <= 100
    assert big.is_sample
    assert big.seen == 10_000
    assert big.items == again.items
    assert max(big.items) > 5_000  # the later part of the stream is in it, not only the start


def test_merged_samples_of_small_streams_are_exact() -> None:
    """Merging samples that left nothing out keeps every item of both."""
    a: Sample[int] = Sample(100)
    b: Sample[int] = Sample(100)
    for i in range(30):
        a.add(i)
        b.add(100 + i)
    both = a.merged(b)
    assert sorted(both.items) == [*range(30), *range(100, 130)]
    assert not both.is_sample


@given(st.lists(st.integers(min_value=0, max_value=50), max_size=200), st.integers(min_value=0, max_value=30))
def test_best_k_is_the_first_k_of_the_sorted_stream(ranks: list[int], k: int) -> None:
    """BestK keeps what a stable sort then a cut would, building only items it may keep."""
    best: BestK[int, tuple[int, int]] = BestK(k)
    for index, rank in enumerate(ranks):
        best.offer(rank, lambda index=index, rank=rank: (rank, index))  # type: ignore[misc]
    assert best.kept() == sorted((rank, index) for index, rank in enumerate(ranks))[:k]
    assert best.seen == len(ranks)


def test_group_stats_unchanged_by_order() -> None:
    """A group's figures are the same whatever order its units are tallied in."""
    units = make_run(300).units
    assert group_stats(units) == group_stats(reversed(units))
