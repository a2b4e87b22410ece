"""The viewer's page contexts, read from the store through the inspect layer and the report builders:
one frozen dataclass per page, handed to its template as ``view`` (with ``report`` for a report's own
template). Reads are bounded: a run page loads one page of units, never the whole run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar, Final
from urllib.parse import quote, urlencode

from runner.grading.rates import CaseRate, required_rates
from runner.report.api import build_run_report
from runner.report.common import expected_assertions
from runner.report.inspect import list_runs, run_summary, unit_detail, unit_stream
from runner.report.matrix import MatrixCell, MatrixRow, PassMatrix
from runner.report.run import UnitPage, unit_card, unit_row
from runner.store import repository
from runner.store.repository.pages import (
    SORT_KEYS,
    STATUSES,
    CaseCounts,
    UnitQuery,
    case_counts,
    unit_keys_in_runs,
    unit_page,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from runner.report.inspect import AttemptStream, RunSummary, UnitDetail
    from runner.report.run import RunReportContext, UnitCard
    from runner.store.records import RunInfo
    from runner.store.repository.browse import RunRow

# Up to this many units a run page carries the whole run report (charts, cards, every row) below its
# own table; past it the report would load every unit, so the page keeps to SQL tallies and pages.
FULL_REPORT_UNITS: Final = 2000
MATRIX_ROWS: Final = 200  # cases per matrix page (worst pass share first)
PAGE_SIZES: Final = (50, 100, 500)
REFRESH_S: Final = 5  # how often a page of a running run reloads itself
RUN_STATUSES: Final = ("running", "finished", "interrupted", "failed", "planning")


@dataclass(frozen=True, slots=True, kw_only=True)
class Link:
    label: str
    href: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Chrome:
    """What every viewer page shows around its content: title, breadcrumbs, and whether it reloads."""

    title: str
    crumbs: tuple[Link, ...] = ()
    refresh_s: int | None = None  # set while the run shown is still running
    generated_at: datetime = field(default_factory=lambda: datetime.now(UTC))


def run_href(run_id: str) -> str:
    return f"/runs/{quote(run_id, safe='')}"


def unit_href(run_id: str, key: str) -> str:
    # The key keeps its slashes (provider/case/repeat, a case id may hold more): the route takes a path.
    return f"{run_href(run_id)}/units/{quote(key, safe='/')}"


def _refresh(run: RunInfo) -> int | None:
    return REFRESH_S if run.status == "running" else None


@dataclass(frozen=True, slots=True, kw_only=True)
class IndexEntry:
    """A line of the runs index: a ``runner runs`` row with its duration (to now while running)."""

    row: RunRow
    duration_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class IndexPage:
    template: ClassVar[str] = "view_index.html"

    chrome: Chrome
    entries: tuple[IndexEntry, ...]
    jobs: tuple[str, ...]
    statuses: tuple[str, ...]
    job: str | None
    status: str | None
    last: int


def index_page(session: Session, *, job: str | None, status: str | None, last: int) -> IndexPage:
    """The newest ``last`` runs (of ``job``, with ``status``), and every job name to pick from."""
    chrome = Chrome(title="Runs")
    rows = list_runs(session, job_name=job, last=last)
    jobs = sorted({info.job_name for info in repository.list_runs(session, limit=1000)})
    return IndexPage(
        chrome=chrome,
        entries=tuple(
            IndexEntry(
                row=r,
                duration_s=max(
                    ((r.run.finished_at or chrome.generated_at) - r.run.started_at).total_seconds(), 0
                ),
            )
            for r in rows
            if status is None or r.run.status == status
        ),
        jobs=tuple(jobs),
        statuses=RUN_STATUSES,
        job=job,
        status=status,
        last=last,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class RunPage:
    template: ClassVar[str] = "view_run.html"

    chrome: Chrome
    summary: RunSummary
    query: UnitQuery
    units: UnitPage
    total: int  # units matching the query, on every page
    providers: tuple[str, ...]
    statuses: tuple[str, ...]
    sorts: tuple[str, ...]
    page_sizes: tuple[int, ...]
    unit_links: dict[str, str]  # unit key -> its page
    matrix: PassMatrix
    matrix_more: int  # cases left out of the matrix (the worst MATRIX_ROWS are shown)
    others: tuple[RunInfo, ...]  # other runs of the job, newest first, to diff against
    full: RunReportContext | None  # the whole run report, for a run of up to FULL_REPORT_UNITS units

    @property
    def href(self) -> str:
        return run_href(self.summary.run.id)

    @property
    def full_limit(self) -> int:
        return FULL_REPORT_UNITS

    def page_href(self, **changes: object) -> str:
        """This page's URL with ``changes`` to its query (sort, filter, offset)."""
        q = self.query
        params = {
            "provider": q.provider,
            "status": q.status,
            "case": q.case_contains,
            "sort": q.sort,
            "desc": "1" if q.descending else None,
            "offset": q.offset or None,
            "limit": q.limit,
        } | changes
        return self.href + "?" + urlencode({k: v for k, v in params.items() if v is not None}) + "#units"

    @property
    def previous_offset(self) -> int | None:
        return max(self.query.offset - self.query.limit, 0) if self.query.offset else None

    @property
    def next_offset(self) -> int | None:
        following = self.query.offset + self.query.limit
        return following if following < self.total else None


def run_page(session: Session, run_ref: str, query: UnitQuery) -> RunPage:
    """Run ``run_ref``'s page: its summary, one page of ``query``'s units, its matrix, its sibling runs.

    Raises:
        StorageError: no such run.
    """
    summary = run_summary(session, run_ref)
    run = summary.run
    views, total = unit_page(session, run.id, query)
    expected = expected_assertions(run.job_spec)
    rows = tuple(unit_row(v, 2000, expected) for v in views)
    matrix, more = run_matrix(session, run)
    # The other runs to diff against: their rows only (no tallies; a run's tally scans its units).
    others = tuple(
        i for i in repository.list_runs(session, job_name=run.job_name, limit=50) if i.id != run.id
    )
    return RunPage(
        chrome=Chrome(title=f"Run {run.id} ({run.job_name})", crumbs=(), refresh_s=_refresh(run)),
        summary=summary,
        query=query,
        units=UnitPage(label="", rows=rows),
        total=total,
        providers=tuple(p.name for p in summary.providers),
        statuses=STATUSES,
        sorts=SORT_KEYS,
        page_sizes=PAGE_SIZES,
        unit_links={v.key: unit_href(run.id, v.key) for v in views},
        matrix=matrix,
        matrix_more=more,
        others=others,
        full=build_run_report(session, run.id) if summary.total.units <= FULL_REPORT_UNITS else None,
    )


def run_matrix(session: Session, run: RunInfo) -> tuple[PassMatrix, int]:
    """The case x provider matrix from SQL counts, its worst MATRIX_ROWS cases (and how many more).

    Cells are built only for the cases shown and the cases with a pass_rate: a 100,000-unit run has
    tens of thousands of cases, ranked here from their plain counts.
    """
    counts = case_counts(session, run.id)
    required = required_rates(run.job_spec)
    providers = tuple(sorted({c.provider for c in counts}))
    by_case: dict[str, list[CaseCounts]] = {}
    for c in counts:
        by_case.setdefault(c.case_id, []).append(c)

    def share(case_id: str) -> tuple[float, str]:
        group = by_case[case_id]
        units = sum(c.units for c in group)
        return (sum(c.ok - c.failed_assertions for c in group) / units if units else 0.0), case_id

    shown = sorted(sorted(by_case, key=share)[:MATRIX_ROWS])
    rows = []
    for case_id in shown:
        cells = {c.provider: _cell(c, required.get(case_id)) for c in by_case[case_id]}
        rows.append(MatrixRow(case_id=case_id, cells=tuple(cells.get(p) for p in providers)))
    rated = [_cell(c, required[c.case_id]) for c in counts if c.case_id in required]
    more = max(len(by_case) - MATRIX_ROWS, 0)
    note = f"The {MATRIX_ROWS} cases with the lowest pass share of {len(by_case)}." if more else None
    matrix = PassMatrix(
        providers=providers,
        rows=tuple(rows),
        note=note,
        rated=len(rated),
        below=sum(cell.rate.is_below for cell in rated),
    )
    return matrix, more


def _cell(c: CaseCounts, required: float | None) -> MatrixCell:
    passed = c.ok - c.failed_assertions
    rate = CaseRate(case_id=c.case_id, provider=c.provider, passed=passed, graded=c.ok, required=required)
    return MatrixCell(units=c.units, passed=passed, rate=rate, failed=c.failed, not_done=c.not_done)


@dataclass(frozen=True, slots=True, kw_only=True)
class UnitPageView:
    template: ClassVar[str] = "view_unit.html"

    chrome: Chrome
    detail: UnitDetail
    card: UnitCard
    streams: tuple[AttemptStream, ...]
    elsewhere: tuple[Link, ...]  # the same unit in other runs of the job


def unit_page_view(session: Session, run_ref: str, key: str) -> UnitPageView:
    """Unit ``key`` of run ``run_ref``: its card, request, every attempt's stream read by read.

    Raises:
        StorageError: no such run; UnknownUnitError: no such unit.
    """
    detail = unit_detail(session, run_ref, key)
    run = detail.run
    others = [i.id for i in repository.list_runs(session, job_name=run.job_name, limit=50) if i.id != run.id]
    having = unit_keys_in_runs(session, others, detail.unit.key) if others else set()
    return UnitPageView(
        chrome=Chrome(
            title=f"Unit {detail.unit.key}",
            crumbs=(Link(label=f"run {run.id}", href=run_href(run.id)),),
            refresh_s=REFRESH_S if detail.unit.status in ("pending", "running") else None,
        ),
        detail=detail,
        card=unit_card(detail.unit, expected_assertions(run.job_spec)),
        streams=unit_stream(session, detail),
        elsewhere=tuple(Link(label=i, href=unit_href(i, detail.unit.key)) for i in others if i in having),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportPage:
    """A report of its own (diff, trend, cost) shown in the viewer's frame."""

    chrome: Chrome
    note: str | None = None  # set instead of a report when the runs are too large to load whole


def report_chrome(run: RunInfo, what: str) -> Chrome:
    return Chrome(
        title=f"{what} · run {run.id}", crumbs=(Link(label=f"run {run.id}", href=run_href(run.id)),)
    )
