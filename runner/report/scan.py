"""One pass over a run's units, in any order, keeping what the run report shows in bounded memory.

Figures are tallied (``stats.GroupTally``, ``matrix.MatrixTally``), the units shown in full and the
table's rows are the best few by rank (``tally.BestK``), and the charts' points are samples
(``tally.Reservoir``). A million-unit run is read in batches from the store and never held whole.
"""

from __future__ import annotations

import math
import zlib
from array import array
from collections import Counter
from datetime import timedelta
from typing import TYPE_CHECKING, Final

from runner.report.matrix import MatrixTally
from runner.report.stats import GroupTally
from runner.report.tally import BestK, Sample
from runner.store.records import VERDICTS

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from datetime import datetime

    from runner.store.lean import LeanAttempt, LeanUnit
    from runner.store.records import RunInfo, UnitView, Verdict

FAILED_CARDS_MAX: Final = 300  # units not passed shown expanded, worst first; the rest stay in the rows
OK_SAMPLE_PER_PROVIDER: Final = 10  # successful units shown expanded, per provider
# Rows of the unit table. Beyond it the table holds every unit not passed (up to the cap, in unit order)
# and a fixed pseudo-random sample of the passed ones; `runner export` has every unit.
ROWS_MAX: Final = 5_000
POINTS_PER_PROVIDER: Final = 2_500  # successful attempts kept for the latency scatter (it thins further)

UnitOrder = tuple[str, str, int]  # (provider, case, repeat): the order the report lists units in
# A table row's rank: units not passed first (in unit order), then passed units by a hash of their key:
# an even sample across providers and cases, the same one every time the report is made.
RowRank = tuple[int, int, str, str, int]


def unit_order(unit: UnitView | LeanUnit) -> UnitOrder:
    return (unit.provider, unit.case_id, unit.repeat)


def _row_rank(unit: LeanUnit) -> RowRank:
    if unit.verdict != "passed":
        return (0, 0, unit.provider, unit.case_id, unit.repeat)
    return (1, zlib.crc32(unit.key.encode()), unit.provider, unit.case_id, unit.repeat)


class Trouble:
    """Failed and retried attempts over the run's time: compact columns (9 bytes an attempt in trouble),
    binned at the end, when the run's span is known."""

    def __init__(self) -> None:
        self.offsets = array("d")  # seconds after the run's start
        self.kinds = array("h")  # index into ``names``, -1 for a retry that succeeded
        self.retries = array("b")  # 1: an attempt after the unit's first
        self.names: list[str] = []
        self.span_s = 0.0  # the latest attempt start seen, after the run's start

    def add(self, offset: float, attempt: LeanAttempt) -> None:
        self.span_s = max(self.span_s, offset)
        error_kind = attempt.error_kind
        if error_kind is None and attempt.number <= 1:
            return
        kind = -1
        if error_kind is not None:
            if error_kind not in self.names:
                self.names.append(error_kind)
            kind = self.names.index(error_kind)
        self.offsets.append(offset)
        self.kinds.append(kind)
        self.retries.append(attempt.number > 1)


class RunScan:
    """Everything the run report needs from a run's units, fed one unit at a time (``add``).

    The units are lean (``store.lean``): the few kept for the cards and the table are read again in
    full by id when the report is made (``run.run_context``), unless they came with their whole view.
    """

    def __init__(
        self, run: RunInfo, expected: Mapping[str, Sequence[str]], *, rows_max: int = ROWS_MAX
    ) -> None:
        self.run = run
        self.expected = expected
        self.providers: dict[str, GroupTally] = {}
        self.matrix = MatrixTally()
        self.verdicts: Counter[Verdict] = Counter()
        self.failing: dict[Verdict, BestK[UnitOrder, LeanUnit]] = {
            verdict: BestK(FAILED_CARDS_MAX) for verdict in VERDICTS[:-1]
        }
        self.passing: dict[str, BestK[UnitOrder, LeanUnit]] = {}
        self.rows: BestK[RowRank, LeanUnit] = BestK(rows_max)
        self.points: dict[str, Sample[tuple[float, float]]] = {}
        self.trouble = Trouble()
        self.last_end: datetime | None = None
        self._last_end_s = -math.inf  # last_end in seconds after the run's start (a float: a quick check)
        self.reused = 0
        self.sent = 0

    @property
    def units(self) -> int:
        return self.rows.seen

    @property
    def rows_complete(self) -> bool:
        """True when the table has a row for every unit."""
        return self.rows.seen <= self.rows.k

    def add(self, unit: LeanUnit) -> None:
        provider = unit.provider
        if provider not in self.providers:
            self.providers[provider] = GroupTally(self.expected)
            self.passing[provider] = BestK(OK_SAMPLE_PER_PROVIDER)
            self.points[provider] = Sample(POINTS_PER_PROVIDER)
        self.providers[provider].add(unit)
        self.matrix.add(unit.case_id, provider, unit.verdict)
        verdict = unit.verdict
        self.verdicts[verdict] += 1
        order = unit_order(unit)
        if verdict == "passed":
            self.passing[provider].offer(order, lambda: unit)
        else:
            self.failing[verdict].offer(order, lambda: unit)
        self.rows.offer(_row_rank(unit), lambda: unit)
        self.reused += unit.reused_from is not None
        self.sent += unit.attempt_count > 0
        start, points, trouble = self.run.started_at, self.points[provider], self.trouble
        for attempt in unit.attempts:
            started_at, end_s = attempt.started_at, attempt.end_s
            offset = (started_at - start).total_seconds()
            if attempt.error_kind is not None or attempt.number > 1:
                trouble.add(offset, attempt)
            elif offset > trouble.span_s:
                trouble.span_s = offset
            # The latest end as a datetime, made only for an attempt that may end last: the float
            # offsets agree with the datetimes to well within the millisecond of slack.
            if (end := offset + (end_s or 0.0)) > self._last_end_s - 1e-3:
                self._last_end_s = max(self._last_end_s, end)
                ended = started_at + timedelta(seconds=end_s or 0.0)
                if self.last_end is None or ended > self.last_end:
                    self.last_end = ended
            if end_s is not None and attempt.error_kind is None:
                points.incoming.append((offset, end_s))
        points.settle()

    @property
    def summary(self) -> GroupTally:
        """The whole run's tally: its providers' merged."""
        return GroupTally.merged(self.providers.values())

    def add_all(self, units: Iterable[LeanUnit]) -> RunScan:
        for unit in units:
            self.add(unit)
        return self
