"""Run progress: counters the engine bumps, and a display task (live table, plain lines, or quiet).

The counters are plain attributes touched from trio tasks on one thread, so no locking is needed; they
are the run's one count (the engine's feeder claims by ``in_flight``). The display only reads them.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import trio

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

log = logging.getLogger(__name__)

DisplayMode = Literal["live", "plain", "quiet"]

# Fewer units finished than this make a rate that is mostly noise (one slow first unit of a large
# run extrapolated to "eta 8893103s"): the ETA shows "?" until then.
MIN_UNITS_FOR_ETA = 5


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

    def of(self, provider: str) -> ProviderCounters:
        counters = self.providers.get(provider)
        if counters is None:
            counters = self.providers[provider] = ProviderCounters()
        return counters

    @property
    def finished(self) -> int:
        return self.already_done + sum(c.done + c.failed for c in self.providers.values())

    @property
    def cost_usd(self) -> float:
        return sum(c.cost_usd for c in self.providers.values())

    @property
    def in_flight(self) -> int:
        """Units claimed by this process and not finished yet, over all providers."""
        return sum(c.in_flight for c in self.providers.values())

    def outcomes(self) -> tuple[int, int]:
        """Units this process finished ``ok`` and ``failed``."""
        counters = self.providers.values()
        return sum(c.done for c in counters), sum(c.failed for c in counters)

    def eta_seconds(self, now: float) -> float | None:
        """Remaining time at the rate this process has kept so far; None while that rate means little."""
        remaining = max(0, self.total - self.finished)
        if remaining == 0:
            return 0.0
        finished_here = self.finished - self.already_done
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
        return (
            f"{self.finished}/{self.total} units | ok {done} failed {failed} "
            f"in flight {in_flight} retried {retrying} | {tokens / elapsed:.0f} tok/s "
            f"| ${self.cost_usd:.4f} | eta {eta_text}{stopped}"
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
) -> None:
    """Display ``progress`` until cancelled. Runs in the run's nursery; cancel it to stop."""
    if mode == "quiet":
        await trio.sleep_forever()
    if mode == "plain":
        try:
            while True:
                await trio.sleep(interval)
                log.info("%s", progress.line(trio.current_time()))
        finally:
            log.info("%s", progress.line(trio.current_time()))
    from rich.live import Live

    with Live(
        progress.table(trio.current_time()), console=console, refresh_per_second=4, transient=False
    ) as live:
        try:
            while True:
                await trio.sleep(0.5)
                live.update(progress.table(trio.current_time()))
        finally:
            # The frame left on screen is the last one drawn: draw the final counts, or the table
            # above the summary shows the run as it stood up to half a second before it ended.
            live.update(progress.table(trio.current_time()), refresh=True)
