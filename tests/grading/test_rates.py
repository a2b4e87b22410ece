"""Pass rates over repeats: Wilson intervals against published values, and the pass_rate bar."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner.grading.rates import Z_95, CaseRate, case_rates, wilson_interval


@pytest.mark.parametrize(
    ("passed", "total", "low", "high"),
    [
        # statsmodels.stats.proportion.proportion_confint(k, n, method="wilson"), alpha 0.05.
        pytest.param(8, 10, 0.4901625, 0.9433178, id="8-of-10"),
        pytest.param(0, 10, 0.0, 0.2775328, id="0-of-10"),
        pytest.param(10, 10, 0.7224672, 1.0, id="10-of-10"),
        pytest.param(1, 2, 0.0945312, 0.9054688, id="1-of-2"),
    ],
)
def test_wilson_interval_matches_known_values(passed: int, total: int, low: float, high: float) -> None:
    """The 95% Wilson interval equals the reference values to 6 places."""
    got = wilson_interval(passed, total)
    assert got == pytest.approx((low, high), abs=1e-6)


def test_no_trials_is_the_whole_interval_and_bad_counts_raise() -> None:
    """Nothing graded says nothing: (0, 1); more passes than trials is a bug, not a rate."""
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="passed must be in"):
        wilson_interval(3, 2)


@given(st.integers(min_value=1, max_value=500).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_the_interval_holds_the_rate_inside_0_1(counts: tuple[int, int]) -> None:
    """For any k of n, 0 <= low <= k/n <= high <= 1."""
    passed, total = counts
    low, high = wilson_interval(passed, total)
    assert 0.0 <= low <= passed / total + 1e-12
    assert passed / total - 1e-12 <= high <= 1.0


@given(
    st.integers(min_value=2, max_value=500).flatmap(lambda n: st.tuples(st.integers(1, n - 1), st.just(n)))
)
def test_the_bounds_solve_the_score_equation(counts: tuple[int, int]) -> None:
    """Each bound p is where the score test is at z: (k/n - p)^2 = z^2 p (1 - p) / n (Wilson's definition)."""
    passed, total = counts
    share = passed / total
    for bound in wilson_interval(passed, total):
        assert (share - bound) ** 2 == pytest.approx(Z_95**2 * bound * (1 - bound) / total, rel=1e-9)


@pytest.mark.parametrize(
    ("passed", "graded", "required", "below"),
    [
        pytest.param(8, 10, 0.8, False, id="at-the-bar"),
        pytest.param(7, 10, 0.7, False, id="float-bar"),
        pytest.param(7, 10, 0.8, True, id="under"),
        pytest.param(0, 0, 0.5, True, id="nothing-graded"),
        pytest.param(0, 10, None, False, id="unrated"),
        pytest.param(1, 1, 1.0, False, id="one-of-one"),
    ],
)
def test_below_the_bar(passed: int, graded: int, required: float | None, below: bool) -> None:
    """A case is below its pass_rate when the share of graded repeats that passed is less."""
    rate = CaseRate(case_id="c", provider="p", passed=passed, graded=graded, required=required)
    assert rate.is_below is below


def test_case_rates_count_per_case_and_provider() -> None:
    """Units are tallied per (case, provider), in first-seen order, with the case's bar."""
    verdicts = [("a", "x", True), ("a", "y", False), ("a", "x", False), ("b", "x", True), ("a", "x", True)]
    rates = case_rates(verdicts, {"a": 0.6})
    assert [(r.case_id, r.provider, r.passed, r.graded, r.required) for r in rates] == [
        ("a", "x", 2, 3, 0.6),
        ("a", "y", 0, 1, 0.6),
        ("b", "x", 1, 1, None),
    ]
    assert [r.is_below for r in rates] == [False, True, False]
