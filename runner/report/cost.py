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
    from collections.abc import Callable, Iterable, Sequence

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
    # Attempts whose provider reported no model (failed ones, Runware's), filed under the model
    # their request named; counted whatever the grouping, shown where it is by model.
    attributed_attempts: int
    cost_attributed: float


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
            # A judge's grading requests are filed apart: grading cost is part of the total, shown as such.
            values.append([f"{fact.provider} (grading)" if fact.grading else fact.provider])
        elif name == "model":
            values.append([_model(fact) or "not reported"])
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


def _model(fact: AttemptCost) -> str | None:
    """The model an attempt is filed under: as reported, else as its request named it."""
    return fact.model or fact.requested_model


def _is_attributed(fact: AttemptCost) -> bool:
    return fact.model is None and fact.requested_model is not None


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
        attributed_attempts=sum(_is_attributed(f) for f in facts),
        cost_attributed=math.fsum(spent(f) for f in facts if _is_attributed(f)),
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
    total = _row(("total", *[""] * (len(by) - 1)), facts)
    notes = []
    if "tag" in by:
        notes.append(
            "A run with several tags counts under each of them, so the rows add up to more than the total."
        )
    if "model" in by and total.attributed_attempts:
        notes.append(
            f"{total.attributed_attempts:,} attempts (${total.cost_attributed:.4f}) are attributed: their "
            "provider reported no model (a failed attempt, Runware), so they count under the model their "
            "request named; the rest are as reported."
        )
    note = " ".join(notes)
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
        total=total,
        note=note,
        chart=chart,
    )


# Columns a narrow terminal leaves out first (least telling first); the group keys and "cost USD" stay.
DROP_ORDER: Final = (
    "reasoning",
    "cached",
    "runs",
    "computed USD",
    "reported USD",
    "tokens in",
    "tokens out",
    "failed",
    "wasted USD",
    "attributed",
    "attempts",
)


KEY_MIN_WIDTH: Final = 10  # a group key may fold onto more lines, but no narrower than this


@dataclass(frozen=True, slots=True, kw_only=True)
class _Column:
    name: str
    cells: tuple[str, ...]  # one per row, the total last
    is_number: bool

    @property
    def min_width(self) -> int:
        """The narrowest this column may get: a number's full width; a header may wrap at spaces."""
        widest = max((len(cell) for cell in self.cells), default=1)
        header = max(len(word) for word in self.name.split())
        return max(widest, header) if self.is_number else max(min(widest, KEY_MIN_WIDTH), header)


def _columns(context: CostContext) -> list[_Column]:
    """Every column of the terminal table with its cells already formatted."""
    rows = (*context.rows, context.total)

    def money(value: float | None) -> str:
        return "-" if value is None else f"{value:.4f}"

    columns = [
        _Column(name=name, cells=tuple(r.keys[i] for r in rows), is_number=False)
        for i, name in enumerate(context.by)
    ]
    counts: list[tuple[str, Callable[[CostRow], int]]] = [
        ("runs", lambda r: r.runs),
        ("attempts", lambda r: r.attempts),
        ("failed", lambda r: r.failed_attempts),
        ("tokens in", lambda r: r.tokens.input),
        ("cached", lambda r: r.tokens.cached),
        ("tokens out", lambda r: r.tokens.output),
        ("reasoning", lambda r: r.tokens.reasoning),
    ]
    if "model" in context.by:
        counts.append(("attributed", lambda r: r.attributed_attempts))
    columns += [
        _Column(name=n, cells=tuple(f"{get(r):,}" for r in rows), is_number=True) for n, get in counts
    ]
    costs: list[tuple[str, Callable[[CostRow], float | None]]] = [
        ("cost USD", lambda r: r.cost),
        ("reported USD", lambda r: r.cost_reported),
        ("computed USD", lambda r: r.cost_computed),
        ("wasted USD", lambda r: r.cost_wasted),
    ]
    columns += [_Column(name=n, cells=tuple(money(get(r)) for r in rows), is_number=True) for n, get in costs]
    return columns


def _table(context: CostContext, columns: Sequence[_Column], left_out: Sequence[str]) -> Table:
    caption = [context.note] if context.note else []
    if left_out:
        caption.append(f"Too narrow for {', '.join(left_out)}: widen the terminal or use --html.")
    table = Table(title=context.title, caption=" ".join(caption) or None)
    for column in columns:
        if column.is_number:
            # A number is never wrapped or cut: the column has a fixed width, its widest cell's
            # (rich never squeezes a fixed-width column), and when the terminal cannot hold every
            # column, whole columns are left out instead. The header wraps at its spaces.
            table.add_column(column.name, justify="right", width=column.min_width)
        else:
            table.add_column(column.name, overflow="fold", min_width=column.min_width)
    last = len(context.rows) - 1
    for index, cells in enumerate(zip(*(c.cells for c in columns), strict=True)):
        table.add_row(*cells, end_section=index == last)
    return table


def cost_table(context: CostContext, width: int | None = None) -> Table:
    """The terminal form of the cost report, fitted to ``width`` columns (None: no limit).

    Columns are left out in ``DROP_ORDER`` until the table's narrowest layout fits, so rich never
    has to squeeze a number into ``0.…``; the caption names what was left out.
    """
    columns = _columns(context)
    left_out: list[str] = []
    for name in DROP_ORDER:
        if width is None or _narrowest(columns) <= width:
            break
        columns = [c for c in columns if c.name != name]
        left_out.append(name)
    return _table(context, columns, left_out)


def _narrowest(columns: Sequence[_Column]) -> int:
    """The table's narrowest width: each column's minimum, one space of padding either side, and
    the box's rules (one between each two columns and one at either edge)."""
    return sum(c.min_width + 2 for c in columns) + len(columns) + 1
