"""The run report's context: a run's store records -> one frozen RunReportContext the templates format.

All choices live here (what to expand, how to page, what to chart), so templates hold no logic and
a test can check a context without rendering it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Final

from runner.grading.rates import required_rates
from runner.job.stored import stored_subset
from runner.job.subset import describe_subset
from runner.model import LOOP_LAG_THRESHOLD_S
from runner.report.common import Chart, RunHeader, WorkerShare, expected_assertions, header_at
from runner.report.outcomes import listed_outcomes, outcomes_note
from runner.report.plots import run_charts
from runner.report.scan import FAILED_CARDS_MAX, OK_SAMPLE_PER_PROVIDER, ROWS_MAX, RunScan, unit_order

# The unit views live in ``unit``; named here too, where the run report's context has always been.
from runner.report.unit import (
    EXCERPT_CHARS,
    AttemptSpan,
    ChoiceView,
    ToolCallView,
    UnitCard,
    UnitRow,
    unit_card,
    unit_row,
    verdict_class,
)
from runner.store.lean import LeanUnit, lean_unit
from runner.store.records import VERDICTS, Verdict

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    from runner.model import LoopLag
    from runner.report.common import RunData
    from runner.report.matrix import PassMatrix
    from runner.report.stats import GroupStats
    from runner.store.records import RunInfo, UnitView

__all__ = [
    "ANSWER_BUDGET_CHARS",
    "EXCERPT_CHARS",
    "FAILED_CARDS_MAX",
    "OK_SAMPLE_PER_PROVIDER",
    "ROWS_MAX",
    "AttemptSpan",
    "ChoiceView",
    "ProviderSection",
    "RunReportContext",
    "ToolCallView",
    "UnitCard",
    "UnitPage",
    "UnitRow",
    "build_run_context",
    "describe_price",
    "resume_hint",
    "run_context",
    "subset_note",
    "timing_note",
    "unit_card",
    "unit_row",
    "verdict_class",
]

PAGE_SIZE: Final = 500  # compact rows per collapsed page: a browser lays out only open pages
# How the cards' note names a group of units of each verdict.
VERDICT_LABELS: Final[dict[Verdict, str]] = {
    "failed assertions": "with failed assertions",
    "failed": "failed (no result)",
    "not done": "not done",
    "passed": "passed",
}
# The unit table's answers share this many characters, so a huge run still makes a file a browser
# opens quickly (a 100,000-unit report stays under 10 MB). Beyond it each answer is cut evenly and says how
# much was left out; expanded cases always show whole answers, and `runner export` has every answer in full.
ANSWER_BUDGET_CHARS: Final = 2_000_000


@dataclass(frozen=True, slots=True, kw_only=True)
class UnitPage:
    label: str
    rows: tuple[UnitRow, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderSection:
    name: str
    models: str
    price: str
    stats: GroupStats


@dataclass(frozen=True, slots=True, kw_only=True)
class RunReportContext:
    """Everything ``run.html`` shows."""

    template: ClassVar[str] = "run.html"

    title: str
    generated_at: datetime
    run: RunHeader
    summary: GroupStats
    providers: tuple[ProviderSection, ...]
    charts: tuple[Chart, ...]
    cards: tuple[UnitCard, ...]
    cards_note: str
    pages: tuple[UnitPage, ...]
    resume_hint: str | None = None  # set when units have no result yet: how to finish the run
    reused: int = 0  # units given a copy of an earlier sample (--reuse): nothing was sent for them
    sent: int = 0  # units that sent at least one request
    workers: tuple[WorkerShare, ...] = ()  # the processes that worked the run (units.lease_owner)
    # Set when runner's loop lagged past LOOP_LAG_THRESHOLD_S at p99: shown beside every timing figure.
    timing_note: str | None = None
    subset_note: str | None = None  # set when the run was started on a subset of its job (--providers...)
    matrix: PassMatrix | None = None  # case x provider passes over repeats (None: no unit)
    outcomes_note: str | None = None  # set when the unit table lists only some units' outcomes
    rows_note: str | None = None  # set when the unit table shows a sample: "showing N of M units ..."
    grading_cost: float | None = None  # USD of the judges' grading requests (None: no judge graded)

    @property
    def worker_hosts(self) -> int:
        return len({w.host for w in self.workers})


def timing_note(loop_lag: LoopLag | None) -> str | None:
    """The warning the run's timing figures carry when runner's own loop lagged, or None.

    Every instant runner notes is taken when its task next runs: a loop late by X ms at p99 stored up
    to X ms of its own delay in TTFT, TTFR, gaps and durations. Not measured (an older run): no note.
    """
    if loop_lag is None or loop_lag.p99_s <= LOOP_LAG_THRESHOLD_S:
        return None
    return (
        f"runner's loop lagged: p99 {loop_lag.p99_s * 1000:.1f} ms (max {loop_lag.max_s * 1000:.1f} ms, "
        f"over the {LOOP_LAG_THRESHOLD_S * 1000:g} ms threshold); timing figures may read high. "
        "Rerun with less concurrency, or on a less loaded machine, for clean TTFT, TTFR, gaps and durations."
    )


def subset_note(job_spec: Mapping[str, Any]) -> str | None:
    """The subset of its job the run was started on, in the options' words; None: the whole job."""
    subset = stored_subset(job_spec)
    if subset is None:
        return None
    return f"A subset of the job: {describe_subset(subset)} (runner run --providers / --cases / --limit)."


def resume_hint(run_id: str, status: str, unfinished: int) -> str | None:
    """What a reader of an unfinished run should do next, or None when nothing is left."""
    if status == "planning":  # cut off while storing its units: some are not even counted here
        return (
            "The run's planning did not complete: not all of its units are stored yet. "
            f"Finish it with: runner run --resume {run_id}"
        )
    if unfinished == 0:
        return None
    why = "the run was interrupted" if status == "interrupted" else f"the run is {status}"
    return f"{unfinished} units have no result yet ({why}). Finish them with: runner run --resume {run_id}"


def describe_price(price: object, why_none: object = None) -> str:
    """A frozen price snapshot as a sentence naming where it came from; USD per million tokens.

    ``why_none`` is the run's note for a provider without a price (``ProviderSpec.price_source``:
    the catalog did not know its model); runs made before the catalog have none.
    """
    if not isinstance(price, dict):
        why = why_none if isinstance(why_none, str) and why_none else "no price set"
        return f"{why}: cost only as the provider reported it"
    # Only the per-token prices (the snapshot also names the model, currency and token unit).
    parts = [
        f"{name.replace('_', ' ')} ${price[name]:g}"
        for name in ("input", "output", "cached_input", "cache_write")
        if isinstance(price.get(name), int | float)
    ]
    # A catalog price names its catalog, version and entry; a declared one (no "source") is the job's.
    source = price.get("source")
    where = source if isinstance(source, str) and source else "the job file"
    return ", ".join(parts) + f" per million tokens, from {where}"


def _price_notes(job_spec: Mapping[str, Any]) -> dict[str, object]:
    """Provider name -> its stored ``price_source`` (why it has no price, when it has none)."""
    providers = job_spec.get("providers") or ()
    return {p["name"]: p.get("price_source") for p in providers if isinstance(p, dict) and "name" in p}


def _cards(scan: RunScan) -> tuple[list[LeanUnit], str]:
    """The units shown in full (as scanned: lean), worst verdict first, and the note saying which."""
    shown: list[LeanUnit] = []
    parts = []
    for verdict in VERDICTS[:-1]:  # all but "passed", in the order of VERDICTS: worst first
        group, label, total = scan.failing[verdict].kept(), VERDICT_LABELS[verdict], scan.verdicts[verdict]
        taken = group[: max(0, FAILED_CARDS_MAX - len(shown))]
        shown += taken
        parts.append(f"{len(taken)} of {total} {label}" if len(taken) < total else f"{total} {label}")
    for provider in sorted(scan.passing):
        shown += scan.passing[provider].kept()
    where = "Every unit is in the table below." if scan.rows_complete else "runner export has every unit."
    note = (
        f"Units shown in full, worst first: {', '.join(parts)}, then the first {OK_SAMPLE_PER_PROVIDER} "
        f"passed units of each provider. {where}"
    )
    return shown, note


def _rows(scan: RunScan, units: Sequence[UnitView]) -> tuple[list[UnitRow], str | None, str | None]:
    """The table's rows of ``units`` (in full) in unit order, answers cut to the budget and outcomes
    listed within theirs, with the notes saying what the table leaves out."""
    rows = [unit_row(unit, None, scan.expected) for unit in sorted(units, key=unit_order)]
    total = sum(len(row.answer) for row in rows)
    if total > ANSWER_BUDGET_CHARS:
        limit = max(EXCERPT_CHARS, ANSWER_BUDGET_CHARS // len(rows))
        rows = [
            replace(row, answer=row.answer[:limit], cut_chars=len(row.answer) - limit)
            if len(row.answer) > limit
            else row
            for row in rows
        ]
    listed = listed_outcomes(rows)
    rows = [row if row.id in listed else replace(row, outcomes=()) for row in rows]
    rows_note = None
    if not scan.rows_complete:
        shown_failing = sum(row.verdict != "passed" for row in rows)
        rows_note = (
            f"Showing {len(rows):,} of {scan.units:,} units: {shown_failing:,} not passed "
            f"(of {scan.units - scan.verdicts['passed']:,}) and a fixed sample of "
            f"{len(rows) - shown_failing:,} passed (of {scan.verdicts['passed']:,})."
        )
    return rows, rows_note, outcomes_note(len(listed), len(rows))


def _whole(
    shown: Sequence[LeanUnit],
    listed: Sequence[LeanUnit],
    in_full: Callable[[Sequence[int]], Iterable[UnitView]] | None,
) -> tuple[list[UnitView], list[UnitView]]:
    """The cards' and the table's units in full: read by id, or the views the scan was given."""
    if in_full is not None:
        whole = {unit.id: unit for unit in in_full([u.id for u in (*shown, *listed)])}
        return [whole[u.id] for u in shown], [whole[u.id] for u in listed]
    return [_view(u) for u in shown], [_view(u) for u in listed]


def _view(unit: LeanUnit) -> UnitView:
    if unit.view is None:
        raise ValueError("a scan of lean units from the store needs in_full to read the units it shows")
    return unit.view


def _pages(rows: Sequence[UnitRow]) -> tuple[UnitPage, ...]:
    return tuple(
        UnitPage(
            label=f"units {i + 1}-{min(i + PAGE_SIZE, len(rows))} of {len(rows)}: "
            f"{rows[i].provider} / {rows[i].case_id} to {rows[min(i + PAGE_SIZE, len(rows)) - 1].provider} / "
            f"{rows[min(i + PAGE_SIZE, len(rows)) - 1].case_id}",
            rows=tuple(rows[i : i + PAGE_SIZE]),
        )
        for i in range(0, len(rows), PAGE_SIZE)
    )


def scan_run(run: RunInfo, units: Iterable[UnitView | LeanUnit], *, rows_max: int = ROWS_MAX) -> RunScan:
    """One pass over ``units`` (any order; a lean stream from the store, or whole units) into what the
    report shows."""
    lean = (unit if isinstance(unit, LeanUnit) else lean_unit(unit) for unit in units)
    return RunScan(run, expected_assertions(run.job_spec), rows_max=rows_max).add_all(lean)


def run_context(
    scan: RunScan,
    *,
    in_full: Callable[[Sequence[int]], Iterable[UnitView]] | None = None,
    workers: tuple[WorkerShare, ...] = (),
    grading_cost: float | None = None,
    generated_at: datetime | None = None,
) -> RunReportContext:
    """The context of ``run.html`` from a finished scan of the run's units.

    Args:
        in_full: reads units by id with every text (``repository.units_by_id``), when the scan was fed
            lean units from the store; None when each came with its whole view (``lean_unit``).
        grading_cost: USD of the judges' grading requests (None: no judge graded the run).
    """
    run = scan.run
    notes = _price_notes(run.job_spec)
    providers = tuple(
        ProviderSection(
            name=name,
            models=", ".join(sorted(tally.models)) or "not reported",
            price=describe_price(run.prices.get(name), notes.get(name)),
            stats=tally.stats(),
        )
        for name, tally in sorted(scan.providers.items())
    )
    lean_shown, note = _cards(scan)
    shown, listed = _whole(lean_shown, scan.rows.kept(), in_full)
    rows, rows_note, listed_note = _rows(scan, listed)
    summary = scan.summary.stats()
    return RunReportContext(
        title=f"Run {run.id}: {run.job_name}",
        generated_at=generated_at or datetime.now(UTC),
        run=header_at(run, scan.last_end),
        summary=summary,
        providers=providers,
        charts=run_charts(scan),
        cards=tuple(unit_card(u, scan.expected) for u in shown),
        cards_note=note,
        pages=_pages(rows),
        resume_hint=resume_hint(run.id, run.status, summary.unfinished),
        # The same counts as repository.reuse_counts (the CLI's summary line), from the scanned units.
        reused=scan.reused,
        sent=scan.sent,
        workers=workers,
        timing_note=timing_note(run.loop_lag),
        subset_note=subset_note(run.job_spec),
        matrix=scan.matrix.matrix(required_rates(run.job_spec)) if scan.matrix else None,
        outcomes_note=listed_note,
        rows_note=rows_note,
        grading_cost=grading_cost,
    )


def build_run_context(data: RunData, *, generated_at: datetime | None = None) -> RunReportContext:
    """Aggregate one run held in memory into the context of ``run.html``."""
    units = sorted(data.units, key=unit_order)
    return run_context(
        scan_run(data.run, units),
        workers=data.workers,
        grading_cost=data.grading_cost,
        generated_at=generated_at,
    )
