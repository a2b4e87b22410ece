"""The writer task: batches by count and by time, commits everything, drains on cancellation."""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio
import trio.testing

from runner.store import repository
from runner.store.records import AttemptWrite, BatchOutcome, ClaimedUnit, UnitFinish, WriteItem
from runner.store.writer import Writer, db_limiter

from .factories import failed_attempt, make_job, make_units, ok_attempt

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from runner.store.db import Database


def claimed_run(session: Session, count: int) -> tuple[str, list[ClaimedUnit]]:
    """A run with ``count`` units, all claimed by owner ``w``."""
    run = repository.create_run(session, make_job(), host="h", version="v")
    repository.add_units(session, run.id, make_units(count))
    return run.id, repository.claim_units(session, run.id, "w", limit=count, lease_seconds=600)


def finish(unit: ClaimedUnit) -> UnitFinish:
    """A successful end of ``unit`` by owner ``w``."""
    return UnitFinish(
        unit_id=unit.id, owner="w", status="ok", attempt=ok_attempt(unit.key, 2), cost_computed=0.001
    )


async def test_batches_by_count_and_stops_when_senders_close(db: Database, session: Session) -> None:
    """25 queued finishes commit in batches of 10, 10 and 5, and the writer ends when the channel closes."""
    run_id, units = claimed_run(session, 25)
    outcomes: list[BatchOutcome] = []
    writer = Writer(db, limiter=db_limiter(db), batch_size=10, max_delay=10.0, on_batch=outcomes.append)
    send, receive = trio.open_memory_channel[WriteItem](100)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(writer.run, receive)
            async with send:
                for unit in units:
                    send.send_nowait(finish(unit))
    assert [len(o.finished) for o in outcomes] == [10, 10, 5]
    assert writer.stats.batches == 3
    assert writer.stats.finished == 25
    assert repository.unit_counts(session, run_id)["ok"] == 25


async def test_commits_a_trickle_after_max_delay(db: Database, session: Session) -> None:
    """A few items are committed once max_delay passes, while the channel is still open."""
    run_id, units = claimed_run(session, 3)
    committed = trio.Event()
    writer = Writer(
        db, limiter=db_limiter(db), batch_size=200, max_delay=0.05, on_batch=lambda _: committed.set()
    )
    send, receive = trio.open_memory_channel[WriteItem](10)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery, send:
            await nursery.start(writer.run, receive)
            send.send_nowait(AttemptWrite(unit_id=units[0].id, attempt=failed_attempt(units[0].key)))
            for unit in units:
                send.send_nowait(finish(unit))
            await committed.wait()
            counts = await trio.to_thread.run_sync(repository.unit_counts, session, run_id)
            assert counts["ok"] == 3
    assert writer.stats.batches == 1
    assert writer.stats.attempts == 4


async def test_drains_received_items_when_cancelled(db: Database, session: Session) -> None:
    """Cancelling the writer's nursery still commits every item already in the channel."""
    run_id, units = claimed_run(session, 30)
    # The send side stays open: the drain waits drain_timeout for it to close, then gives up.
    writer = Writer(db, limiter=db_limiter(db), batch_size=10, max_delay=10.0, drain_timeout=0.5)
    send, receive = trio.open_memory_channel[WriteItem](100)
    with trio.fail_after(20):
        async with send, trio.open_nursery() as nursery:
            await nursery.start(writer.run, receive)
            for unit in units:
                send.send_nowait(finish(unit))
            nursery.cancel_scope.cancel()
    assert writer.stats.finished == 30
    assert repository.unit_counts(session, run_id) == {"pending": 0, "running": 0, "ok": 30, "failed": 0}


async def test_drain_waits_for_items_sent_after_the_cancellation(db: Database, session: Session) -> None:
    """Items that cancelled senders send after the writer was cancelled are committed before it ends."""
    _, units = claimed_run(session, 3)
    writer = Writer(db, limiter=db_limiter(db), batch_size=10, max_delay=10.0)
    send, receive = trio.open_memory_channel[WriteItem](10)

    async def cut_off(send: trio.MemorySendChannel[WriteItem], unit: ClaimedUnit) -> None:
        # What the engine's request tasks do on Ctrl-C: store the cut-off attempt, shielded.
        async with send:
            try:
                await trio.sleep_forever()
            except trio.Cancelled:
                with trio.CancelScope(shield=True):
                    # Once every task waits, the cancelled writer is in its drain: send only then.
                    await trio.testing.wait_all_tasks_blocked()
                    await send.send(AttemptWrite(unit_id=unit.id, attempt=failed_attempt(unit.key)))
                raise

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(writer.run, receive)
            async with send:
                for unit in units:
                    nursery.start_soon(cut_off, send.clone(), unit)
            await trio.testing.wait_all_tasks_blocked()  # every sender waits in sleep_forever
            nursery.cancel_scope.cancel()
    assert writer.stats.attempts == 3


async def test_lost_leases_are_counted_not_stored(db: Database, session: Session) -> None:
    """Finishes from an owner that no longer holds the lease are counted as lost and not applied."""
    run_id, units = claimed_run(session, 2)
    repository.release_units(session, run_id, "w", unit_ids=[units[1].id])
    writer = Writer(db, limiter=db_limiter(db))
    send, receive = trio.open_memory_channel[WriteItem](10)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(writer.run, receive)
            async with send:
                for unit in units:
                    await send.send(finish(unit))
    assert writer.stats.lost == 1
    assert writer.stats.cost_usd > 0
    assert repository.unit_counts(session, run_id) == {"pending": 1, "running": 0, "ok": 1, "failed": 0}
