"""The per-provider figures ``runner diff`` compares, each with a significance test and a verdict; pure.

A figure regresses only when both hold: it got worse by more than its threshold (the size that
matters), and a test says the change is beyond chance (Holm-adjusted p-value under alpha). Latency
and cost use Mann-Whitney U on the per-attempt (per-unit for cost) samples; the error rate and the
pass rate use Fisher's exact test. Holm's correction runs over every test of one diff, so alpha is
the chance that two runs of an unchanged job show any figure regression at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

from runner.report.stats import GroupTally, Significance, fisher_exact, holm, mann_whitney_u, ratio

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from runner.report.stats import GroupStats
    from runner.store.lean import LeanUnit

Verdict = Literal["regressed", "improved", "same", "untested"]
Kind = Literal["seconds", "rate", "usd"]
MANN_WHITNEY: Final = "Mann-Whitney U"
FISHER: Final = "Fisher's exact"


@dataclass(frozen=True, slots=True, kw_only=True)
class Thresholds:
    """When a figure of run B counts as a regression against run A, and when a diff is a gate at all."""

    ttft: float = 0.20  # relative increase of TTFT p50 and p90
    duration: float = 0.20  # relative increase of duration p50 and p90
    error_rate: float = 0.05  # absolute increase of the failed-attempt share (0.05: 5 points)
    cost: float = 0.10  # relative increase of cost per unit
    pass_rate: float = 0.0  # absolute drop of the passed-unit share; any significant drop counts
    min_seconds: float = 0.05  # a latency change smaller than this is noise, whatever its ratio
    alpha: float = 0.01  # family-wise significance level over all the figures' tests (Holm)
    min_samples: int = 5  # fewer samples a side: the figure is shown, not tested
    min_matched: int = 10  # fewer matched units: the diff is no pass (exit 2)


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricChange:
    provider: str
    metric: str
    tooltip: str
    kind: Kind
    before: float | None
    after: float | None
    change: float | None  # relative for seconds and usd, absolute for rates
    threshold: float
    test: str  # MANN_WHITNEY or FISHER
    samples: tuple[int, int]  # what the test compared: attempts, units (A, B)
    p_value: float | None  # two-sided; None when not tested (too few samples)
    p_adjusted: float | None  # Holm-adjusted over all the tests of the diff
    verdict: Verdict

    @property
    def p_text(self) -> str:
        return format_p(self.p_value)

    @property
    def p_adjusted_text(self) -> str:
        return format_p(self.p_adjusted)


def format_p(p: float | None) -> str:
    """A p-value short enough for a table, precise enough near the significance levels people use."""
    if p is None:
        return "-"
    return f"{p:.1e}" if p < 0.001 else f"{p:.3f}"


@dataclass(frozen=True, slots=True, kw_only=True)
class _Side:
    """One provider's matched units in one run (lean: figures, no texts), aggregated once."""

    units: Sequence[LeanUnit]
    stats: GroupStats
    passed: int

    @classmethod
    def of(cls, units: Sequence[LeanUnit]) -> _Side:
        tally = GroupTally(None)
        for unit in units:
            tally.add(unit)
        return cls(units=units, stats=tally.stats(), passed=sum(map(passed, units)))

    def samples(self, get: Callable[[LeanUnit], list[float]]) -> list[float]:
        return [v for u in self.units for v in get(u)]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Test:
    """One test of a provider's figure family (TTFT p50 and p90 share theirs: one sample, one question)."""

    method: str
    samples: tuple[int, int]
    result: Significance | None  # None: too few samples to test
    direction: int  # +1: B's values tend higher, -1: lower, 0: neither


@dataclass(frozen=True, slots=True, kw_only=True)
class _Row:
    """How one figure is read, compared and judged."""

    metric: str
    tooltip: str
    kind: Kind
    family: str
    value: Callable[[_Side], float | None]
    threshold: Callable[[Thresholds], float]
    higher_is_better: bool = False


ROWS: Final = (
    _Row(metric="TTFT p50", tooltip="median time to first token", kind="seconds", family="ttft",
         value=lambda s: s.stats.ttft_p50, threshold=lambda t: t.ttft),
    _Row(metric="TTFT p90", tooltip="90th-percentile time to first token", kind="seconds", family="ttft",
         value=lambda s: s.stats.ttft_p90, threshold=lambda t: t.ttft),
    _Row(metric="duration p50", tooltip="median attempt duration", kind="seconds", family="duration",
         value=lambda s: s.stats.duration_p50, threshold=lambda t: t.duration),
    _Row(metric="duration p90", tooltip="90th-percentile attempt duration", kind="seconds", family="duration",
         value=lambda s: s.stats.duration_p90, threshold=lambda t: t.duration),
    _Row(metric="error rate", tooltip="failed attempts / attempts", kind="rate", family="errors",
         value=lambda s: s.stats.error_rate, threshold=lambda t: t.error_rate),
    _Row(metric="pass rate", tooltip="units ok with every assertion held / units", kind="rate",
         family="passes", value=lambda s: ratio(s.passed, len(s.units)), threshold=lambda t: t.pass_rate,
         higher_is_better=True),
    _Row(metric="cost per unit", tooltip="USD over all attempts / units", kind="usd", family="cost",
         value=lambda s: s.stats.cost / s.stats.units if s.stats.cost is not None and s.stats.units else None,
         threshold=lambda t: t.cost),
)  # fmt: skip


def passed(unit: LeanUnit) -> bool:
    """The unit has a result and every assertion held (its verdict is ``passed``)."""
    return unit.verdict == "passed"


def _ttfts(unit: LeanUnit) -> list[float]:
    return [t for a in unit.attempts if a.error_kind is None and (t := a.ttft_s) is not None]


def _durations(unit: LeanUnit) -> list[float]:
    return [d for a in unit.attempts if a.error_kind is None and (d := a.end_s) is not None]


def _unit_cost(unit: LeanUnit) -> list[float]:
    costs = [c for a in unit.attempts if (c := a.cost_usd) is not None]
    return [math.fsum(costs)] if costs else []


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def _rank_test(a: list[float], b: list[float], min_samples: int) -> _Test:
    """Mann-Whitney U on two samples; U of A below its mean means B's values tend higher."""
    if min(len(a), len(b)) < max(1, min_samples):
        return _Test(method=MANN_WHITNEY, samples=(len(a), len(b)), result=None, direction=0)
    result = mann_whitney_u(a, b)
    direction = _sign(len(a) * len(b) / 2 - result.statistic)
    return _Test(method=MANN_WHITNEY, samples=(len(a), len(b)), result=result, direction=direction)


def _count_test(hits_a: int, total_a: int, hits_b: int, total_b: int, min_samples: int) -> _Test:
    """Fisher's exact test of two proportions."""
    if min(total_a, total_b) < max(1, min_samples):
        return _Test(method=FISHER, samples=(total_a, total_b), result=None, direction=0)
    result = fisher_exact(hits_a, total_a, hits_b, total_b)
    direction = _sign(hits_b * total_a - hits_a * total_b)
    return _Test(method=FISHER, samples=(total_a, total_b), result=result, direction=direction)


def _tests(a: _Side, b: _Side, min_samples: int) -> dict[str, _Test]:
    """The one test of each figure family of one provider."""
    return {
        "ttft": _rank_test(a.samples(_ttfts), b.samples(_ttfts), min_samples),
        "duration": _rank_test(a.samples(_durations), b.samples(_durations), min_samples),
        "cost": _rank_test(a.samples(_unit_cost), b.samples(_unit_cost), min_samples),
        "errors": _count_test(
            a.stats.failed_attempts, a.stats.attempts, b.stats.failed_attempts, b.stats.attempts, min_samples
        ),
        "passes": _count_test(a.passed, len(a.units), b.passed, len(b.units), min_samples),
    }


def _change(row: _Row, before: float | None, after: float | None) -> float | None:
    """Relative change for times and money, absolute (in points) for rates."""
    if before is None or after is None:
        return None
    if row.kind == "rate":
        return after - before
    return (after - before) / before if before > 0 else None


def _verdict(
    row: _Row, change: float | None, test: _Test, p_adjusted: float | None, limits: Thresholds
) -> Verdict:
    """Regressed / improved: worse / better beyond the threshold, beyond chance, in the test's direction."""
    if change is None:
        return "same"
    if p_adjusted is None:
        return "untested"
    worse = -change if row.higher_is_better else change
    threshold = row.threshold(limits)
    if p_adjusted >= limits.alpha or abs(worse) <= threshold:
        return "same"
    # A p90 can move against the bulk of the sample; only a move the test agrees with counts.
    agrees = _sign(change) == test.direction
    if not agrees:
        return "same"
    return "regressed" if worse > 0 else "improved"


def compare_providers(
    pairs: Sequence[tuple[str, Sequence[LeanUnit], Sequence[LeanUnit]]], limits: Thresholds
) -> tuple[tuple[MetricChange, ...], int]:
    """Each figure of each provider (name, its matched units in A, in B), and how many tests ran.

    Holm's correction runs over all the tests, so ``limits.alpha`` bounds the chance of any false alarm.
    """
    sides = [(name, _Side.of(ua), _Side.of(ub)) for name, ua, ub in pairs]
    tests = {
        (name, family): test
        for name, a, b in sides
        for family, test in _tests(a, b, limits.min_samples).items()
    }
    tested = {key: test.result.p_value for key, test in tests.items() if test.result is not None}
    adjusted = dict(zip(tested, holm(list(tested.values())), strict=True))
    changes: list[MetricChange] = []
    for name, a, b in sides:
        for row in ROWS:
            before, after = row.value(a), row.value(b)
            test, p_adj = tests[(name, row.family)], adjusted.get((name, row.family))
            change = _change(row, before, after)
            if row.kind == "seconds" and before is not None and after is not None:
                # Sub-floor latency moves are noise whatever their ratio or p-value.
                change_ok = abs(after - before) >= limits.min_seconds
            else:
                change_ok = True
            changes.append(
                MetricChange(
                    provider=name,
                    metric=row.metric,
                    tooltip=row.tooltip,
                    kind=row.kind,
                    before=before,
                    after=after,
                    change=change,
                    threshold=row.threshold(limits),
                    test=test.method,
                    samples=test.samples,
                    p_value=test.result.p_value if test.result else None,
                    p_adjusted=p_adj,
                    verdict=_verdict(row, change if change_ok else 0.0, test, p_adj, limits),
                )
            )
    return tuple(changes), len(tested)
