"""Charts as inline SVG strings drawn from the data: no script, no library, nothing from the network.

Every label that comes from data (provider names, run ids) goes through ``escape``; the result is
``Markup`` only because it is built here from escaped parts. Each mark carries a ``<title>`` so that
hovering it says what it is and its value, with units.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Final

from markupsafe import Markup, escape

from runner.report.stats import percentile

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

# Colour-blind-safe (Okabe-Ito), assigned by series order so a provider keeps its colour per chart.
PALETTE: Final = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442", "#000000")
WIDTH: Final = 720
LEFT: Final = 64
RIGHT: Final = 36  # room for the last x label, centred on the plot edge
TOP: Final = 28
BOTTOM: Final = 44


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def nice_ticks(high: float, count: int = 5) -> list[float]:
    """Round tick values from 0 to at least ``high`` (1, 2 or 5 times a power of ten apart)."""
    if high <= 0 or not math.isfinite(high):
        return [0.0, 1.0]
    raw = high / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    return [i * step for i in range(math.ceil(high / step - 1e-9) + 1)]


def fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def _frame(height: int, title: str, body: list[str]) -> Markup:
    text = escape(title)
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" viewBox="0 0 {WIDTH} {height}" '
        f'width="{WIDTH}" height="{height}"><title>{text}</title>{"".join(body)}</svg>'
    )


def _y_axis(ticks: list[float], plot_h: float, y: Callable[[float], float], label: str) -> list[str]:
    parts = []
    for tick in ticks:
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(tick):.1f}" y2="{y(tick):.1f}"/>'
            f'<text class="tick" x="{LEFT - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">{fmt(tick)}</text>'
        )
    parts.append(
        f'<text class="axis-label" x="14" y="{TOP + plot_h / 2:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 14 {TOP + plot_h / 2:.1f})">{escape(label)}</text>'
    )
    return parts


def _x_label(height: int, label: str) -> str:
    return (
        f'<text class="axis-label" x="{(LEFT + WIDTH - RIGHT) / 2:.1f}" y="{height - 6}" '
        f'text-anchor="middle">{escape(label)}</text>'
    )


def _legend(names: Sequence[str]) -> list[str]:
    parts, x = [], LEFT
    for index, name in enumerate(names):
        parts.append(
            f'<rect x="{x}" y="8" width="10" height="10" fill="{colour(index)}"/>'
            f'<text class="legend" x="{x + 14}" y="17">{escape(name)}</text>'
        )
        x += 24 + 7 * len(name)
    return parts


def histograms(
    series: Sequence[tuple[str, Sequence[float]]], *, title: str, x_label: str, unit: str
) -> Markup:
    """One histogram row per series on a shared x axis (small multiples); 30 equal-width bins."""
    values = [v for _, vs in series for v in vs]
    row_h, bins = 70, 30
    height = TOP + row_h * max(1, len(series)) + BOTTOM
    high = max(values, default=1.0) or 1.0
    ticks = nice_ticks(high)
    span = ticks[-1]
    plot_w = WIDTH - LEFT - RIGHT
    bin_w = span / bins
    body: list[str] = []
    for tick in ticks:
        x = LEFT + plot_w * tick / span
        body.append(
            f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{height - BOTTOM}"/>'
            f'<text class="tick" x="{x:.1f}" y="{height - BOTTOM + 14}" '
            f'text-anchor="middle">{fmt(tick)}</text>'
        )
    for row, (name, vs) in enumerate(series):
        counts = [0] * bins
        for v in vs:
            counts[min(bins - 1, int(v / bin_w))] += 1
        top, peak = TOP + row * row_h, max(counts, default=0) or 1
        body.append(f'<text class="legend" x="{LEFT + 4}" y="{top + 12}">{escape(name)} (n={len(vs)})</text>')
        for i, count in enumerate(counts):
            if not count:
                continue
            h = (row_h - 18) * count / peak
            lo, hi = i * bin_w, (i + 1) * bin_w
            body.append(
                f'<rect x="{LEFT + plot_w * i / bins + 0.5:.1f}" y="{top + row_h - h:.1f}" '
                f'width="{plot_w / bins - 1:.1f}" height="{h:.1f}" fill="{colour(row)}">'
                f"<title>{escape(name)}: {count} attempts with {escape(x_label)} "
                f"{fmt(lo)}-{fmt(hi)} {escape(unit)}</title></rect>"
            )
    body.append(_x_label(height, f"{x_label} ({unit})"))
    return _frame(height, title, body)


def scatter(
    series: Sequence[tuple[str, Sequence[tuple[float, float]]]],
    *,
    title: str,
    x_label: str,
    y_label: str,
    unit: str,
    max_points: int = 2500,
) -> Markup:
    """Points per series, thinned evenly to ``max_points`` in all so the SVG stays small at scale."""
    total = sum(len(points) for _, points in series)
    stride = max(1, math.ceil(total / max_points))
    height = 300
    plot_h, plot_w = height - TOP - BOTTOM, WIDTH - LEFT - RIGHT
    xs = [x for _, ps in series for x, _ in ps]
    ys = [y for _, ps in series for _, y in ps]
    x_ticks, y_ticks = nice_ticks(max(xs, default=1.0)), nice_ticks(max(ys, default=1.0))

    def px(x: float) -> float:
        return LEFT + plot_w * x / x_ticks[-1]

    def py(y: float) -> float:
        return TOP + plot_h - plot_h * y / y_ticks[-1]

    body = _y_axis(y_ticks, plot_h, py, f"{y_label} ({unit})")
    for tick in x_ticks:
        body.append(
            f'<text class="tick" x="{px(tick):.1f}" y="{height - BOTTOM + 14}" '
            f'text-anchor="middle">{fmt(tick)}</text>'
        )
    for index, (name, points) in enumerate(series):
        for x, y in points[::stride]:
            body.append(
                f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="2.5" fill="{colour(index)}" '
                f'fill-opacity="0.6">'
                f"<title>{escape(name)}: {fmt(y)} {escape(unit)} at {fmt(x)} s</title></circle>"
            )
    body += _legend([name for name, _ in series])
    note = f" (every {stride}th point shown)" if stride > 1 else ""
    body.append(_x_label(height, f"{x_label} (s){note}"))
    return _frame(height, title, body)


def grouped_bars(
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float]]],
    *,
    title: str,
    x_label: str,
    y_label: str,
) -> Markup:
    """Bars per category (``labels``), one bar per series side by side."""
    height = 260
    plot_h, plot_w = height - TOP - BOTTOM, WIDTH - LEFT - RIGHT
    y_ticks = nice_ticks(max((v for _, vs in series for v in vs), default=1.0))

    def py(y: float) -> float:
        return TOP + plot_h - plot_h * y / y_ticks[-1]

    body = _y_axis(y_ticks, plot_h, py, y_label)
    slot = plot_w / max(1, len(labels))
    bar = slot * 0.8 / max(1, len(series))
    every = max(1, math.ceil(len(labels) / 10))
    for i, label in enumerate(labels):
        if i % every == 0:
            body.append(
                f'<text class="tick" x="{LEFT + slot * (i + 0.5):.1f}" y="{height - BOTTOM + 14}" '
                f'text-anchor="middle">{escape(label)}</text>'
            )
        for s, (name, values) in enumerate(series):
            value = values[i]
            if value <= 0:
                continue
            body.append(
                f'<rect x="{LEFT + slot * (i + 0.1) + bar * s:.1f}" y="{py(value):.1f}" width="{bar:.1f}" '
                f'height="{py(0) - py(value):.1f}" fill="{colour(s)}"><title>{escape(name)}: {fmt(value)} '
                f"in {escape(x_label)} {escape(label)}</title></rect>"
            )
    body += _legend([name for name, _ in series])
    body.append(_x_label(height, x_label))
    return _frame(height, title, body)


def hbars(items: Sequence[tuple[str, float]], *, title: str, unit: str) -> Markup:
    """One horizontal bar per item with its value written at the end."""
    row = 26
    height = TOP + row * max(1, len(items)) + 16
    left = 160
    high = max((v for _, v in items), default=1.0) or 1.0
    body: list[str] = []
    for i, (name, value) in enumerate(items):
        y = TOP + i * row
        w = (WIDTH - left - 110) * value / high
        body.append(
            f'<text class="tick" x="{left - 6}" y="{y + 15}" text-anchor="end">{escape(name)}</text>'
            f'<rect x="{left}" y="{y + 3}" width="{w:.1f}" height="{row - 8}" fill="{colour(i)}">'
            f"<title>{escape(name)}: {value:.6f} {escape(unit)}</title></rect>"
            f'<text class="tick" x="{left + w + 6:.1f}" y="{y + 15}">{value:.4f} {escape(unit)}</text>'
        )
    return _frame(height, title, body)


def lines(
    x_labels: Sequence[str], series: Sequence[tuple[str, Sequence[float | None]]], *, title: str, y_label: str
) -> Markup:
    """One line per series across the x positions (runs, oldest first); gaps where a value is None."""
    height = 260
    plot_h, plot_w = height - TOP - BOTTOM, WIDTH - LEFT - RIGHT
    y_ticks = nice_ticks(max((v for _, vs in series for v in vs if v is not None), default=1.0))
    step = plot_w / max(1, len(x_labels) - 1) if len(x_labels) > 1 else 0.0

    def px(i: int) -> float:
        return LEFT + step * i if step else LEFT + plot_w / 2

    def py(y: float) -> float:
        return TOP + plot_h - plot_h * y / y_ticks[-1]

    body = _y_axis(y_ticks, plot_h, py, y_label)
    every = max(1, math.ceil(len(x_labels) / 8))
    for i, label in enumerate(x_labels):
        if i % every == 0:
            body.append(
                f'<text class="tick" x="{px(i):.1f}" y="{height - BOTTOM + 14}" '
                f'text-anchor="middle">{escape(label)}</text>'
            )
    for s, (name, values) in enumerate(series):
        points = [(px(i), py(v)) for i, v in enumerate(values) if v is not None]
        if len(points) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
            body.append(f'<polyline points="{path}" fill="none" stroke="{colour(s)}" stroke-width="2"/>')
        for i, v in enumerate(values):
            if v is not None:
                body.append(
                    f'<circle cx="{px(i):.1f}" cy="{py(v):.1f}" r="3.5" fill="{colour(s)}">'
                    f"<title>{escape(name)} "
                    f"in run {escape(x_labels[i])}: {fmt(v)} {escape(y_label)}</title></circle>"
                )
    body += _legend([name for name, _ in series])
    body.append(_x_label(height, "run (oldest to newest)"))
    return _frame(height, title, body)


def boxplots(series: Sequence[tuple[str, Sequence[float]]], *, title: str, x_label: str, unit: str) -> Markup:
    """One horizontal box per series on a shared x axis: the box spans p25 to p75 with a line at the
    median, the whiskers p5 to p95 (the axis ends at the largest p95: a few outliers don't squash it)."""
    row_h = 34
    height = TOP + row_h * max(1, len(series)) + BOTTOM
    left = 160
    plot_w = WIDTH - left - RIGHT
    quantiles = [
        (name, [percentile(vs, q) or 0.0 for q in (5, 25, 50, 75, 95)], len(vs)) for name, vs in series
    ]
    ticks = nice_ticks(max((qs[-1] for _, qs, n in quantiles if n), default=1.0) or 1.0)
    span = ticks[-1]

    def px(value: float) -> float:
        return left + plot_w * min(value, span) / span

    body: list[str] = []
    for tick in ticks:
        body.append(
            f'<line class="grid" x1="{px(tick):.1f}" x2="{px(tick):.1f}" y1="{TOP}" y2="{height - BOTTOM}"/>'
            f'<text class="tick" x="{px(tick):.1f}" y="{height - BOTTOM + 14}" '
            f'text-anchor="middle">{fmt(tick)}</text>'
        )
    for row, (name, (p5, p25, p50, p75, p95), n) in enumerate(quantiles):
        mid = TOP + row * row_h + row_h / 2
        body.append(
            f'<text class="tick" x="{left - 6}" y="{mid + 4:.1f}" '
            f'text-anchor="end">{escape(name)} (n={n})</text>'
        )
        if not n:
            continue
        tip = (
            f"<title>{escape(name)}: {escape(x_label)} p5 {fmt(p5)}, p25 {fmt(p25)}, median {fmt(p50)}, "
            f"p75 {fmt(p75)}, p95 {fmt(p95)} {escape(unit)} (n={n})</title>"
        )
        ink = colour(row)
        box_w = max(1.0, px(p75) - px(p25))
        body.append(
            f'<g class="box">{tip}'
            + _segment(px(p5), px(p95), mid, mid, ink)
            + _segment(px(p5), px(p5), mid - 6, mid + 6, ink)
            + _segment(px(p95), px(p95), mid - 6, mid + 6, ink)
            + f'<rect x="{px(p25):.1f}" y="{mid - 10:.1f}" width="{box_w:.1f}" height="20" '
            f'fill="{ink}" fill-opacity="0.35" stroke="{ink}"/>'
            + _segment(px(p50), px(p50), mid - 10, mid + 10, ink, width=2.5)
            + "</g>"
        )
    body.append(_x_label(height, f"{x_label} ({unit})"))
    return _frame(height, title, body)


def _segment(x1: float, x2: float, y1: float, y2: float, ink: str, *, width: float = 1.0) -> str:
    return (
        f'<line x1="{x1:.1f}" x2="{x2:.1f}" y1="{y1:.1f}" y2="{y2:.1f}" '
        f'stroke="{ink}" stroke-width="{width:g}"/>'
    )
