"""The run report's case x provider pass matrix: how often each case passed on each provider over its
repeats, with the Wilson interval of that rate and, for a case with a ``pass_rate``, whether it reached it.
Pure: units in, a frozen context out (``run.html`` formats it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from runner.grading.rates import CaseRate
from runner.store.records import VERDICTS

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from runner.store.records import UnitView, Verdict

# A matrix row per case: beyond this many cases the rows shown are the worst (lowest pass share
# first), and a note says how many more there are; the unit table below still has every unit.
MATRIX_ROWS_MAX: Final = 2000


@dataclass(frozen=True, slots=True, kw_only=True)
class MatrixCell:
    """One case on one provider over its repeats."""

    units: int  # all of the pair's units (repeats)
    passed: int  # verdict passed
    rate: CaseRate  # over the graded units (those with a result), with the case's pass_rate if any
    failed: int  # ended without a result
    not_done: int

    @property
    def css(self) -> str:
        """``passed`` when every repeat passed and the rate (if any) holds, else ``failed``."""
        return "passed" if self.passed == self.units and not self.rate.is_below else "failed"

    @property
    def label(self) -> str:
        """``8/10``: repeats passed of all repeats."""
        return f"{self.passed}/{self.units}"

    @property
    def rate_text(self) -> str:
        """The rate over graded repeats with its 95% Wilson interval, e.g. ``80% [49% to 94%]``."""
        if self.rate.rate is None:
            return "no result to rate"
        low, high = self.rate.interval
        return f"{self.rate.rate:.0%} [{low:.0%} to {high:.0%}]"

    @property
    def bar_text(self) -> str | None:
        """How the case's pass_rate fared (None: the case sets none)."""
        required = self.rate.required
        if required is None:
            return None
        word = "below" if self.rate.is_below else "meets"
        return f"{word} pass_rate {required:.0%}"


@dataclass(frozen=True, slots=True, kw_only=True)
class MatrixRow:
    case_id: str
    cells: tuple[MatrixCell | None, ...]  # one per provider of the matrix; None: the case skips it


@dataclass(frozen=True, slots=True, kw_only=True)
class PassMatrix:
    providers: tuple[str, ...]
    rows: tuple[MatrixRow, ...]
    note: str | None = None  # set when rows were left out
    rated: int = 0  # (case, provider) cells whose case sets a pass_rate
    below: int = 0  # of them, how many did not reach it


def pass_matrix(units: Iterable[UnitView], required: Mapping[str, float]) -> PassMatrix:
    """The matrix of ``units`` (any order); ``required`` maps a case id to its pass_rate."""
    tally = MatrixTally()
    for unit in units:
        tally.add(unit.case_id, unit.provider, unit.verdict)
    return tally.matrix(required)


class MatrixTally:
    """The pass matrix's counts, one unit at a time: memory grows with cases x providers, not units."""

    def __init__(self) -> None:
        self._tallies: dict[tuple[str, str], dict[Verdict, int]] = {}  # units of each verdict

    def __bool__(self) -> bool:
        return bool(self._tallies)

    def add(self, case_id: str, provider: str, verdict: Verdict) -> None:
        # Once per unit of a run: one count, the figures are derived in ``matrix``.
        tally = self._tallies.get((case_id, provider))
        if tally is None:
            tally = self._tallies[case_id, provider] = dict.fromkeys(VERDICTS, 0)
        tally[verdict] += 1

    def matrix(self, required: Mapping[str, float]) -> PassMatrix:
        tallies = self._tallies
        providers = tuple(sorted({provider for _, provider in tallies}))
        cases = sorted({case_id for case_id, _ in tallies})
        cells: dict[tuple[str, str], MatrixCell] = {
            key: MatrixCell(
                units=n,
                passed=passed,
                rate=CaseRate(
                    case_id=key[0],
                    provider=key[1],
                    passed=passed,
                    graded=graded,
                    required=required.get(key[0]),
                ),
                failed=failed,
                not_done=not_done,
            )
            for key, counts in tallies.items()
            for n, passed, graded, failed, not_done in [_figures(counts)]
        }
        rows = [MatrixRow(case_id=c, cells=tuple(cells.get((c, p)) for p in providers)) for c in cases]
        note = None
        if len(rows) > MATRIX_ROWS_MAX:
            rows.sort(key=_share)
            note = (
                f"The {MATRIX_ROWS_MAX} cases with the lowest pass share of {len(rows)}; "
                "runner export has every unit."
            )
            rows = sorted(rows[:MATRIX_ROWS_MAX], key=lambda r: r.case_id)
        rated = [cell for cell in cells.values() if cell.rate.required is not None]
        return PassMatrix(
            providers=providers,
            rows=tuple(rows),
            note=note,
            rated=len(rated),
            below=sum(cell.rate.is_below for cell in rated),
        )


def _figures(counts: Mapping[Verdict, int]) -> tuple[int, int, int, int, int]:
    """(units, passed, graded, failed, not done) of a cell's counts by verdict."""
    passed = counts["passed"]
    return (
        sum(counts.values()),
        passed,
        passed + counts["failed assertions"],
        counts["failed"],
        counts["not done"],
    )


def _share(row: MatrixRow) -> float:
    units = sum(c.units for c in row.cells if c)
    return sum(c.passed for c in row.cells if c) / units if units else 0.0
