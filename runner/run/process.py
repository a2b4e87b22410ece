"""``runner run``'s process around a run: the first SIGINT or SIGTERM cancels it, a database failure
is reported alone, and the process's settings (garbage collector, GIL switch interval) suit it.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import signal
import sys
from typing import TYPE_CHECKING, Final

import trio

from runner.errors import StorageError
from runner.run.service import execute_job

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator, Mapping

    from rich.console import Console

    from runner.run.service import RunOptions
    from runner.run.summary import RunSummary
    from runner.spec import JobSpec
    from runner.store.db import Database
    from runner.store.records import RunInfo

log = logging.getLogger(__name__)

# How long CPython lets a thread hold the GIL while another waits (5 ms by default). The transport's
# arrival watch (runner.http.watch) must peek at a first token before the next one lands, a token gap
# later (often 20 ms): behind a busy loop it waited 5-29 ms per peek at 1,000 streams. At 1 ms the
# stored TTFT's p99 error there fell from 47-63 ms to 0.06-0.07 ms (benchmarks/bench_timing.py). The
# loop gives the GIL up more often only while another thread waits for it.
SWITCH_INTERVAL_S: Final = 0.001
# What a database failure causes in the other tasks of a run: their cancellation, and hand-offs to
# the writer that found it gone.
_CONSEQUENCES: Final = (
    trio.Cancelled,
    trio.BrokenResourceError,
    trio.ClosedResourceError,
)


async def run_until_signalled(
    database: Database,
    run: RunInfo,
    job: JobSpec,
    options: RunOptions,
    *,
    api_keys: Mapping[str, str | None],
    console: Console | None = None,
) -> RunSummary | None:
    """``execute_job``, cancelled by the first SIGINT or SIGTERM; None when it was interrupted.

    The signal cancels the work at once; the shielded, bounded cleanups (cut-off attempts stored,
    writer drained, leases released, run marked interrupted) then take at most a few seconds.

    Like the signal handlers, this acts on the whole process (it is ``runner run``'s): see
    ``process_settings``.
    """
    with process_settings():
        return await _run_cancelled_by_signals(
            database, run, job, options, api_keys=api_keys, console=console
        )


@contextlib.contextmanager
def process_settings() -> Iterator[None]:
    """What a run sets for its whole process while it runs (``runner run``, and ``runner bench``'s
    runner client, which measures what ``runner run`` costs): every object alive so far frozen out of
    the garbage collector's reach, and CPython's GIL switch interval shortened (``SWITCH_INTERVAL_S``;
    restored at the end)."""
    # The libraries loaded by now (SQLAlchemy, Alembic, httpx, rich...) are a few hundred thousand
    # long-lived objects; a full collection during the run walked them all and stopped the loop for
    # 70-130 ms (the loop-lag watcher caught it in the demo job), delaying every timestamp due then.
    # Frozen, they are never walked again: the same collections take under 10 ms.
    gc.freeze()
    switch = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    try:
        yield
    finally:
        sys.setswitchinterval(switch)


async def _run_cancelled_by_signals(
    database: Database,
    run: RunInfo,
    job: JobSpec,
    options: RunOptions,
    *,
    api_keys: Mapping[str, str | None],
    console: Console | None,
) -> RunSummary | None:
    summary: RunSummary | None = None  # stays None when the nursery's scope caught a cancellation
    try:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_cancel_on_signal, signals, nursery.cancel_scope)
                summary = await execute_job(database, run, job, options, api_keys=api_keys, console=console)
                nursery.cancel_scope.cancel()  # stop watching for signals
    except BaseExceptionGroup as group:
        # The database failed (the writer, a claim, a renewal): every other task was cancelled
        # because of it, and tasks that were handing records to the writer found it gone. That one
        # database error is what stopped the run; it reaches the CLI alone, as one line.
        # Anything else in the group (a bug) still crashes loudly, with the whole group.
        failure = _storage_error_in(group)
        _, rest = group.split((StorageError, *_CONSEQUENCES))
        if failure is None or rest is not None:
            raise
        raise failure from None
    return summary


async def _cancel_on_signal(signals: AsyncIterator[int], scope: trio.CancelScope) -> None:
    async for signum in signals:
        log.warning("%s: stopping; in-flight attempts are cut off and stored", signal.Signals(signum).name)
        scope.cancel()
        return


def _storage_error_in(group: BaseExceptionGroup[BaseException]) -> StorageError | None:
    """The first StorageError among the leaves of ``group`` (nested groups included)."""
    for exc in group.exceptions:
        found = _storage_error_in(exc) if isinstance(exc, BaseExceptionGroup) else exc
        if isinstance(found, StorageError):
            return found
    return None
