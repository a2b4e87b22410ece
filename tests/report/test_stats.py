"""The diff's significance tests against textbook values: Mann-Whitney U, Fisher's exact test, Holm."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from runner.report.stats import fisher_exact, holm, mann_whitney_u, normal_sf


def test_mann_whitney_exact_matches_the_textbook() -> None:
    """Hollander & Wolfe's example (R's ?wilcox.test): W = 35, one-sided p 0.1272, so two-sided 0.2544."""
    x = [0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46]
    y = [1.15, 0.88, 0.90, 0.74, 1.21]
    result = mann_whitney_u(x, y)
    assert result.method == "exact"
    assert result.statistic == 35
    assert result.p_value == pytest.approx(2 * 0.1272, abs=2e-4)


def test_mann_whitney_small_exact_and_normal() -> None:
    """SciPy's example (males vs females): U = 17, exact p = 14/126; normal approximation p = 0.1113."""
    males, females = [19.0, 22, 16, 29, 24], [20.0, 11, 17, 12]
    exact = mann_whitney_u(males, females)
    assert (exact.statistic, exact.method) == (17, "exact")
    assert exact.p_value == pytest.approx(14 / 126)
    # The same data with a tie forces the normal approximation; the tie barely moves the variance.
    tied = mann_whitney_u([19.0, 22, 16, 29, 24], [20.0, 11, 17, 12, 12])
    assert tied.method == "normal"


def test_mann_whitney_normal_uses_the_tie_corrected_variance() -> None:
    """With ties, the normal variance equals the variance of U over every split of the pooled values."""
    a, b = [1.0, 2, 2, 3, 3, 3, 5], [2.0, 3, 4, 4, 6, 6]
    pooled = a + b
    us = []
    for chosen in itertools.combinations(range(len(pooled)), len(a)):
        left = [pooled[i] for i in chosen]
        right = [pooled[i] for i in range(len(pooled)) if i not in chosen]
        us.append(sum((x > y) + 0.5 * (x == y) for x in left for y in right))
    mean = sum(us) / len(us)
    variance = sum((u - mean) ** 2 for u in us) / len(us)
    result = mann_whitney_u(a, b)
    u = sum((x > y) + 0.5 * (x == y) for x in a for y in b)
    assert result.statistic == u
    z = (abs(u - mean) - 0.5) / math.sqrt(variance)
    assert result.method == "normal"
    assert result.p_value == pytest.approx(2 * normal_sf(z))


def test_mann_whitney_identical_and_separated_samples() -> None:
    """All values equal gives p = 1; two fully separated samples of 9 give the exact minimum 2 / C(18, 9)."""
    assert mann_whitney_u([1.0] * 5, [1.0] * 6).p_value == 1.0
    low, high = [float(i) for i in range(9)], [float(i) for i in range(100, 109)]
    assert mann_whitney_u(low, high).p_value == pytest.approx(2 / math.comb(18, 9))
    with pytest.raises(ValueError, match="at least one value"):
        mann_whitney_u([], [1.0])


def test_mann_whitney_false_alarm_rate_is_alpha() -> None:
    """Over many pairs of samples from one distribution, p < 0.05 happens about 5% of the time."""
    rng = random.Random(3)
    trials = 2000
    alarms = sum(
        mann_whitney_u(
            [rng.lognormvariate(0, 1) for _ in range(9)], [rng.lognormvariate(0, 1) for _ in range(8)]
        ).p_value
        < 0.05
        for _ in range(trials)
    )
    assert 0.03 < alarms / trials < 0.07


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        pytest.param((3, 4, 1, 4), 0.4857, id="lady-tasting-tea"),
        pytest.param((1, 12, 9, 12), 0.002759, id="wikipedia-dieting"),
        pytest.param((5, 5, 5, 5), 1.0, id="equal"),
        pytest.param((0, 9, 9, 9), 4.11e-5, id="separated"),
    ],
)
def test_fisher_exact_matches_the_textbook(table: tuple[int, int, int, int], expected: float) -> None:
    """Two-sided Fisher's exact p-values of known 2x2 tables (hits A, total A, hits B, total B)."""
    assert fisher_exact(*table).p_value == pytest.approx(expected, rel=2e-3)


def test_holm_adjusts_step_down() -> None:
    """Holm: sorted p times (m - rank), made monotone; reported in the input order."""
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []
