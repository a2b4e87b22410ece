"""The feeder: start claimed units as capacity frees up, and claim the next ones in the background,
one wave ahead, until nothing of the run is left for this process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from runner.run.claims import ClaimAhead
from runner.run.unit import work_unit
from runner.store.records import Flush

if TYPE_CHECKING:
    from collections.abc import Mapping

    from runner.run.context import RunContext, RunState, UnitQueue
    from runner.run.progress import Progress
    from runner.store.records import WriteItem


async def feed(
    nursery: trio.Nursery,
    ctx: RunContext,
    queue: UnitQueue,
    send: trio.MemorySendChannel[WriteItem],
    state: RunState,
    progress: Progress,
) -> None:
    """Start claimed units as capacity frees up, and claim in the background one wave ahead.

    Memory stays flat for any run size: at most a provider's slot count is held claimed and not
    started (runner.run.claims). Claims go provider by provider, each up to its own free slots (then
    its lookahead), so a slow or throttled provider never takes the capacity another one could use.
    While units are held, a freed slot does not wait for the database: the claim runs in a task of
    its own, and units start from what is held while it waits its turn behind the writer.
    """
    # One wave ahead: as many units as the provider may have in flight.
    claims = ClaimAhead(ahead={n: min(p.concurrency, ctx.concurrency) for n, p in ctx.providers.items()})
    while not state.budget_spent.is_set():
        # Armed before looking: a unit that finishes (or a claim that returns) while this loop
        # awaits must wake the wait below, not an event nobody waits on any more.
        state.slot_freed = trio.Event()
        free = _start_held(nursery, ctx, queue.owner, send, state, progress, claims)
        # With peers on the run, units held beyond our free slots go back to the queue: another
        # process may have slots for them now (a worker that started after us claimed ahead).
        solo = ctx.shared is None or not ctx.shared.active
        if not solo and claims.held:
            ids = claims.take_all()
            await trio.to_thread.run_sync(queue.give_back, ids, limiter=ctx.db_limiter)
        room = ctx.concurrency - progress.in_flight
        if not claims.claiming and (wants := claims.wants(free, room=room, solo=solo)):
            claims.claiming = True
            nursery.start_soon(_claim, ctx, queue, state, claims, wants)
        if progress.in_flight == 0 and not claims.claiming and not claims.held:
            # Nothing claimable and nothing of ours in flight: the run is done, or other processes
            # hold leases (--join); their units come back to the queue if those processes die.
            if state.grading_unflushed:
                # Grading units may be on their way to the queue: wait until the writer has
                # committed what it holds, then look again.
                state.grading_unflushed = False
                committed = trio.Event()
                await send.send(Flush(done=committed.set))
                await committed.wait()
                claims.exhausted.clear()
                continue
            if await trio.to_thread.run_sync(queue.outstanding, limiter=ctx.db_limiter) == 0:
                return
            with trio.move_on_after(ctx.idle_poll_seconds):
                await state.budget_spent.wait()
            claims.exhausted.clear()
            continue
        # Wait until one of our units finishes or a claim returns; after a quiet poll interval,
        # look at exhausted providers again (units released by a process that stopped, or --join).
        with trio.move_on_after(ctx.idle_poll_seconds) as poll:
            await state.slot_freed.wait()
        if poll.cancelled_caught:
            claims.exhausted.clear()


def _start_held(
    nursery: trio.Nursery,
    ctx: RunContext,
    owner: str,
    send: trio.MemorySendChannel[WriteItem],
    state: RunState,
    progress: Progress,
    claims: ClaimAhead,
) -> dict[str, int]:
    """Start held units into the free slots; return each provider's slots still free."""
    free: dict[str, int] = {}
    for name, provider in ctx.providers.items():
        counters = progress.of(name)
        slots = min(provider.concurrency - counters.in_flight, ctx.concurrency - progress.in_flight)
        while slots > 0 and (unit := claims.pop(name)) is not None:
            # Counted at the start, not when the task first runs, so the next look sees it.
            counters.in_flight += 1
            slots -= 1
            nursery.start_soon(work_unit, ctx, owner, send.clone(), state, progress, unit)
        free[name] = max(slots, 0)
    return free


async def _claim(
    ctx: RunContext, queue: UnitQueue, state: RunState, claims: ClaimAhead, wants: Mapping[str, int]
) -> None:
    # In the work nursery: a cancellation before a claim's thread starts claims nothing; one that
    # started runs to its end (not abandon_on_cancel), and what it leased is ours, released with the
    # rest when the run ends. Units held when the run ends early (budget, Ctrl-C) go back the same way.
    try:
        for name, limit in wants.items():
            units = await trio.to_thread.run_sync(queue.claim, name, limit, limiter=ctx.db_limiter)
            claims.add(name, units, asked=limit)
    finally:
        claims.claiming = False
    state.slot_freed.set()  # the feeder starts what came back
