"""``runner run --workers N``: N worker processes on one run, one progress for all, one Ctrl-C for all.

A run is one trio loop, so it uses one core; more cores take more processes. Each worker is exactly a
``runner run --join RUN`` process (the same code path, so every fault handling of a joined process holds:
leases, fencing, a database failure, a crash whose units return when its lease lapses). This module
only starts them, watches them and stops them; it works no unit itself.

- The simulated providers (``[providers.simulator]``) are served once, here, and every worker is given
  their URLs (``--simulator-url NAME=URL``): one simulated provider, as a real one would be, not N.
- Workers live in sessions of their own, so a terminal's Ctrl-C reaches only this process, which
  forwards it once to each worker and waits for their cleanup (attempts stored, leases released).
- A worker that crashes is reported; the others go on, and take over its units once its leases
  lapse: the user asked for the run to be done, and the queue is built for a process that dies.
  Only when no worker is left and units are still not done does the run stop with that failure.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import trio

from runner.run.progress import Progress, show_progress
from runner.simulator.process import serve_simulators_in_process

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Mapping, Sequence

    from rich.console import Console

    from runner.run.progress import DisplayMode, RunTotals
    from runner.spec import ProviderSpec

log = logging.getLogger(__name__)

# A worker's cleanup after a signal (cut-off attempts stored, writer drained, run marked) is bounded
# by its own shielded scopes (5-10 s); past this, it is killed and its leases lapse.
STOP_TIMEOUT_S: Final = 30.0
# The exit codes a worker ends with normally (runner run's: all done, some failed, interrupted).
NORMAL_EXITS: Final = frozenset({0, 1, 130})


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerEnd:
    """How one worker process ended."""

    index: int  # 1-based, as its output lines are prefixed
    pid: int
    code: int

    @property
    def crashed(self) -> bool:
        return self.code not in NORMAL_EXITS


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkersOutcome:
    """Every worker's end, and whether a signal stopped them."""

    ends: tuple[WorkerEnd, ...]
    signalled: bool

    @property
    def crashed(self) -> tuple[WorkerEnd, ...]:
        return tuple(end for end in self.ends if end.crashed)


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerPlan:
    """What to start: ``count`` copies of ``argv`` (a ``runner run --join RUN ...`` command) in ``env``.

    ``concurrency`` (``--concurrency``, requests in flight over all providers) holds for the whole
    run: each worker is given its share (``concurrency_share``), so N workers never exceed it together.
    """

    count: int
    argv: Sequence[str]
    env: Mapping[str, str]
    concurrency: int | None = None

    def worker_argv(self, index: int) -> list[str]:
        """Worker ``index``'s (1-based) command line: ``argv`` with its ``--concurrency`` share."""
        if self.concurrency is None:
            return list(self.argv)
        return [*self.argv, "--concurrency", str(concurrency_share(self.concurrency, self.count, index))]


def concurrency_share(total: int, workers: int, index: int) -> int:
    """Worker ``index``'s (1-based) part of ``total``: the parts differ by one at most and add up to
    ``total`` (the first ``total % workers`` workers take one more). ``total >= workers``."""
    return total // workers + (1 if index <= total % workers else 0)


def worker_count(value: str) -> int:
    """``--workers``: a positive number, or ``auto`` (the cores this process may use)."""
    if value == "auto":
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{value!r} is not a number of workers (1, 2, ... or auto)")
    return int(value)


def simulated_url_options(served: Mapping[str, str]) -> list[str]:
    """The ``--simulator-url NAME=URL`` options that hand served simulators to a worker."""
    return [arg for name, url in served.items() for arg in ("--simulator-url", f"{name}={url}")]


async def run_workers(
    plan: WorkerPlan,
    providers: Sequence[ProviderSpec],
    *,
    display: DisplayMode,
    interval: float,
    console: Console | None,
    read_run: Callable[[], RunTotals],
) -> WorkersOutcome:
    """Serve the simulated providers, start the workers, show the run's progress, and wait for them.

    The first SIGINT or SIGTERM is forwarded to every worker; then their ends are awaited.
    """
    # Only the whole run's totals: this process works no unit itself.
    progress = Progress(total=0, started_at=trio.current_time())
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as services:
            argv = list(plan.argv)
            simulated = [p for p in providers if p.simulator is not None]
            if simulated:
                configs = [p.simulator for p in simulated if p.simulator is not None]
                served = await services.start(serve_simulators_in_process, configs)
                urls = {p.name: h.base_url(p.dialect) for p, h in zip(simulated, served, strict=True)}
                argv += simulated_url_options(urls)
            services.start_soon(_show, progress, display, interval, console, read_run)
            outcome = await _work(dataclasses.replace(plan, argv=argv), signals)
            services.cancel_scope.cancel()  # the simulators and the display
    return outcome


async def _show(
    progress: Progress,
    display: DisplayMode,
    interval: float,
    console: Console | None,
    read_run: Callable[[], RunTotals],
) -> None:
    await show_progress(progress, display, interval=interval, console=console, read_run=read_run)


async def _work(plan: WorkerPlan, signals: AsyncIterator[int]) -> WorkersOutcome:
    """Start the workers and wait for every one to end, forwarding the first signal to them."""
    ends: list[WorkerEnd] = []
    signalled = trio.Event()
    async with trio.open_nursery() as outer:
        async with trio.open_nursery() as workers:  # ends when every worker has ended
            processes = [await _start(workers, plan, index, ends) for index in range(1, plan.count + 1)]
            outer.start_soon(_forward, signals, processes, signalled)
        outer.cancel_scope.cancel()  # the signal watcher (and its kill timer, if a signal came)
    return WorkersOutcome(ends=tuple(sorted(ends, key=lambda end: end.index)), signalled=signalled.is_set())


async def _forward(
    signals: AsyncIterator[int], processes: Sequence[trio.Process], signalled: trio.Event
) -> None:
    """Send the first SIGINT / SIGTERM on to every worker still running; kill those that outlast
    ``STOP_TIMEOUT_S``. Later signals are swallowed: the workers are already stopping."""
    async for signum in signals:
        signalled.set()
        log.warning(
            "%s: stopping %d workers; in-flight attempts are cut off and stored",
            signal.Signals(signum).name,
            len(processes),
        )
        for process in processes:
            if process.returncode is None:
                process.send_signal(signum)
        await trio.sleep(STOP_TIMEOUT_S)
        for process in processes:
            if process.returncode is None:
                log.warning("worker pid %d did not stop within %g s: killed", process.pid, STOP_TIMEOUT_S)
                process.kill()
        await trio.sleep_forever()  # swallow later signals until the workers are reaped


async def _start(nursery: trio.Nursery, plan: WorkerPlan, index: int, ends: list[WorkerEnd]) -> trio.Process:
    """Start worker ``index``; its stderr lines are relayed prefixed with ``wINDEX:``, and its end
    appended to ``ends``."""
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "runner", *plan.worker_argv(index)],
        env=dict(plan.env),
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # a terminal's Ctrl-C reaches the supervisor only; it forwards it once
    )
    assert process.stderr is not None
    nursery.start_soon(_relay, process, index, ends)
    return process


async def _relay(process: trio.Process, index: int, ends: list[WorkerEnd]) -> None:
    """Copy the worker's stderr to ours, a prefix on each line, until it ends; then record its end."""
    assert process.stderr is not None
    pending = b""
    try:
        async with process.stderr:
            while data := await process.stderr.receive_some(65536):
                *lines, pending = (pending + data).split(b"\n")
                for line in lines:
                    _echo(index, line)
        if pending:
            _echo(index, pending)
        code = await process.wait()
    finally:
        if process.returncode is None:  # cancelled with the worker alive: never leave it behind
            process.kill()
            with trio.CancelScope(shield=True):
                await process.wait()
    end = WorkerEnd(index=index, pid=process.pid, code=code)
    if end.crashed:
        log.error(
            "worker %d (pid %d) exited with code %d; the other workers go on and take over its units "
            "when its leases lapse",
            index,
            process.pid,
            code,
        )
    ends.append(end)


def _echo(index: int, line: bytes) -> None:
    sys.stderr.write(f"w{index}: {line.decode(errors='replace')}\n")
    sys.stderr.flush()
