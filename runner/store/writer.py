"""The single writer task: batches attempts and unit ends from a channel into short transactions.

Request tasks never touch the database: they send ``WriteItem``s into a bounded trio memory channel
(backpressure: a slow database slows the senders, memory stays flat). This task gathers up to
``batch_size`` items or ``max_delay`` seconds' worth, whichever comes first, and commits each batch in
one transaction on a worker thread (``trio.to_thread.run_sync`` under the shared ``db_limiter``).
It ends when every send side of the channel is closed and everything received is committed.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from runner.errors import StorageError
from runner.store import repository
from runner.store.records import Flush

if TYPE_CHECKING:
    from collections.abc import Callable

    from runner.store.db import Database
    from runner.store.records import BatchOutcome, RawCapturePolicy, StoredItem, WriteItem

logger = logging.getLogger(__name__)

POSTGRES_THREADS = 4


def db_limiter(database: Database) -> trio.CapacityLimiter:
    """The limiter every thread that touches ``database`` shares: one thread for SQLite (one writer
    at a time is all it allows), a few for PostgreSQL."""
    return trio.CapacityLimiter(1 if database.is_sqlite else POSTGRES_THREADS)


@dataclass(slots=True)
class WriterStats:
    """Running totals of one writer (mutable: the writer updates them as it commits)."""

    batches: int = 0
    items: int = 0
    attempts: int = 0
    finished: int = 0
    lost: int = 0
    cost_usd: float = 0.0
    thread_cpu_s: float = 0.0  # CPU time the writer's database work used, on its worker threads
    wall_s: float = 0.0  # wall time spent in commits


class Writer:
    """Owns every write of a run. Start it with ``await nursery.start(writer.run, receive_channel)``.

    Args:
        database: the open database.
        limiter: ``db_limiter(database)``, shared with any other thread that uses the database.
        batch_size: most items per transaction.
        max_delay: longest an item waits for its batch to fill, in seconds.
        drain_timeout: on cancellation, how long to keep committing what was already received.
        raw_capture: which attempts keep their raw stream bytes (``failed`` by default).
        on_batch: called on the trio thread after each commit (progress, spend so far).
    """

    def __init__(
        self,
        database: Database,
        *,
        limiter: trio.CapacityLimiter,
        batch_size: int = 200,
        max_delay: float = 0.2,
        drain_timeout: float = 5.0,
        raw_capture: RawCapturePolicy = "failed",
        on_batch: Callable[[BatchOutcome], None] | None = None,
    ) -> None:
        self._database = database
        self._limiter = limiter
        self._batch_size = batch_size
        self._max_delay = max_delay
        self._drain_timeout = drain_timeout
        self._raw_capture: RawCapturePolicy = raw_capture
        self._on_batch = on_batch
        self.stats = WriterStats()

    async def run(
        self,
        receive: trio.MemoryReceiveChannel[WriteItem],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Commit everything received until the channel's send sides are all closed."""
        pending: list[WriteItem] = []  # received, not yet handed to a commit
        batch: list[WriteItem] = []  # handed to a commit that has not returned
        commit_failed = False
        async with receive:
            task_status.started()
            try:
                while True:
                    try:
                        pending.append(await receive.receive())
                    except trio.EndOfChannel:
                        return
                    # Fill the batch: take what is already queued at once, then wait for more only
                    # until max_delay, so a trickle of results is still committed promptly.
                    with trio.move_on_after(self._max_delay):
                        try:
                            while len(pending) < self._batch_size:
                                try:
                                    pending.append(receive.receive_nowait())
                                except trio.WouldBlock:
                                    pending.append(await receive.receive())
                        except trio.EndOfChannel:
                            pass  # commit what we have; the next receive() ends the loop
                    batch, pending = pending, []
                    # to_thread.run_sync may raise Cancelled before the thread starts; once it has
                    # started it runs to completion (not abandon_on_cancel), so after it returns
                    # the batch is committed and Cancelled comes at the next checkpoint.
                    await self._commit(batch)
                    batch = []
            except StorageError:
                commit_failed = True  # the database refused; retrying in the drain would too
                raise
            finally:
                if not commit_failed:
                    await self._drain(receive, batch + pending)

    async def _drain(self, receive: trio.MemoryReceiveChannel[WriteItem], pending: list[WriteItem]) -> None:
        # Reached on EndOfChannel (nothing left but `pending`) and on cancellation. Items already
        # received are results the run paid for: commit them even though we are being cancelled,
        # shielded from that cancellation but bounded, so a dead database cannot hang shutdown.
        # On Ctrl-C the request tasks are cancelled at the same moment as this one, and each still
        # sends its cut-off attempt (shielded) before closing its clone of the channel; trio may
        # well run this task first. So keep receiving until every send side is closed
        # (EndOfChannel): stopping at the first moment the channel was empty lost those attempts.
        # What is queued is committed before waiting for more, so a sender that never closes
        # costs at most the drain timeout, never an item already received.
        # Counted, not read off `pending`: a timeout can land after a commit returned but before
        # `pending` was cleared (or between slices), and those items are stored, not lost.
        received, stored_before = len(pending), self.stats.items
        with trio.CancelScope(shield=True), trio.move_on_after(self._drain_timeout) as scope:
            while True:
                try:
                    pending.append(receive.receive_nowait())
                    received += 1
                    if len(pending) < self._batch_size:
                        continue
                except trio.EndOfChannel:
                    break
                except trio.WouldBlock:
                    if not pending:
                        try:
                            pending.append(await receive.receive())
                        except trio.EndOfChannel:
                            break
                        received += 1
                        continue
                await self._commit(pending)
                pending = []
            for start in range(0, len(pending), self._batch_size):
                await self._commit(pending[start : start + self._batch_size])
            pending = []
        if scope.cancelled_caught:
            lost = received - (self.stats.items - stored_before)
            logger.error("writer drain timed out: %d items were not stored", lost)

    async def _commit(self, items: list[WriteItem]) -> None:
        batch = [item for item in items if not isinstance(item, Flush)]
        if batch:
            await self._commit_stored(batch)
        # After the commit: everything sent before a Flush is now in the database.
        for item in items:
            if isinstance(item, Flush):
                item.done()

    async def _commit_stored(self, batch: list[StoredItem]) -> None:
        started = time.perf_counter()
        # Not abandon_on_cancel: a transaction in flight finishes (commits or rolls back) before
        # trio delivers a cancellation, so a batch is never half-known.
        outcome, cpu = await trio.to_thread.run_sync(self._write, batch, limiter=self._limiter)
        stats = self.stats
        stats.batches += 1
        stats.items += len(batch)
        stats.attempts += outcome.attempts
        stats.finished += len(outcome.finished)
        stats.lost += len(outcome.lost)
        stats.cost_usd += outcome.cost_usd
        stats.thread_cpu_s += cpu
        stats.wall_s += time.perf_counter() - started
        if outcome.lost:
            logger.warning(
                "%d unit results dropped: their lease had passed to another worker", len(outcome.lost)
            )
        if outcome.superseded:
            # This process was paused or cut off past its lease and another took the units over.
            logger.warning(
                "%d attempts stored as superseded: made under a lease another process has since taken",
                outcome.superseded,
            )
        if self._on_batch is not None:
            self._on_batch(outcome)

    def _write(self, batch: list[StoredItem]) -> tuple[BatchOutcome, float]:
        # Runs on a worker thread; thread_time() measures this thread's CPU only. The batch is one
        # transaction, rolled back whole when it fails, so Database.call may retry it whole.
        cpu_started = time.thread_time()
        outcome = self._database.call(self._write_once, batch)
        return outcome, time.thread_time() - cpu_started

    def _write_once(self, batch: list[StoredItem]) -> BatchOutcome:
        with self._database.session() as session:
            return repository.write_batch(session, batch, raw_capture=self._raw_capture)
