"""The progress display: an ETA people can read, shown only once it means something, and a final frame."""

from __future__ import annotations

import io
import logging

import pytest
import trio
from rich.console import Console

from runner.run.progress import (
    MIN_UNITS_FOR_ETA,
    Progress,
    RunTotals,
    WorkerTotals,
    format_duration,
    show_progress,
)


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


def test_a_line_counts_the_whole_run_once_read() -> None:
    """A process on a run others work too counts the run's units, names who works it, and keeps its own."""
    progress = Progress(total=2000, started_at=0.0, already_done=400)
    progress.of("p").done = 814
    workers = {
        "vm1:812:a1b2c3": WorkerTotals(finished=1180, in_flight=16),
        "vm2:77:d4e5f6": WorkerTotals(finished=814, in_flight=0),
    }
    progress.see_run(RunTotals(ok=1990, failed=4, in_flight=16, pending=0, workers=workers))
    line = progress.line(now=10.0)
    assert line.startswith("1994/2010 units | ")
    assert (
        "run: ok 1990 failed 4 in flight 16; by 2 processes: vm1:812:a1b2c3 (1180 done, 16 in flight)" in line
    )
    assert "| this process: ok 814 failed 0 in flight 0" in line


def test_the_whole_run_line_of_a_process_that_works_no_unit() -> None:
    """The --workers command shows only the run's totals (it has no counters of its own)."""
    progress = Progress(total=0, started_at=0.0)
    many = {f"h:{pid}:ab": WorkerTotals(finished=1) for pid in range(6)}
    progress.see_run(RunTotals(ok=6, failed=0, in_flight=0, pending=0, workers=many))
    line = progress.line(now=1.0)
    assert line == (
        "6/6 units | eta 0s | run: ok 6 failed 0 in flight 0; by 6 processes: h:0:ab (1 done, 0 in flight), "
        "h:1:ab (1 done, 0 in flight), h:2:ab (1 done, 0 in flight), h:3:ab (1 done, 0 in flight) and 2 more"
    )


async def test_the_last_plain_line_reads_the_run_again() -> None:
    """Totals read at the end, not as they stood at the last line: no "1214/2000" once the run is done."""
    stored = {"ok": 3}

    def read() -> RunTotals:
        return RunTotals(ok=stored["ok"], failed=0, in_flight=0, pending=10 - stored["ok"], workers={})

    lines: list[str] = []
    logged = trio.Event()

    class Lines(logging.Handler):  # called from the display's trio task: it may set a trio Event
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())
            logged.set()

    handler = Lines()
    logger = logging.getLogger("runner.run.progress")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    progress = Progress(total=10, started_at=trio.current_time())
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: show_progress(progress, "plain", interval=0.2, read_run=read))
            with trio.fail_after(10):
                await logged.wait()
            stored["ok"] = 10  # the other processes finish the run between two lines
            nursery.cancel_scope.cancel()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    assert lines[0].startswith("3/10 units"), lines
    assert lines[-1].startswith("10/10 units"), lines


def test_grading_requests_are_counted_apart_from_the_jobs_units() -> None:
    """A judge's finished grading requests show as ``graded N``, never in the units' counts."""
    progress = Progress(total=2, started_at=0.0)
    progress.of("target").done = 2
    judge = progress.of("judge")
    judge.grading, judge.done, judge.failed = True, 1, 1
    assert (progress.finished, progress.outcomes(), progress.graded) == (2, (2, 0), 2)
    line = progress.line(now=1.0)
    assert line.startswith("2/2 units | ok 2 failed 0 ")
    assert "| graded 2" in line
