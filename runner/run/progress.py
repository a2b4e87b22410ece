"""Run progress: counters the engine bumps, and a display task (live table, plain lines, or quiet).

The counters are plain attributes touched from trio tasks on one thread, so no locking is needed; they
are the run's one count (the engine's feeder claims by ``in_flight``). The display only reads them.

A run may be worked by several processes (``--join``, ``--workers``): the display also shows the whole
run's totals, per process, as the database has them (``RunTotals``, read every few seconds, never per
unit: a read counts every unit of the run).
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Literal

import trio

from runner.errors import StorageError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from rich.console import Console
    from rich.table import Table

log = logging.getLogger(__name__)

DisplayMode = Literal["live", "plain", "quiet"]

# Fewer units finished than this make a rate that is mostly noise (one slow first unit of a large
# run extrapolated to "eta 8893103s"): the ETA shows "?" until then.
MIN_UNITS_FOR_ETA = 5
# The whole run's totals are read from the database at most this often (each read counts the run's
# units: modest, so a display never competes with the writers).
RUN_TOTALS_INTERVAL: Final = 5.0
# Processes named one by one in a progress line; more are counted.
_NAMED_PROCESSES: Final = 4


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerTotals:
    """One process's share of a run: units it holds now and units it finished."""

    in_flight: int = 0
    finished: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class RunTotals:
    """The whole run as the database has it: every process's units, not only this one's."""

    ok: int
    failed: int
    in_flight: int
    pending: int
    # Per lease owner (``host:pid:random``): processes with units in flight or units finished.
    workers: Mapping[str, WorkerTotals]

    @property
    def total(self) -> int:
        return self.ok + self.failed + self.in_flight + self.pending

    @property
    def finished(self) -> int:
        return self.ok + self.failed

    def describe(self) -> str:
        """``run: ok 58 failed 2 in flight 5; by 2 processes: h:12:ab (30 done, 3 in flight), ...``"""
        working = sorted(self.workers.items(), key=lambda item: (-item[1].in_flight, item[0]))
        named = ", ".join(
            f"{owner} ({w.finished} done, {w.in_flight} in flight)" for owner, w in working[:_NAMED_PROCESSES]
        )
        more = f" and {len(working) - _NAMED_PROCESSES} more" if len(working) > _NAMED_PROCESSES else ""
        by = (
            f"; by {len(working)} process{'es' if len(working) != 1 else ''}: {named}{more}"
            if working
            else ""
        )
        return f"run: ok {self.ok} failed {self.failed} in flight {self.in_flight}{by}"


@dataclass(slots=True)
class ProviderCounters:
    """What one provider has done so far in this process."""

    done: int = 0
    failed: int = 0
    retrying: int = 0  # attempts that failed and will be retried
    in_flight: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    stopped: str | None = None  # the refusal kind that stopped sending to it (runner.run.breaker)
    # A judge provider's: its units are grading requests, no units of the job (counted apart).
    grading: bool = False


@dataclass(slots=True, kw_only=True)
class Progress:
    """Counters of a run, per provider; ``total`` is the number of units the run must finish.

    ``started_at`` is on trio's clock (``trio.current_time()``), passed in so a ``Progress`` can be
    built anywhere, a test included, without a running trio loop.
    """

    total: int
    started_at: float
    already_done: int = 0  # units finished before this process started (resume, join)
    providers: dict[str, ProviderCounters] = field(default_factory=dict)
    run: RunTotals | None = None  # the whole run, every process's units (None: not read yet)
    run_finished_at_start: int | None = None  # run.finished at the first read: the run's own rate

    def of(self, provider: str) -> ProviderCounters:
        counters = self.providers.get(provider)
        if counters is None:
            counters = self.providers[provider] = ProviderCounters()
        return counters

    @property
    def finished(self) -> int:
        return self.already_done + sum(c.done + c.failed for c in self.providers.values() if not c.grading)

    @property
    def graded(self) -> int:
        """Grading requests (a judge's units) this process finished: none of them a unit of the job."""
        return sum(c.done + c.failed for c in self.providers.values() if c.grading)

    @property
    def cost_usd(self) -> float:
        return sum(c.cost_usd for c in self.providers.values())

    @property
    def in_flight(self) -> int:
        """Units claimed by this process and not finished yet, over all providers."""
        return sum(c.in_flight for c in self.providers.values())

    def outcomes(self) -> tuple[int, int]:
        """Units of the job this process finished ``ok`` and ``failed`` (grading requests are not)."""
        counters = [c for c in self.providers.values() if not c.grading]
        return sum(c.done for c in counters), sum(c.failed for c in counters)

    def see_run(self, totals: RunTotals) -> None:
        """Take the whole run's totals just read from the database."""
        if self.run_finished_at_start is None:
            self.run_finished_at_start = totals.finished
        self.run = totals

    def eta_seconds(self, now: float) -> float | None:
        """Remaining time at the rate kept so far (the whole run's, once read; else this process's);
        None while that rate means little."""
        if self.run is not None and self.run_finished_at_start is not None:
            remaining = max(0, self.run.total - self.run.finished)
            finished_here = self.run.finished - self.run_finished_at_start
        else:
            remaining = max(0, self.total - self.finished)
            finished_here = self.finished - self.already_done
        if remaining == 0:
            return 0.0
        elapsed = now - self.started_at
        if finished_here < MIN_UNITS_FOR_ETA or elapsed <= 0:
            return None
        return remaining * elapsed / finished_here

    def line(self, now: float) -> str:
        """One log line: the whole run at a glance."""
        done, failed = self.outcomes()
        in_flight = self.in_flight
        retrying = sum(c.retrying for c in self.providers.values())
        tokens = sum(c.output_tokens for c in self.providers.values())
        elapsed = max(now - self.started_at, 1e-9)
        eta = self.eta_seconds(now)
        eta_text = "?" if eta is None else format_duration(eta)
        stopped = "".join(
            f" | {name} stopped ({c.stopped}): units fail unsent"
            for name, c in sorted(self.providers.items())
            if c.stopped
        )
        if any(c.grading for c in self.providers.values()):
            stopped = f" | graded {self.graded}{stopped}"
        run = self.run
        if run is None:
            return (
                f"{self.finished}/{self.total} units | ok {done} failed {failed} "
                f"in flight {in_flight} retried {retrying} | {tokens / elapsed:.0f} tok/s "
                f"| ${self.cost_usd:.4f} | eta {eta_text}{stopped}"
            )
        head = f"{run.finished}/{run.total} units | eta {eta_text} | {run.describe()}"
        if not self.providers:  # a process that works no unit itself (runner run --workers)
            return head
        return (
            f"{head} | this process: ok {done} failed {failed} in flight {in_flight} retried {retrying} "
            f"| {tokens / elapsed:.0f} tok/s | ${self.cost_usd:.4f}{stopped}"
        )

    def table(self, now: float) -> Table:
        """A rich table, one row per provider, for the live display."""
        from rich.table import Table

        elapsed = max(now - self.started_at, 1e-9)
        table = Table(title=self.line(now), title_justify="left", expand=False)
        for column in ("provider", "ok", "failed", "retried", "in flight", "tok/s", "cost $"):
            table.add_column(column, justify="left" if column == "provider" else "right")
        for name, c in sorted(self.providers.items()):
            table.add_row(
                f"{name} (stopped: {c.stopped})" if c.stopped else name,
                str(c.done),
                str(c.failed),
                str(c.retrying),
                str(c.in_flight),
                f"{c.output_tokens / elapsed:.0f}",
                f"{c.cost_usd:.4f}",
            )
        return table


def format_duration(seconds: float) -> str:
    """``42s``, ``12m05s``, ``3h07m``, ``4d02h``: two units at most, the way people read durations."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def choose_mode(*, quiet: bool, console: Console | None = None) -> DisplayMode:
    """Live on a terminal, plain lines otherwise, nothing with ``--quiet``."""
    if quiet:
        return "quiet"
    is_tty = console.is_terminal if console is not None else sys.stdout.isatty()
    return "live" if is_tty else "plain"


async def show_progress(
    progress: Progress,
    mode: DisplayMode,
    *,
    interval: float = 10.0,
    console: Console | None = None,
    read_run: Callable[[], RunTotals] | None = None,
) -> None:
    """Display ``progress`` until cancelled. Runs in the run's nursery; cancel it to stop.

    ``read_run`` (blocking; run on a worker thread) reads the whole run's totals from the database:
    at each plain line, every ``RUN_TOTALS_INTERVAL`` for the live table, and once more at the end.
    """
    if mode == "quiet":
        await trio.sleep_forever()
    if mode == "plain":
        try:
            while True:
                await trio.sleep(interval)
                await _read_run(progress, read_run)
                log.info("%s", progress.line(trio.current_time()))
        finally:
            await _read_run(progress, read_run, shielded=True)
            log.info("%s", progress.line(trio.current_time()))
    from rich.live import Live

    with Live(
        progress.table(trio.current_time()), console=console, refresh_per_second=4, transient=False
    ) as live:
        try:
            read_at = -RUN_TOTALS_INTERVAL
            while True:
                await trio.sleep(0.5)
                if trio.current_time() - read_at >= RUN_TOTALS_INTERVAL:
                    await _read_run(progress, read_run)
                    read_at = trio.current_time()
                live.update(progress.table(trio.current_time()))
        finally:
            # The frame left on screen is the last one drawn: draw the final counts, or the table
            # above the summary shows the run as it stood up to half a second before it ended.
            await _read_run(progress, read_run, shielded=True)
            live.update(progress.table(trio.current_time()), refresh=True)


async def _read_run(
    progress: Progress, read_run: Callable[[], RunTotals] | None, *, shielded: bool = False
) -> None:
    """Refresh ``progress.run``. The last read runs while the display is being cancelled: shielded
    and bounded, and a database that does not answer leaves the totals as last read (the run's
    summary line, read afterwards, is the authoritative count)."""
    if read_run is None:
        return
    with trio.CancelScope(shield=shielded) as scope:
        scope.deadline = trio.current_time() + 5
        try:
            progress.see_run(await trio.to_thread.run_sync(read_run, abandon_on_cancel=True))
        except StorageError as exc:  # a display never stops a run: the writer reports a lost database
            log.debug("run totals not read: %s", exc)
