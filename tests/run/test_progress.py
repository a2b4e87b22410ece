"""The progress display: an ETA people can read, shown only once it means something, and a final frame."""

from __future__ import annotations

import io

import pytest
import trio
from rich.console import Console

from runner.run.progress import MIN_UNITS_FOR_ETA, Progress, format_duration, show_progress


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (42.4, "42s"), (725, "12m05s"), (3600, "1h00m"), (11_220, "3h07m"), (8_893_103, "102d22h")],
)
def test_durations_read_as_people_write_them(seconds: float, text: str) -> None:
    """At most two units: ``eta 8893103s`` becomes ``102d22h``."""
    assert format_duration(seconds) == text


def test_eta_is_unknown_until_enough_units_finished() -> None:
    """One slow first unit of a big run is no rate: ``?`` until MIN_UNITS_FOR_ETA finished here."""
    progress = Progress(total=10_000, started_at=0.0)
    progress.of("p").done = 1
    assert progress.eta_seconds(now=900.0) is None
    assert "| eta ?" in progress.line(now=900.0)
    progress.of("p").done = MIN_UNITS_FOR_ETA
    assert progress.eta_seconds(now=10.0) == pytest.approx((10_000 - MIN_UNITS_FOR_ETA) * 2.0)
    assert progress.line(now=10.0).endswith("| eta 5h33m")


def test_eta_is_zero_when_nothing_is_left() -> None:
    """A resumed run whose units were all done before shows ``eta 0s``, not ``?``."""
    progress = Progress(total=3, started_at=0.0, already_done=3)
    assert progress.line(now=1.0).endswith("| eta 0s")


async def test_live_display_draws_the_final_counts_when_stopped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The frame left above the summary shows the run as it ended, not as it was half a second before."""
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=200, color_system=None)
    progress = Progress(total=7, started_at=trio.current_time())
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: show_progress(progress, "live", console=console))
        await trio.sleep(0.6)
        progress.of("sim").done = 7  # the run finishes between two refreshes
        nursery.cancel_scope.cancel()
    last_frame = out.getvalue().rsplit("7/7 units", 1)
    assert len(last_frame) == 2, out.getvalue()
    assert "0/7 units" not in last_frame[1]
