"""Pass rates over a case's repeats (``[cases.expect] pass_rate``) with Wilson score intervals. Pure.

A case's units keep their own verdicts; the rate judges the case on one provider: of its repeats that
were graded (ended with a result; a unit without one is counted apart, as ``failed``), the share that
passed every assertion. A rated case passes when that share reaches its ``pass_rate``; a rated case with
no graded repeat does not pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any

# z of a two-sided 95% interval: the interval reports show beside a rate.
Z_95: Final = 1.959963984540054
# A rate compared with its bar: 7 of 10 must meet 0.7, whatever 0.7 * 10 rounds to in binary.
_EPSILON: Final = 1e-9


def wilson_interval(passed: int, total: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of ``passed`` successes in ``total`` trials (``(0, 1)`` for none).

    Unlike the normal approximation it stays inside [0, 1] and is not zero-width at 0 or n of n,
    which is what a handful of repeats needs (Wilson 1927; Brown, Cai & DasGupta 2001).
    """
    if total <= 0:
        return 0.0, 1.0
    if not 0 <= passed <= total:
        raise ValueError(f"passed must be in [0, {total}], got {passed}")
    p = passed / total
    z2 = z * z
    denominator = 1 + z2 / total
    center = (p + z2 / (2 * total)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / total + z2 / (4 * total * total))
    # Clamped: at p = 0 or 1 the bound is exact in theory but may land a rounding error outside.
    return max(0.0, center - half), min(1.0, center + half)


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseRate:
    """How one case fared over its repeats on one provider."""

    case_id: str
    provider: str
    passed: int  # graded repeats that passed every assertion
    graded: int  # repeats that ended with a result (and so were graded)
    required: float | None = None  # the case's pass_rate; None: the case sets none (shown, not judged)

    @property
    def rate(self) -> float | None:
        """The share of graded repeats that passed (None: none was graded)."""
        return self.passed / self.graded if self.graded else None

    @property
    def interval(self) -> tuple[float, float]:
        """The 95% Wilson interval of ``rate``."""
        return wilson_interval(self.passed, self.graded)

    @property
    def is_below(self) -> bool:
        """True when the case sets a pass_rate and did not reach it (no graded repeat: not reached)."""
        if self.required is None:
            return False
        return self.graded == 0 or self.passed < self.required * self.graded - _EPSILON


def case_rates(
    verdicts: Iterable[tuple[str, str, bool]], required: Mapping[str, float | None]
) -> tuple[CaseRate, ...]:
    """One ``CaseRate`` per (case, provider), in first-seen order, from each graded unit's
    ``(case_id, provider, passed)``; ``required`` maps a case id to its pass_rate."""
    counts: dict[tuple[str, str], list[int]] = {}
    for case_id, provider, passed in verdicts:
        tally = counts.setdefault((case_id, provider), [0, 0])
        tally[0] += int(passed)
        tally[1] += 1
    return tuple(
        CaseRate(case_id=case_id, provider=provider, passed=p, graded=n, required=required.get(case_id))
        for (case_id, provider), (p, n) in counts.items()
    )


def required_rates(job_spec: Mapping[str, Any]) -> dict[str, float]:
    """Case id -> its pass_rate, from the job a run stored (``spec.job_to_json``: expect tables as written).

    Read leniently (a spec of another runner version still reads): a value that is no number is skipped.
    """
    found: dict[str, float] = {}
    cases = job_spec.get("cases")
    for case in cases if isinstance(cases, list) else ():
        expect = case.get("expect") if isinstance(case, dict) else None
        rate = expect.get("pass_rate") if isinstance(expect, dict) else None
        if isinstance(rate, int | float) and not isinstance(rate, bool) and isinstance(case.get("id"), str):
            found[case["id"]] = float(rate)
    return found
