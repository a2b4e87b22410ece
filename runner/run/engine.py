"""The run loop: claim units from the store, fan them out in one trio nursery, retry, and hand every
attempt and result to the single writer.

Shape of one run (every task lives in a nursery drawn here):

    execute_run
     └─ services nursery ....... writer (owns all DB writes)
         └─ renewal nursery .... lease renewer
             └─ work nursery ... feeder -> one task per *claimed* unit (never one per planned unit)

The work nursery closes first; then the writer's channel closes, the writer commits what it holds and
returns, and only then is the services nursery left. So Ctrl-C stops requests within moments but never
loses a record a worker already produced.

The feeder is runner.run.feeder; each unit's task (its attempts, retries and hand-offs) runner.run.unit.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import trio

from runner.errors import StorageError
from runner.run.context import RunState
from runner.run.feeder import feed
from runner.store.records import WriteItem

if TYPE_CHECKING:
    from runner.run.context import RunContext, UnitQueue, WriterService
    from runner.run.limits import SharedSwitch
    from runner.run.progress import Progress


RunEnd = Literal["finished", "interrupted"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RunResult:
    """How the run ended in this process: ``interrupted`` when the budget stopped it."""

    end: RunEnd
    ok: int
    failed: int
    spent_usd: float


async def execute_run(
    ctx: RunContext,
    queue: UnitQueue,
    writer: WriterService,
    *,
    progress: Progress,
    already_spent_usd: float = 0.0,
    # Room for five of the writer's 200-item batches: units keep finishing while one commits on its
    # thread, and hand their records off without waiting for it; bounded, so a database that falls
    # behind makes senders wait (backpressure) instead of growing memory.
    write_buffer: int = 1000,
) -> RunResult:
    """Work the run until no unit is left, the budget is spent, or the caller cancels.

    On cancellation (Ctrl-C or SIGTERM cancel an enclosing scope) every in-flight attempt is cut off
    and stored as ``cancelled``, the writer commits what it holds, the units this process held go
    back to ``pending`` for a resume, and the cancellation continues outward.
    """
    state = RunState(budget_cap=ctx.max_cost_usd)
    state.spend(already_spent_usd)
    send, receive = trio.open_memory_channel[WriteItem](write_buffer)
    try:
        async with trio.open_nursery() as services:
            await services.start(writer.run, receive)
            # The renewer has a nursery of its own so that, on a normal end, cancelling it touches
            # nothing else: the writer is never cancelled then, it ends at EndOfChannel once
            # every send side (the feeder's and each unit's clone) has closed.
            async with trio.open_nursery() as renewal:
                renewal.start_soon(_renew_leases, ctx, queue)
                if ctx.shared is not None:
                    await renewal.start(_watch_peers, ctx, ctx.shared, state, already_spent_usd)
                async with send, trio.open_nursery() as work:
                    work.start_soon(feed, work, ctx, queue, send, state, progress)
                renewal.cancel_scope.cancel()
            # Leaving `services` waits for the writer to commit what it still holds.
    finally:
        # Normally nothing is left leased here; after a cancellation or a crash the units we held
        # go back to the queue at once instead of waiting out their lease. Shielded (we may be
        # cancelled) and bounded (a dead database must not hang the exit).
        # A database that failed (what stopped the run, reported by the caller) may refuse this
        # too: the units stay leased, and --resume takes them back like a crash's.
        with (
            trio.CancelScope(shield=True),
            trio.move_on_after(10),
            contextlib.suppress(StorageError),
        ):
            await trio.to_thread.run_sync(queue.release, limiter=ctx.db_limiter)
            if ctx.shared is not None:
                await trio.to_thread.run_sync(
                    ctx.shared.gate.release, state.spent - already_spent_usd, limiter=ctx.db_limiter
                )
    end: RunEnd = "interrupted" if state.budget_spent.is_set() else "finished"
    done, failed = progress.outcomes()
    return RunResult(end=end, ok=done, failed=failed, spent_usd=state.spent)


async def _renew_leases(ctx: RunContext, queue: UnitQueue) -> None:
    while True:
        await trio.sleep(ctx.lease_renew_seconds)
        await trio.to_thread.run_sync(queue.renew, limiter=ctx.db_limiter)
        if ctx.shared is not None and ctx.shared.active:  # the heartbeat of its shared slots
            await trio.to_thread.run_sync(ctx.shared.gate.renew, limiter=ctx.db_limiter)


async def _watch_peers(
    ctx: RunContext,
    switch: SharedSwitch,
    state: RunState,
    already_spent_usd: float,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Keep limits in memory while this process is alone on the run; share them once it is not.

    Started before the first claim. A process that finds others goes shared at once, but first
    waits (bounded) for those still alone to publish what they have in flight, so no moment counts
    fewer attempts than are being sent.
    """
    peers = await trio.to_thread.run_sync(
        switch.gate.check_in, state.spent - already_spent_usd, limiter=ctx.db_limiter
    )
    if peers.any:
        await _go_shared(ctx, switch, state, already_spent_usd)
        with trio.move_on_after(4 * ctx.peer_poll_seconds):
            while peers.solo:
                await trio.sleep(ctx.peer_poll_seconds / 5)
                peers = await trio.to_thread.run_sync(
                    switch.gate.check_in, state.spent - already_spent_usd, limiter=ctx.db_limiter
                )
        task_status.started()
        return
    task_status.started()
    while True:
        await trio.sleep(ctx.peer_poll_seconds)
        found = await trio.to_thread.run_sync(
            switch.gate.check_in, state.spent - already_spent_usd, limiter=ctx.db_limiter
        )
        if found.any:
            await _go_shared(ctx, switch, state, already_spent_usd)
            return


async def _go_shared(
    ctx: RunContext, switch: SharedSwitch, state: RunState, already_spent_usd: float
) -> None:
    # Snapshot and switch in one step (no await between): every attempt from here on takes from
    # the run's rows, and the ones in flight give back there. The publish goes first in the
    # database limiter's queue (it is FIFO), before any take made after the switch.
    in_flight = {name: limiter.go_shared() for name, limiter in ctx.limiters.items()}
    switch.active = True
    await trio.to_thread.run_sync(
        switch.gate.go_shared, in_flight, state.spent - already_spent_usd, limiter=ctx.db_limiter
    )
