"""Cost accounting across runs: tokens and USD grouped by provider, model, day, tag or job; pure.

Costs are read as stored per attempt: the provider's figure and the one computed from the prices
frozen at each run's start, so a later price change never rewrites what a past run cost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar, Final

from rich.table import Table

from runner.report import charts
from runner.report.common import Chart
from runner.report.stats import Tokens

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from runner.store.records import AttemptCost

GROUP_KEYS: Final = ("provider", "model", "day", "tag", "job")
CHART_ROWS: Final = 20  # the most expensive groups drawn; the table has them all


@dataclass(frozen=True, slots=True, kw_only=True)
class CostRow:
    keys: tuple[str, ...]
    runs: int
    attempts: int
    failed_attempts: int
    tokens: Tokens
    cost: float  # reported where sent, else computed
    cost_reported: float | None
    cost_computed: float | None
    cost_wasted: float  # on failed attempts


@dataclass(frozen=True, slots=True, kw_only=True)
class CostContext:
    """Everything ``cost.html`` and the terminal table show."""

    template: ClassVar[str] = "cost.html"

    title: str
    generated_at: datetime
    since: datetime | None
    until: datetime | None
    by: tuple[str, ...]
    rows: tuple[CostRow, ...]
    total: CostRow
    note: str
    chart: Chart


def _keys(fact: AttemptCost, by: Sequence[str]) -> list[tuple[str, ...]]:
    """The group keys of one fact; a run with several tags counts once under each tag."""
    values: list[list[str]] = []
    for name in by:
        if name == "provider":
            values.append([fact.provider])
        elif name == "model":
            values.append([fact.model or "not reported"])
        elif name == "day":
            values.append([fact.started_at.astimezone(UTC).date().isoformat()])
        elif name == "tag":
            values.append(list(fact.tags) or ["(no tag)"])
        else:
            values.append([fact.job_name])
    keys: list[tuple[str, ...]] = [()]
    for options in values:
        keys = [(*k, v) for k in keys for v in options]
    return keys


def _sum(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return math.fsum(present) if present else None


def _row(keys: tuple[str, ...], facts: Sequence[AttemptCost]) -> CostRow:
    def spent(f: AttemptCost) -> float:
        return f.cost_usd or 0.0

    return CostRow(
        keys=keys,
        runs=len({f.run_id for f in facts}),
        attempts=len(facts),
        failed_attempts=sum(not f.ok for f in facts),
        tokens=Tokens(
            input=sum(f.input_tokens or 0 for f in facts),
            output=sum(f.output_tokens or 0 for f in facts),
            reasoning=sum(f.reasoning_tokens or 0 for f in facts),
            cached=sum(f.cached_input_tokens or 0 for f in facts),
        ),
        cost=math.fsum(spent(f) for f in facts),
        cost_reported=_sum(f.cost_reported for f in facts),
        cost_computed=_sum(f.cost_computed for f in facts),
        cost_wasted=math.fsum(spent(f) for f in facts if not f.ok),
    )


def build_cost_context(
    facts: Sequence[AttemptCost],
    *,
    by: Sequence[str] = ("provider",),
    since: datetime | None = None,
    until: datetime | None = None,
    generated_at: datetime | None = None,
) -> CostContext:
    """Group the attempts of ``facts`` by the ``by`` keys (see GROUP_KEYS), most expensive first."""
    unknown = [name for name in by if name not in GROUP_KEYS]
    if unknown:
        raise ValueError(f"cannot group by {', '.join(unknown)} (choose from {', '.join(GROUP_KEYS)})")
    groups: dict[tuple[str, ...], list[AttemptCost]] = {}
    for fact in facts:
        for key in _keys(fact, by):
            groups.setdefault(key, []).append(fact)
    rows = sorted((_row(k, v) for k, v in groups.items()), key=lambda r: (-r.cost, r.keys))
    window = f"from {since:%Y-%m-%d} " if since else ""
    window += f"until {until:%Y-%m-%d}" if until else ""
    note = (
        "A run with several tags counts under each of them, so the rows add up to more than the total."
        if "tag" in by
        else ""
    )
    top = [(" / ".join(r.keys), r.cost) for r in rows[:CHART_ROWS]]
    chart = Chart(
        id="cost",
        title="Most expensive groups",
        caption=f"USD per group, the {min(len(rows), CHART_ROWS)} most expensive of {len(rows)}.",
        svg=charts.hbars(top, title=f"Cost by {', '.join(by)}", unit="USD"),
    )
    return CostContext(
        title=f"Cost by {', '.join(by)}" + (f" {window.strip()}" if window else ""),
        generated_at=generated_at or datetime.now(UTC),
        since=since,
        until=until,
        by=tuple(by),
        rows=tuple(rows),
        total=_row(("total", *[""] * (len(by) - 1)), facts),
        note=note,
        chart=chart,
    )


def cost_table(context: CostContext) -> Table:
    """The terminal form of the cost report."""
    table = Table(title=context.title, caption=context.note or None)
    for name in context.by:
        table.add_column(name)
    for name in ("runs", "attempts", "failed", "tokens in", "cached", "tokens out", "reasoning"):
        table.add_column(name, justify="right")
    for name in ("cost USD", "reported USD", "computed USD", "wasted USD"):
        table.add_column(name, justify="right")

    def money(value: float | None) -> str:
        return "-" if value is None else f"{value:.4f}"

    for row in (*context.rows, context.total):
        table.add_row(
            *row.keys,
            f"{row.runs:,}",
            f"{row.attempts:,}",
            f"{row.failed_attempts:,}",
            f"{row.tokens.input:,}",
            f"{row.tokens.cached:,}",
            f"{row.tokens.output:,}",
            f"{row.tokens.reasoning:,}",
            money(row.cost),
            money(row.cost_reported),
            money(row.cost_computed),
            money(row.cost_wasted),
            end_section=row is context.rows[-1] if context.rows else False,
        )
    return table
