"""The run report flags its timing figures when runner's own loop lagged past the threshold."""

from __future__ import annotations

from dataclasses import replace

import pytest

from runner.model import LOOP_LAG_THRESHOLD_S, LoopLag
from runner.report.render import make_environment, render
from runner.report.run import build_run_context, timing_note
from runner.run.lag import THRESHOLD_S
from tests.report.factories import make_run


def lag(p99_s: float) -> LoopLag:
    return LoopLag(p50_s=0.0003, p99_s=p99_s, max_s=p99_s * 3, samples=500, interval_s=0.01)


def test_the_report_and_the_run_use_one_threshold() -> None:
    """The watcher's threshold and the report's are the same figure (the vocabulary's)."""
    assert THRESHOLD_S == LOOP_LAG_THRESHOLD_S == 0.005


@pytest.mark.parametrize(
    ("loop_lag", "flagged"),
    [
        pytest.param(None, False, id="not-measured"),
        pytest.param(lag(0.001), False, id="clean"),
        pytest.param(lag(LOOP_LAG_THRESHOLD_S), False, id="at-threshold"),
        pytest.param(lag(0.0123), True, id="lagging"),
    ],
)
def test_the_context_carries_a_note_only_past_the_threshold(loop_lag: LoopLag | None, flagged: bool) -> None:
    """Over 5 ms at p99 the context says how much, and that timing reads high; else it says nothing."""
    data = make_run(6)
    context = build_run_context(replace(data, run=replace(data.run, loop_lag=loop_lag)))
    assert (context.timing_note is not None) == flagged
    if flagged:
        assert context.timing_note == timing_note(loop_lag)
        assert context.timing_note is not None
        assert context.timing_note.startswith("runner's loop lagged: p99 12.3 ms")
        assert "timing figures may read high" in context.timing_note


def test_the_rendered_report_shows_the_note_beside_the_timing_tables() -> None:
    """The HTML says it above the per-provider table (TTFT quantiles) and the unit cards (TTFT, TTFR,
    duration); a clean run's page does not."""
    data = make_run(6)
    lagged = render(
        make_environment(), build_run_context(replace(data, run=replace(data.run, loop_lag=lag(0.02))))
    )
    clean = render(
        make_environment(), build_run_context(replace(data, run=replace(data.run, loop_lag=lag(0.001))))
    )
    assert lagged.count('<p class="note lagged">runner&#39;s loop lagged: p99 20.0 ms') == 2
    providers = lagged.index('id="providers"')
    assert providers < lagged.index("note lagged") < lagged.index("TTFT p50")
    assert "note lagged" not in clean
