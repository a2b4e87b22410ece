"""Aggregate figures of a set of units (a run, or one provider of it); pure.

Shared by the run report, the diff and the trend, so that a number means the same in all three.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from runner.pricing import booked_cost
from runner.report.common import not_evaluated
from runner.report.tally import SAMPLE_CAP, ExactSum, Sample
from runner.store.lean import lean_unit

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from runner.store.lean import LeanUnit
    from runner.store.records import UnitView


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) by linear interpolation between ranks; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def output_rate(output_tokens: int | None, first: float | None, end: float | None) -> float | None:
    """Output tokens per second from the first token (``first`` s) to the end (the decode rate), if
    measured."""
    if output_tokens is None or first is None or end is None:
        return None
    streaming = end - first
    return output_tokens / streaming if streaming > 0 else None


@dataclass(frozen=True, slots=True, kw_only=True)
class Tokens:
    """Token counts summed over attempts (failed ones included: they were billed)."""

    input: int = 0
    output: int = 0
    reasoning: int = 0
    cached: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupStats:
    """Every figure the reports show for a group of units. Times in seconds, money in USD."""

    units: int
    ok: int
    failed: int  # units without a result: verdict "failed"
    unfinished: int  # verdict "not done"
    passed: int  # units with verdict "passed": ok and every assertion held
    failed_assertions: int  # units with verdict "failed assertions": ok, some assertion did not hold
    attempts: int
    retries: int  # attempts beyond each unit's first
    failed_attempts: int
    error_kinds: tuple[tuple[str, int], ...]  # most frequent first
    ttft_p50: float | None
    ttft_p90: float | None
    ttft_p99: float | None
    ttfr_p50: float | None  # time to the first reasoning token, successful attempts that streamed one
    ttfr_p90: float | None
    ttfr_p99: float | None
    duration_p50: float | None
    duration_p90: float | None
    duration_p99: float | None
    gap_p50: float | None  # median of the streams' median inter-chunk gaps
    gap_p90: float | None  # 90th percentile of the streams' 90th-percentile gaps
    tokens_per_s: float | None  # median output rate of successful attempts
    tokens: Tokens
    cost: float | None  # reported-else-computed, all attempts
    cost_reported: float | None
    cost_computed: float | None
    cost_gap: float | None  # reported - computed, over attempts that have both
    cost_wasted: float | None  # on failed attempts
    assertions_passed: int  # checks (one per expect key of a unit), on final results only
    assertions_total: int  # checks evaluated: of ok units, judges still grading left out
    assertions_not_evaluated: int  # checks of units without a final result, and judges still grading
    units_passing: int  # units whose assertions all passed (units without any count too)

    @property
    def success_rate(self) -> float | None:
        return ratio(self.ok, self.units)

    @property
    def error_rate(self) -> float | None:
        return ratio(self.failed_attempts, self.attempts)

    @property
    def retry_rate(self) -> float | None:
        return ratio(self.retries, self.units)

    @property
    def assertion_pass_rate(self) -> float | None:
        return ratio(self.assertions_passed, self.assertions_total)


def group_stats(units: Iterable[UnitView], expected: Mapping[str, Sequence[str]] | None = None) -> GroupStats:
    """Aggregate ``units`` (and all their attempts) into one GroupStats.

    Args:
        expected: each case's expect keys (``common.expected_assertions``), to count the checks of units
            that have no stored outcomes as not evaluated; without it only stored outcomes count.
    """
    tally = GroupTally(expected)
    for unit in units:
        tally.add(lean_unit(unit))
    return tally.stats()


class GroupTally:
    """GroupStats in one pass over units, in bounded memory: counts and sums exact, latency
    percentiles over a ``Sample`` (exact up to its capacity of successful attempts).

    The TTFT and gap samples are public: the run report charts them. ``add`` is the report's hot loop
    (once per unit of a million-unit run, on lean units: ``store.lean``): it appends to plain lists and
    settles only after a unit that may have filled a sample.
    """

    def __init__(
        self, expected: Mapping[str, Sequence[str]] | None = None, *, capacity: int = SAMPLE_CAP
    ) -> None:
        self._expected = expected or {}
        self.counts: Counter[str] = Counter()  # units, statuses, verdicts, attempts and checks
        self.error_kinds: Counter[str] = Counter()
        self.ttft: Sample[float] = Sample(capacity)
        self.ttfr: Sample[float] = Sample(capacity)
        self.duration: Sample[float] = Sample(capacity)
        self.gap_p50: Sample[float] = Sample(capacity)  # each stream's median inter-chunk gap
        self.gap_p90: Sample[float] = Sample(capacity)
        self.rate: Sample[float] = Sample(capacity)
        self.tokens: Counter[str] = Counter()
        self.sums = {name: ExactSum() for name in _SUMS}
        self.models: set[str] = set()
        self._incoming = _Incoming(self)
        self._room = capacity  # attempts that can be added before a sample may be full

    def add(self, unit: LeanUnit) -> None:
        # The report's hot loop: once per unit of a run, with its attempts inlined (a call per attempt
        # and per value cost a third of the scan; benchmarks/bench_report.py).
        counts, attempts, status = self.counts, unit.attempts, unit.status
        counts["units"] += 1
        counts["status " + status] += 1
        counts["verdict " + unit.verdict] += 1
        counts["retries"] += max(0, len(attempts) - 1)
        outcomes = unit.assertions if status == "ok" else ()  # LeanUnit.evaluated, inlined
        if outcomes:
            passed = sum(o.passed for o in outcomes)
            # A judge still grading is neither passed nor failed: not evaluated yet, like the checks
            # of a unit without a result (the unit's verdict is "not done").
            pending = sum(o.pending for o in outcomes)
            counts["assertions passed"] += passed
            counts["assertions"] += len(outcomes) - pending
            counts["not evaluated"] += pending
            counts["passing"] += passed == len(outcomes)
        else:
            counts["passing"] += 1
        if status != "ok":
            counts["not evaluated"] += len(not_evaluated(unit, self._expected))
        if unit.model:
            self.models.add(unit.model)
        counts["attempts"] += len(attempts)
        tokens, sums = self.tokens, self._incoming
        for (
            _,
            _,
            _,
            end,
            ttft,
            ttfr,
            gap_p50,
            gap_p90,
            error_kind,
            input_tokens,
            output_tokens,
            reasoning_tokens,
            cached_tokens,
            reported,
            computed,
            _,
        ) in attempts:  # one unpacking, not fifteen attribute reads
            tokens["input"] += input_tokens or 0
            tokens["output"] += output_tokens or 0
            tokens["reasoning"] += reasoning_tokens or 0
            tokens["cached"] += cached_tokens or 0
            if (cost := booked_cost(reported, computed)) is not None:
                sums.cost.append(cost)
                if error_kind is not None:
                    sums.wasted.append(cost)
            if reported is not None:
                sums.reported.append(reported)
                if computed is not None:
                    sums.gap.append(reported - computed)
            if computed is not None:
                sums.computed.append(computed)
            if error_kind is not None:
                self.error_kinds[error_kind] += 1
                continue
            if ttft is not None:
                sums.ttft.append(ttft)
            if ttfr is not None:
                sums.ttfr.append(ttfr)
            if end is not None:
                sums.duration.append(end)
            if gap_p50 is not None:
                sums.gap_p50.append(gap_p50)
            if gap_p90 is not None:
                sums.gap_p90.append(gap_p90)
            if (rate := output_rate(output_tokens, ttft, end)) is not None:
                sums.rate.append(rate)
        # Samples fold at the end of the first unit that fills one (the same points as a check of each
        # after every unit: the report stays the same), checked only when one may be full.
        self._room -= len(attempts)
        if self._room <= 0:
            self._settle()

    def _settle(self) -> None:
        samples = (self.ttft, self.ttfr, self.duration, self.gap_p50, self.gap_p90, self.rate)
        for sample in samples:
            sample.settle()
        for total in self.sums.values():
            total.settle()
        # Each attempt adds at most one value to each sample: none can fill before this many more.
        self._room = min(s.capacity - len(s.incoming) for s in samples)

    @classmethod
    def merged(cls, tallies: Iterable[GroupTally]) -> GroupTally:
        """One tally of every unit of ``tallies`` (the run's, from its providers'), none of them changed."""
        whole = cls()
        for part in tallies:
            whole.counts.update(part.counts)
            whole.error_kinds.update(part.error_kinds)
            whole.tokens.update(part.tokens)
            whole.models |= part.models
            whole.sums = {name: whole.sums[name].merged(part.sums[name]) for name in _SUMS}
            for name in ("ttft", "ttfr", "duration", "gap_p50", "gap_p90", "rate"):
                setattr(whole, name, getattr(whole, name).merged(getattr(part, name)))
        whole._incoming = _Incoming(whole)  # its samples and sums are new objects
        whole._settle()
        return whole

    def stats(self) -> GroupStats:
        counts, sums = self.counts, self.sums
        ttft, ttfr, durations = self.ttft.items, self.ttfr.items, self.duration.items
        return GroupStats(
            units=counts["units"],
            ok=counts["status ok"],
            failed=counts["status failed"],
            unfinished=counts["units"] - counts["status ok"] - counts["status failed"],
            passed=counts["verdict passed"],
            failed_assertions=counts["verdict failed assertions"],
            attempts=counts["attempts"],
            retries=counts["retries"],
            failed_attempts=sum(self.error_kinds.values()),
            error_kinds=tuple(sorted(self.error_kinds.items(), key=lambda kv: (-kv[1], kv[0]))),
            ttft_p50=percentile(ttft, 50),
            ttft_p90=percentile(ttft, 90),
            ttft_p99=percentile(ttft, 99),
            ttfr_p50=percentile(ttfr, 50),
            ttfr_p90=percentile(ttfr, 90),
            ttfr_p99=percentile(ttfr, 99),
            duration_p50=percentile(durations, 50),
            duration_p90=percentile(durations, 90),
            duration_p99=percentile(durations, 99),
            gap_p50=percentile(self.gap_p50.items, 50),
            gap_p90=percentile(self.gap_p90.items, 90),
            tokens_per_s=percentile(self.rate.items, 50),
            tokens=Tokens(**{name: self.tokens[name] for name in ("input", "output", "reasoning", "cached")}),
            cost=sums["cost"].value,
            cost_reported=sums["reported"].value,
            cost_computed=sums["computed"].value,
            cost_gap=sums["gap"].value,
            cost_wasted=sums["wasted"].value,
            assertions_passed=counts["assertions passed"],
            assertions_total=counts["assertions"],
            assertions_not_evaluated=counts["not evaluated"],
            units_passing=counts["passing"],
        )


_SUMS: Final = ("cost", "reported", "computed", "gap", "wasted")


class _Incoming:
    """The lists a GroupTally's hot loop appends to: its samples' and sums' ``incoming``, by name (a
    fold empties them in place)."""

    __slots__ = (
        "computed",
        "cost",
        "duration",
        "gap",
        "gap_p50",
        "gap_p90",
        "rate",
        "reported",
        "ttfr",
        "ttft",
        "wasted",
    )

    def __init__(self, tally: GroupTally) -> None:
        self.ttft, self.ttfr, self.duration = (
            tally.ttft.incoming,
            tally.ttfr.incoming,
            tally.duration.incoming,
        )
        self.gap_p50, self.gap_p90, self.rate = (
            tally.gap_p50.incoming,
            tally.gap_p90.incoming,
            tally.rate.incoming,
        )
        sums = tally.sums
        self.cost, self.wasted, self.reported = (
            sums["cost"].incoming,
            sums["wasted"].incoming,
            sums["reported"].incoming,
        )
        self.computed, self.gap = sums["computed"].incoming, sums["gap"].incoming


# --- significance tests -------------------------------------------------------------------------------
# The diff asks "is run B's figure worse than run A's beyond chance?" on a handful of samples per
# provider, so the tests are rank and count tests that assume no distribution: Mann-Whitney U for
# latencies and costs, Fisher's exact test for pass and error rates, Holm's step-down correction
# over all the tests of one diff. Pure Python (no scipy): a few hundred samples at most.

EXACT_MAX_PAIRS = 400  # exact U distribution when n_a * n_b is at most this and nothing ties


@dataclass(frozen=True, slots=True, kw_only=True)
class Significance:
    """A two-sided test's outcome: the statistic, its p-value and how the p-value was found."""

    statistic: float
    p_value: float
    method: str  # "exact" or "normal" (Mann-Whitney), "exact" (Fisher)


def _ranks(values: Sequence[float]) -> tuple[list[float], list[int]]:
    """Mid-ranks (1-based; ties share their average rank) and the sizes of the tied groups."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    ties: list[int] = []
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for i in order[start : end + 1]:
            ranks[i] = (start + end) / 2 + 1
        ties.append(end - start + 1)
        start = end + 1
    return ranks, ties


def _u_counts(n_a: int, n_b: int) -> list[int]:
    """How many of the C(n_a + n_b, n_a) orderings give each U from 0 to n_a * n_b (no ties).

    f(m, n)[u] = f(m - 1, n)[u - n] + f(m, n - 1)[u]: the largest value is from A (beating all n
    of B) or from B.
    """
    row = [[1] for _ in range(n_b + 1)]  # m = 0: U is 0 whatever n
    for m in range(1, n_a + 1):
        new = [[1]]  # n = 0: U is 0
        for n in range(1, n_b + 1):
            counts = [0] * (m * n + 1)
            for u, c in enumerate(row[n]):  # the largest is from A: adds n
                counts[u + n] += c
            for u, c in enumerate(new[n - 1]):
                counts[u] += c
            new.append(counts)
        row = new
    return row[n_b]


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2))


def mann_whitney_u(a: Sequence[float], b: Sequence[float]) -> Significance:
    """Two-sided Mann-Whitney U test of samples ``a`` and ``b``; the statistic is U of ``a``.

    Exact when nothing ties and the samples are small (n_a * n_b <= EXACT_MAX_PAIRS), else the
    normal approximation with the tie-corrected variance and a continuity correction.

    Raises:
        ValueError: an empty sample.
    """
    n_a, n_b = len(a), len(b)
    if not n_a or not n_b:
        raise ValueError("Mann-Whitney U needs at least one value in each sample")
    ranks, ties = _ranks([*a, *b])
    u = math.fsum(ranks[:n_a]) - n_a * (n_a + 1) / 2
    if max(ties) == 1 and n_a * n_b <= EXACT_MAX_PAIRS:
        counts = _u_counts(n_a, n_b)
        low = sum(counts[: int(u) + 1])
        high = sum(counts[int(u) :])
        p = 2 * min(low, high) / math.comb(n_a + n_b, n_a)
        return Significance(statistic=u, p_value=min(1.0, p), method="exact")
    n = n_a + n_b
    tie_term = sum(t**3 - t for t in ties) / (n * (n - 1)) if n > 1 else 0.0
    variance = n_a * n_b / 12 * ((n + 1) - tie_term)
    if variance <= 0:  # every value the same: no evidence either way
        return Significance(statistic=u, p_value=1.0, method="normal")
    z = max(0.0, abs(u - n_a * n_b / 2) - 0.5) / math.sqrt(variance)
    return Significance(statistic=u, p_value=min(1.0, 2 * normal_sf(z)), method="normal")


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def fisher_exact(hits_a: int, total_a: int, hits_b: int, total_b: int) -> Significance:
    """Two-sided Fisher's exact test of the proportions ``hits_a / total_a`` and ``hits_b / total_b``.

    The p-value sums the hypergeometric probabilities of every table with the same margins that is
    at most as likely as the observed one; the statistic is the observed table's probability.
    """
    hits, n = hits_a + hits_b, total_a + total_b
    low, high = max(0, hits - total_b), min(hits, total_a)
    whole = _log_comb(n, hits)

    def prob(k: int) -> float:
        return math.exp(_log_comb(total_a, k) + _log_comb(total_b, hits - k) - whole)

    observed = prob(hits_a)
    # A relative tolerance keeps tables exactly as likely as the observed one (symmetric margins) in.
    p = math.fsum(q for k in range(low, high + 1) if (q := prob(k)) <= observed * (1 + 1e-7))
    return Significance(statistic=observed, p_value=min(1.0, p), method="exact")


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the given order: reject where adjusted < alpha.

    Holding each adjusted value to alpha keeps the chance of any false alarm among all the tests
    (the family-wise error rate) at most alpha, whatever their dependence.
    """
    m = len(p_values)
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(sorted(range(m), key=p_values.__getitem__)):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted
