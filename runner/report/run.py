"""The run report's context: a run's store records -> one frozen RunReportContext the templates format.

All choices live here (what to expand, how to page, what to chart), so templates hold no logic and
a test can check a context without rendering it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Final

from markupsafe import Markup

from runner.grading.rates import required_rates
from runner.job.stored import stored_subset
from runner.job.subset import describe_subset
from runner.model import LOOP_LAG_THRESHOLD_S
from runner.report import charts
from runner.report.common import (
    Chart,
    RunData,
    RunHeader,
    WorkerShare,
    expected_assertions,
    not_evaluated,
    run_header,
)
from runner.report.matrix import PassMatrix, pass_matrix
from runner.report.outcomes import listed_outcomes, outcomes_note
from runner.report.stats import GroupStats, group_stats
from runner.store.records import VERDICTS, Verdict

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from runner.grading.assertions import AssertionOutcome
    from runner.model import LoopLag
    from runner.store.records import UnitView

PAGE_SIZE: Final = 500  # compact rows per collapsed page: a browser lays out only open pages
OK_SAMPLE_PER_PROVIDER: Final = 10  # successful units shown expanded, per provider
FAILED_CARDS_MAX: Final = 300  # units not passed shown expanded, worst first; the rest stay in the rows
# How the cards' note names a group of units of each verdict.
VERDICT_LABELS: Final[dict[Verdict, str]] = {
    "failed assertions": "with failed assertions",
    "failed": "failed (no result)",
    "not done": "not done",
    "passed": "passed",
}
NO_SUCCESS: Final = "no successful attempt"  # said instead of a chart of successful attempts' figures
EXCERPT_CHARS: Final = 100
# The unit table's answers share this many characters, so a huge run still makes a file a browser
# opens (a report must stay under 25 MB). Beyond it each answer is cut evenly and says how much was left out;
# expanded cases always show whole answers, and `runner export` has every answer in full.
ANSWER_BUDGET_CHARS: Final = 8_000_000
TIME_BINS: Final = 24


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCallView:
    name: str
    id: str | None
    arguments: str  # pretty JSON when it parses, else the exact string
    is_json: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ChoiceView:
    index: int
    text: str
    reasoning: str
    refusal: str | None
    tool_calls: tuple[ToolCallView, ...]
    finish_reason: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptSpan:
    """One attempt on the unit's timeline; ``left``/``width`` are percent of the unit's span."""

    number: int
    offset_s: float  # after the unit's first attempt started
    ttft_s: float | None
    ttfr_s: float | None  # time to the first reasoning token
    duration_s: float | None
    http_status: int | None
    error_kind: str | None
    error_message: str | None
    cost: float | None
    left: float
    width: float


@dataclass(frozen=True, slots=True, kw_only=True)
class UnitCard:
    """A unit shown expanded: every choice, its assertions and its attempt timeline."""

    key: str
    provider: str
    case_id: str
    repeat: int
    status: str
    verdict: Verdict
    verdict_class: str  # the verdict as a CSS class name
    model: str | None
    choices: tuple[ChoiceView, ...]
    assertions: tuple[AssertionOutcome, ...]  # evaluated on the final result (an ok unit only)
    not_evaluated: tuple[str, ...]  # names of assertions a unit without a final result could not have
    attempts: tuple[AttemptSpan, ...]
    span_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class UnitRow:
    """A unit as one compact table row; ``answer`` is the whole first-choice text."""

    key: str
    provider: str
    case_id: str
    repeat: int
    status: str
    verdict: Verdict
    verdict_class: str
    attempts: int
    error_kind: str | None
    ttft_s: float | None
    duration_s: float | None
    cost: float | None
    assertions_passed: int
    assertions_total: int
    assertions_not_evaluated: int
    outcomes: tuple[AssertionOutcome, ...]  # every evaluated assertion, listed under the row's checks
    excerpt: str
    answer: str
    is_long: bool
    cut_chars: int  # characters of the answer left out of this row (see ANSWER_BUDGET_CHARS)


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


def tool_call_view(name: str, call_id: str | None, arguments: str) -> ToolCallView:
    try:
        pretty = json.dumps(json.loads(arguments), indent=2, ensure_ascii=False)
    except ValueError:
        return ToolCallView(name=name, id=call_id, arguments=arguments, is_json=False)
    return ToolCallView(name=name, id=call_id, arguments=pretty, is_json=True)


def verdict_class(verdict: Verdict) -> str:
    """A verdict as a CSS class: ``verdict-failed-assertions``."""
    return "verdict-" + verdict.replace(" ", "-")


def unit_card(unit: UnitView, expected: Mapping[str, Sequence[str]] | None = None) -> UnitCard:
    first = unit.attempts[0].started_at if unit.attempts else None
    offsets = [(a.started_at - first).total_seconds() if first else 0.0 for a in unit.attempts]
    span = max((o + (a.end_s or 0.0) for o, a in zip(offsets, unit.attempts, strict=True)), default=0.0)
    span = span or 1.0
    attempts = tuple(
        AttemptSpan(
            number=a.number,
            offset_s=offset,
            ttft_s=a.ttft_s,
            ttfr_s=a.first_reasoning_s,
            duration_s=a.end_s,
            http_status=a.http_status,
            error_kind=a.error.kind if a.error else None,
            error_message=a.error.message if a.error else None,
            cost=a.cost_usd,
            left=100 * offset / span,
            width=max(0.5, 100 * (a.end_s or 0.0) / span),
        )
        for offset, a in zip(offsets, unit.attempts, strict=True)
    )
    choices = tuple(
        ChoiceView(
            index=c.index,
            text=c.text,
            reasoning=c.reasoning,
            refusal=c.refusal,
            tool_calls=tuple(tool_call_view(t.name, t.id, t.arguments) for t in c.tool_calls),
            finish_reason=c.finish_reason,
        )
        for c in (unit.completion.choices if unit.completion else ())
    )
    return UnitCard(
        key=unit.key,
        provider=unit.provider,
        case_id=unit.case_id,
        repeat=unit.repeat,
        status=unit.status,
        verdict=unit.verdict,
        verdict_class=verdict_class(unit.verdict),
        model=unit.model,
        choices=choices,
        assertions=unit.evaluated,
        not_evaluated=not_evaluated(unit, expected or {}),
        attempts=attempts,
        span_s=span,
    )


def unit_row(
    unit: UnitView,
    limit: int | None = None,
    expected: Mapping[str, Sequence[str]] | None = None,
    *,
    list_outcomes: bool = True,
) -> UnitRow:
    final = unit.final
    choices = unit.completion.choices if unit.completion else ()
    answer = choices[0].text if choices else ""
    if not answer and choices and choices[0].tool_calls:
        answer = "; ".join(f"{t.name}({t.arguments})" for t in choices[0].tool_calls)
    one_line = " ".join(answer.split())
    return UnitRow(
        key=unit.key,
        provider=unit.provider,
        case_id=unit.case_id,
        repeat=unit.repeat,
        status=unit.status,
        verdict=unit.verdict,
        verdict_class=verdict_class(unit.verdict),
        attempts=len(unit.attempts),
        error_kind=final.error.kind if final and final.error else None,
        ttft_s=final.ttft_s if final else None,
        duration_s=final.end_s if final else None,
        cost=sum((c for a in unit.attempts if (c := a.cost_usd) is not None), 0.0),
        assertions_passed=sum(o.passed for o in unit.evaluated),
        assertions_total=len(unit.evaluated),
        assertions_not_evaluated=len(not_evaluated(unit, expected or {})),
        outcomes=unit.evaluated if list_outcomes else (),
        excerpt=one_line[:EXCERPT_CHARS] + ("…" if len(one_line) > EXCERPT_CHARS else ""),
        answer=answer[:limit] if limit is not None else answer,
        cut_chars=max(0, len(answer) - limit) if limit is not None else 0,
        is_long=len(one_line) > EXCERPT_CHARS or "\n" in answer.strip(),
    )


def _latency_charts(data: RunData, by_provider: dict[str, list[UnitView]]) -> tuple[Chart, Chart]:
    """TTFT histograms and the latency scatter, both of successful attempts (or a note that none was)."""
    start = data.run.started_at
    names = sorted(by_provider)
    good = {p: [a for u in by_provider[p] for a in u.attempts if a.error is None] for p in names}
    ttft_caption = (
        "How many successful attempts got their first answer token after how long; one row per provider."
    )
    latency_caption = (
        "Each dot is a successful attempt: when it started (x) and how long it took end to end (y)."
    )
    if not any(good.values()):
        # Empty axes would read as "nothing was slow"; say why there is nothing to draw.
        return (
            Chart(
                id="ttft", title="Time to first token", caption=ttft_caption, svg=Markup(), empty=NO_SUCCESS
            ),
            Chart(
                id="latency",
                title="Latency over the run",
                caption=latency_caption,
                svg=Markup(),
                empty=NO_SUCCESS,
            ),
        )
    ttft = charts.histograms(
        [(p, [t for a in good[p] if (t := a.ttft_s) is not None]) for p in names],
        title="Time to first token per provider",
        x_label="time to first token",
        unit="s",
    )
    latency = charts.scatter(
        [
            (p, [((a.started_at - start).total_seconds(), a.end_s) for a in good[p] if a.end_s is not None])
            for p in names
        ],
        title="Latency over the run",
        x_label="attempt start, seconds after run start",
        y_label="attempt duration",
        unit="s",
    )
    return (
        Chart(id="ttft", title="Time to first token", caption=ttft_caption, svg=ttft),
        Chart(id="latency", title="Latency over the run", caption=latency_caption, svg=latency),
    )


def _trouble_chart(data: RunData) -> Chart:
    """Failed and retried attempts per time bin of the run."""
    start = data.run.started_at
    attempts = [a for u in data.units for a in u.attempts]
    offsets = [(a.started_at - start).total_seconds() for a in attempts]
    width = (max(offsets, default=0.0) or 1.0) / TIME_BINS
    errors, retries = [0.0] * TIME_BINS, [0.0] * TIME_BINS
    for offset, attempt in zip(offsets, attempts, strict=True):
        slot = min(TIME_BINS - 1, max(0, int(offset / width)))
        errors[slot] += attempt.error is not None
        retries[slot] += attempt.number > 1
    labels = [f"{i * width:.3g}s" for i in range(TIME_BINS)]  # .3g: sub-second runs need decimals
    trouble = charts.grouped_bars(
        labels,
        [("failed attempts", errors), ("retries (attempts after the first)", retries)],
        title="Errors and retries over the run",
        x_label=f"time bin of {width:.3g} s after run start",
        y_label="attempts",
    )
    return Chart(
        id="errors",
        title="Errors and retries over time",
        caption="Failed attempts and retried attempts per time bin of the run.",
        svg=trouble,
    )


def _run_charts(data: RunData, by_provider: dict[str, list[UnitView]]) -> tuple[Chart, ...]:
    costs = [(p, group_stats(by_provider[p]).cost or 0.0) for p in sorted(by_provider)]
    cost = charts.hbars(costs, title="Cost per provider", unit="USD")
    return (
        *_latency_charts(data, by_provider),
        _trouble_chart(data),
        Chart(
            id="cost",
            title="Cost per provider",
            caption="USD: provider-reported cost where sent, "
            "else computed from the run's frozen prices; failed attempts included.",
            svg=cost,
        ),
    )


def _cards(units: Sequence[UnitView], by_provider: dict[str, list[UnitView]]) -> tuple[list[UnitView], str]:
    """The units shown in full, worst verdict first, and the note that says which they are."""
    by_verdict: dict[Verdict, list[UnitView]] = {v: [] for v in VERDICTS}
    for unit in units:
        by_verdict[unit.verdict].append(unit)
    shown: list[UnitView] = []
    parts = []
    for verdict in VERDICTS[:-1]:  # all but "passed", in the order of VERDICTS: worst first
        group, label = by_verdict[verdict], VERDICT_LABELS[verdict]
        taken = group[: max(0, FAILED_CARDS_MAX - len(shown))]
        shown += taken
        parts.append(
            f"{len(taken)} of {len(group)} {label}" if len(taken) < len(group) else f"{len(group)} {label}"
        )
    for group in by_provider.values():
        shown += [u for u in group if u.verdict == "passed"][:OK_SAMPLE_PER_PROVIDER]
    note = (
        f"Units shown in full, worst first: {', '.join(parts)}, then the first {OK_SAMPLE_PER_PROVIDER} "
        "passed units of each provider. Every unit is in the table below."
    )
    return shown, note


def build_run_context(data: RunData, *, generated_at: datetime | None = None) -> RunReportContext:
    """Aggregate one run into the context of ``run.html``."""
    units = sorted(data.units, key=lambda u: (u.provider, u.case_id, u.repeat))
    by_provider: dict[str, list[UnitView]] = {}
    for unit in units:
        by_provider.setdefault(unit.provider, []).append(unit)
    expected = expected_assertions(data.run.job_spec)
    notes = _price_notes(data.run.job_spec)
    providers = tuple(
        ProviderSection(
            name=name,
            models=", ".join(sorted({u.model for u in group if u.model})) or "not reported",
            price=describe_price(data.run.prices.get(name), notes.get(name)),
            stats=group_stats(group, expected),
        )
        for name, group in sorted(by_provider.items())
    )
    shown, note = _cards(units, by_provider)
    total = sum(len(c.text) for u in units if u.completion for c in u.completion.choices[:1])
    limit = max(EXCERPT_CHARS, ANSWER_BUDGET_CHARS // len(units)) if total > ANSWER_BUDGET_CHARS else None
    listed = listed_outcomes(units)
    rows = [unit_row(u, limit, expected, list_outcomes=u.id in listed) for u in units]
    pages = tuple(
        UnitPage(
            label=f"units {i + 1}-{min(i + PAGE_SIZE, len(rows))} of {len(rows)}: "
            f"{rows[i].provider} / {rows[i].case_id} to {rows[min(i + PAGE_SIZE, len(rows)) - 1].provider} / "
            f"{rows[min(i + PAGE_SIZE, len(rows)) - 1].case_id}",
            rows=tuple(rows[i : i + PAGE_SIZE]),
        )
        for i in range(0, len(rows), PAGE_SIZE)
    )
    summary = group_stats(units, expected)
    return RunReportContext(
        title=f"Run {data.run.id}: {data.run.job_name}",
        generated_at=generated_at or datetime.now(UTC),
        run=run_header(data.run, units),
        summary=summary,
        providers=providers,
        charts=_run_charts(data, by_provider),
        cards=tuple(unit_card(u, expected) for u in shown),
        cards_note=note,
        pages=pages,
        resume_hint=resume_hint(data.run.id, data.run.status, summary.unfinished),
        # The same counts as repository.reuse_counts (the CLI's summary line), from the loaded units.
        reused=sum(1 for u in units if u.reused_from is not None),
        sent=sum(1 for u in units if u.attempt_count > 0),
        workers=data.workers,
        timing_note=timing_note(data.run.loop_lag),
        subset_note=subset_note(data.run.job_spec),
        matrix=pass_matrix(units, required_rates(data.run.job_spec)) if units else None,
        outcomes_note=outcomes_note(len(listed), len(units)),
        grading_cost=data.grading_cost,
    )
