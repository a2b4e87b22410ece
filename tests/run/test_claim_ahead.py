"""Claiming ahead: a freed slot starts its next unit without a database round trip, exactly once."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest
import trio

from runner.run.claims import ClaimAhead
from runner.run.client import build_client
from runner.run.context import RunContext
from runner.run.engine import RunResult, execute_run
from runner.run.limits import build_limiters
from runner.run.planning import open_run
from runner.run.progress import Progress
from runner.run.service import RunOptions
from runner.simulator.config import Dist, Latency
from runner.store.db import Database, open_database
from runner.store.leases import RunQueue
from runner.store.records import ClaimedUnit
from runner.store.writer import Writer, db_limiter
from runner.wire.dialects import get_dialect
from tests.run.helpers import make_job, provider_for, stored_units
from tests.run.processes import RunState, wait_for

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from runner.spec import TransportName
    from tests.conftest import StartSimulator

pytestmark = pytest.mark.usefixtures("transport")


@pytest.fixture
def sqlite(tmp_path: Path) -> Iterator[Database]:
    """A migrated SQLite file: one database thread, where a claim queues behind the writer."""
    with open_database(f"sqlite:///{tmp_path / 'runner.db'}") as database:
        yield database


async def test_a_freed_slot_starts_a_held_unit_while_a_long_write_holds_the_database(
    sqlite: Database, start_simulator: StartSimulator, transport: TransportName
) -> None:
    """With the database busy (a long write holds its one thread), the second wave still starts at
    once from the units claimed ahead, and every unit ends with exactly one attempt."""
    simulator = await start_simulator(output_tokens=Dist(a=4.0), latency=Latency(gap=Dist(a=0.2)))
    provider = provider_for(simulator, "openai-chat", concurrency=2)
    run, job = open_run(sqlite, make_job([provider], repeats=4), RunOptions(display="quiet"))
    limiter = db_limiter(sqlite)
    state = RunState(sqlite)
    result: list[RunResult] = []
    async with build_client([provider], cap=2, transport=transport) as client:
        ctx = RunContext(
            providers={provider.name: provider},
            cases={case.id: case for case in job.cases},
            dialects={provider.dialect: get_dialect(provider.dialect)},
            limiters=build_limiters([provider]),
            api_keys={},
            client=client,
            db_limiter=limiter,
            concurrency=2,
        )
        queue = RunQueue(database=sqlite, run_id=run.id, owner="test:1:ahead")
        progress = Progress(total=4, started_at=trio.current_time())

        async def work() -> None:
            result.append(await execute_run(ctx, queue, Writer(sqlite, limiter=limiter), progress=progress))

        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(work)
                # Two units in flight and two more held, all four leased before the first wave ends.
                await wait_for(lambda: state.counts(run.id)["running"] == 4, within=5, interval=0.005)
                assert len(simulator.log) <= 2
                async with limiter:  # the long write: no claim (and no commit) can run meanwhile
                    await wait_for(lambda: len(simulator.log) == 4, within=5, interval=0.01)
    assert result[0].ok == 4
    units = await stored_units(sqlite, run.id)
    assert [(unit.status, len(unit.attempts)) for unit in units] == [("ok", 1)] * 4


def _unit(unit_id: int) -> ClaimedUnit:
    return ClaimedUnit(
        id=unit_id,
        run_id="r",
        key=f"p/c/{unit_id}",
        provider="p",
        case_id="c",
        repeat=unit_id,
        request_hash="h",
        attempts=0,
        lease_token=1,
        lease_expires_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def test_free_slots_are_claimed_first_then_one_wave_ahead_while_alone() -> None:
    """Free slots are asked for alone (that claim starts units the moment it returns); with none
    free, a process alone on its run tops its held units up to one wave, and with peers it does not."""
    claims = ClaimAhead(ahead={"p": 3})
    assert claims.wants({"p": 2}, room=9, solo=True) == {"p": 2}
    claims.add("p", [_unit(1)], asked=1)
    assert claims.wants({"p": 0}, room=9, solo=True) == {"p": 2}
    assert claims.wants({"p": 0}, room=9, solo=False) == {}
    assert claims.wants({"p": 1}, room=9, solo=False) == {"p": 1}


def test_free_slots_of_all_providers_together_stay_under_the_global_cap() -> None:
    """Two providers with free slots of their own are asked for no more than the run's global cap
    has room for, in provider order; one left without room still claims its wave ahead."""
    claims = ClaimAhead(ahead={"a": 2, "b": 2})
    assert claims.wants({"a": 3, "b": 3}, room=4, solo=True) == {"a": 3, "b": 1}
    assert claims.wants({"a": 3, "b": 3}, room=3, solo=True) == {"a": 3, "b": 2}


def test_a_short_claim_marks_the_provider_exhausted_and_units_come_out_in_claim_order() -> None:
    """A claim that got fewer units than asked stops further claims of that provider; held units
    start oldest first, and giving them back empties the hold."""
    claims = ClaimAhead(ahead={"p": 4})
    claims.add("p", [_unit(1), _unit(2)], asked=4)
    assert claims.wants({"p": 3}, room=9, solo=True) == {}
    assert claims.held == 2
    first = claims.pop("p")
    assert first is not None
    assert first.id == 1
    assert claims.take_all() == [2]
    assert claims.held == 0
    assert claims.pop("p") is None
