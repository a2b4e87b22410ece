"""The run report's charts, drawn from a ``RunScan``: latency (histograms, box plots, scatter), errors
and retries over time, errors by kind over time, cost. Pure: a scan in, ``Chart``s out."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from markupsafe import Markup

from runner.report import charts
from runner.report.common import Chart

if TYPE_CHECKING:
    from collections.abc import Sequence

    from runner.report.scan import RunScan
    from runner.report.tally import Sample

NO_SUCCESS: Final = "no successful attempt"  # said instead of a chart of successful attempts' figures
NO_TROUBLE: Final = "no failed attempt"
TIME_BINS: Final = 24
KINDS_SHOWN: Final = 6  # error kinds charted over time; rarer ones are summed as "other kinds"


def _sampled(samples: Sequence[Sample[float]]) -> str:
    """The caption's note when a chart draws a sample of its values."""
    if not any(s.is_sample for s in samples):
        return ""
    kept, seen = sum(len(s.items) for s in samples), sum(s.seen for s in samples)
    return f" Drawn from a uniform sample of {kept:,} of {seen:,} values."


def _empty(chart_id: str, title: str, caption: str, why: str) -> Chart:
    # Empty axes would read as "nothing was slow"; say why there is nothing to draw.
    return Chart(id=chart_id, title=title, caption=caption, svg=Markup(), empty=why)


def latency_charts(scan: RunScan) -> tuple[Chart, ...]:
    """TTFT histograms, the latency scatter, and box plots of TTFT and inter-chunk gap per provider."""
    names = sorted(scan.providers)
    ttfts = [scan.providers[p].ttft for p in names]
    gaps = [scan.providers[p].gap_p50 for p in names]
    ttft_caption = (
        "How many successful attempts got their first answer token after how long; one row per provider."
    )
    latency_caption = (
        "Each dot is a successful attempt: when it started (x) and how long it took end to end (y)."
    )
    box_caption = (
        "Per provider, over successful attempts: the box spans the 25th to 75th percentile, the thick line "
        "is the median, the whiskers reach the 5th and 95th percentiles."
    )
    gap_caption = box_caption + " Each attempt counts with its stream's median gap between chunks."
    if not any(s.seen for s in ttfts) and not any(p.seen for p in scan.points.values()):
        return (
            _empty("ttft", "Time to first token", ttft_caption, NO_SUCCESS),
            _empty("latency", "Latency over the run", latency_caption, NO_SUCCESS),
            _empty("ttft-box", "TTFT distribution per provider", box_caption, NO_SUCCESS),
            _empty("gap-box", "Inter-chunk gap per provider", gap_caption, NO_SUCCESS),
        )
    ttft = charts.histograms(
        [(p, s.items) for p, s in zip(names, ttfts, strict=True)],
        title="Time to first token per provider",
        x_label="time to first token",
        unit="s",
    )
    # Points sorted: the same chart whatever order the units were read in.
    latency = charts.scatter(
        [(p, sorted(scan.points[p].items)) for p in names],
        title="Latency over the run",
        x_label="attempt start, seconds after run start",
        y_label="attempt duration",
        unit="s",
    )
    ttft_box = charts.boxplots(
        [(p, s.items) for p, s in zip(names, ttfts, strict=True)],
        title="Time to first token per provider",
        x_label="time to first token",
        unit="s",
    )
    gap_box = charts.boxplots(
        [(p, s.items) for p, s in zip(names, gaps, strict=True)],
        title="Inter-chunk gap per provider",
        x_label="median gap between chunks",
        unit="s",
    )
    points = list(scan.points.values())
    return (
        Chart(id="ttft", title="Time to first token", caption=ttft_caption + _sampled(ttfts), svg=ttft),
        Chart(
            id="latency",
            title="Latency over the run",
            caption=latency_caption
            + (" A uniform sample of the attempts is drawn." if any(p.is_sample for p in points) else ""),
            svg=latency,
        ),
        Chart(
            id="ttft-box",
            title="TTFT distribution per provider",
            caption=box_caption + _sampled(ttfts),
            svg=ttft_box,
        ),
        Chart(
            id="gap-box",
            title="Inter-chunk gap per provider",
            caption=gap_caption + _sampled(gaps),
            svg=gap_box,
        ),
    )


def _bins(scan: RunScan) -> tuple[float, list[str], list[int]]:
    """The time bins' width, labels, and each attempt in trouble's bin."""
    trouble = scan.trouble
    width = (trouble.span_s or 1.0) / TIME_BINS
    labels = [f"{i * width:.3g}s" for i in range(TIME_BINS)]  # .3g: sub-second runs need decimals
    slots = [min(TIME_BINS - 1, max(0, int(offset / width))) for offset in trouble.offsets]
    return width, labels, slots


def trouble_chart(scan: RunScan) -> Chart:
    """Failed and retried attempts per time bin of the run."""
    width, labels, slots = _bins(scan)
    errors, retries = [0.0] * TIME_BINS, [0.0] * TIME_BINS
    for slot, kind, retry in zip(slots, scan.trouble.kinds, scan.trouble.retries, strict=True):
        errors[slot] += kind >= 0
        retries[slot] += retry
    svg = charts.grouped_bars(
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
        svg=svg,
    )


def error_kinds_chart(scan: RunScan) -> Chart:
    """Failed attempts per time bin, one bar per error kind (the most frequent first)."""
    title, caption = "Errors by kind over time", "Failed attempts per time bin of the run, by error kind."
    trouble = scan.trouble
    totals = [0] * len(trouble.names)
    for kind in trouble.kinds:
        if kind >= 0:
            totals[kind] += 1
    if not any(totals):
        return _empty("error-kinds", title, caption, NO_TROUBLE)
    ranked = sorted(range(len(totals)), key=lambda k: (-totals[k], trouble.names[k]))
    shown = [k for k in ranked if totals[k]][:KINDS_SHOWN]
    series = {k: [0.0] * TIME_BINS for k in shown}
    other = [0.0] * TIME_BINS
    width, labels, slots = _bins(scan)
    for slot, kind in zip(slots, trouble.kinds, strict=True):
        if kind >= 0:
            series.get(kind, other)[slot] += 1
    named = [(trouble.names[k], series[k]) for k in shown]
    if any(other):
        named.append(("other kinds", other))
    svg = charts.grouped_bars(
        labels, named, title=title, x_label=f"time bin of {width:.3g} s after run start", y_label="attempts"
    )
    return Chart(id="error-kinds", title=title, caption=caption, svg=svg)


def run_charts(scan: RunScan) -> tuple[Chart, ...]:
    """Every chart of the run report, in the order it shows them."""
    costs = [(p, scan.providers[p].stats().cost or 0.0) for p in sorted(scan.providers)]
    cost = charts.hbars(costs, title="Cost per provider", unit="USD")
    ttft, latency, ttft_box, gap_box = latency_charts(scan)
    return (
        ttft,
        latency,
        ttft_box,
        gap_box,
        trouble_chart(scan),
        error_kinds_chart(scan),
        Chart(
            id="cost",
            title="Cost per provider",
            caption="USD: provider-reported cost where sent, "
            "else computed from the run's frozen prices; failed attempts included.",
            svg=cost,
        ),
    )
