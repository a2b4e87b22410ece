"""A job across its last runs: per provider and run, the figures that drift; pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar

from runner.report import charts
from runner.report.common import Chart, RunHeader, attempt_end, header_at
from runner.report.stats import GroupStats, GroupTally
from runner.store.lean import lean_unit

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    from runner.report.common import RunData
    from runner.store.lean import LeanUnit
    from runner.store.records import RunInfo


@dataclass(frozen=True, slots=True, kw_only=True)
class TrendRow:
    run: RunHeader
    provider: str
    stats: GroupStats


@dataclass(frozen=True, slots=True, kw_only=True)
class TrendContext:
    """Everything ``trend.html`` shows; runs oldest first."""

    template: ClassVar[str] = "trend.html"

    title: str
    generated_at: datetime
    job_name: str
    runs: tuple[RunHeader, ...]
    providers: tuple[str, ...]
    charts: tuple[Chart, ...]
    rows: tuple[TrendRow, ...]


_SERIES: tuple[tuple[str, str, str, Callable[[GroupStats], float | None]], ...] = (
    ("ttft", "Time to first token, p50 and p90", "seconds", lambda s: s.ttft_p50),
    ("ttft90", "", "seconds", lambda s: s.ttft_p90),
    ("duration", "Attempt duration, p50", "seconds", lambda s: s.duration_p50),
    ("errors", "Error rate (failed attempts / attempts)", "share of attempts", lambda s: s.error_rate),
    ("retries", "Retries per unit", "retries per unit", lambda s: s.retry_rate),
    ("assertions", "Assertion pass rate", "share passed", lambda s: s.assertion_pass_rate),
    ("cost", "Cost per run", "USD", lambda s: s.cost),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunFigures:
    """One run as the trend shows it: its header and each provider's figures."""

    header: RunHeader
    providers: Mapping[str, GroupStats]


def run_figures(run: RunInfo, units: Iterable[LeanUnit]) -> RunFigures:
    """Tally a run's units in one pass (``repository.stream_units`` reads them lean, in batches), so a
    trend over big runs holds a few figures per run, not the runs."""
    tallies: dict[str, GroupTally] = {}
    last_end: datetime | None = None
    for unit in units:
        tally = tallies.get(unit.provider)
        if tally is None:
            # No expect keys: as before, a trend counts the checks that were stored.
            tally = tallies[unit.provider] = GroupTally(None)
        tally.add(unit)
        for attempt in unit.attempts:
            ended = attempt_end(attempt)
            if last_end is None or ended > last_end:
                last_end = ended
    return RunFigures(
        header=header_at(run, last_end), providers={name: t.stats() for name, t in tallies.items()}
    )


def build_trend_context(
    job_name: str, runs: Sequence[RunData], *, generated_at: datetime | None = None
) -> TrendContext:
    """Per provider and run figures of ``runs`` held whole (any order; shown oldest first)."""
    figures = [run_figures(r.run, (lean_unit(u) for u in r.units)) for r in runs]
    return trend_context(job_name, figures, generated_at=generated_at)


def trend_context(
    job_name: str, runs: Sequence[RunFigures], *, generated_at: datetime | None = None
) -> TrendContext:
    """The trend of ``runs`` (any order; shown oldest first)."""
    ordered = sorted(runs, key=lambda r: r.header.started_at)
    headers = [r.header for r in ordered]
    providers = sorted({name for r in ordered for name in r.providers})
    table: dict[tuple[int, str], GroupStats] = {
        (index, name): stats for index, r in enumerate(ordered) for name, stats in r.providers.items()
    }
    labels = [h.id for h in headers]

    def series(
        get: Callable[[GroupStats], float | None], suffix: str = ""
    ) -> list[tuple[str, list[float | None]]]:
        return [
            (p + suffix, [get(table[i, p]) if (i, p) in table else None for i in range(len(ordered))])
            for p in providers
        ]

    made: list[Chart] = []
    ttft = series(lambda s: s.ttft_p50, " p50") + series(lambda s: s.ttft_p90, " p90")
    made.append(
        Chart(
            id="ttft",
            title="Time to first token",
            caption="Median and 90th percentile per provider and run, successful attempts.",
            svg=charts.lines(labels, ttft, title="Time to first token per run", y_label="seconds"),
        )
    )
    for key, title, unit, get in _SERIES[2:]:
        made.append(
            Chart(
                id=key,
                title=title,
                caption=f"Per provider and run, in {unit}.",
                svg=charts.lines(labels, series(get), title=title, y_label=unit),
            )
        )
    rows = tuple(
        TrendRow(run=headers[i], provider=p, stats=table[i, p])
        for i in range(len(ordered))
        for p in providers
        if (i, p) in table
    )
    return TrendContext(
        title=f"Trend of {job_name}: last {len(ordered)} runs",
        generated_at=generated_at or datetime.now(UTC),
        job_name=job_name,
        runs=tuple(headers),
        providers=tuple(providers),
        charts=tuple(made),
        rows=rows,
    )
