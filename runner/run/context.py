"""What the engine's tasks share: the run's context (resolved once), the queue and the writer they
talk to (protocols: the engine never talks SQL), and the mutable state of one run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import trio

from runner.run.breaker import Breaker
from runner.run.redact import Redactor

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import httpx

    from runner.run.limits import ProviderLimiter, SharedSwitch
    from runner.spec import CaseSpec, ProviderSpec
    from runner.store.records import ClaimedUnit, WriteItem
    from runner.wire.dialects.base import Dialect


class UnitQueue(Protocol):
    """The run's work queue as the engine sees it (kept in the database by runner.store.leases).

    Sync methods: the engine calls them on a worker thread under the database limiter.
    """

    @property
    def owner(self) -> str:
        """Who holds the leases this queue claims (host:pid:random)."""
        ...

    def claim(self, provider: str, limit: int) -> list[ClaimedUnit]:
        """Lease up to ``limit`` claimable units of ``provider`` to this process."""
        ...

    def renew(self) -> None:
        """Extend the leases this process holds."""
        ...

    def release(self) -> None:
        """Hand every unit this process still holds back to the queue as pending."""
        ...

    def give_back(self, unit_ids: Sequence[int]) -> None:
        """Hand these units (claimed here, never started) back to the queue as pending."""
        ...

    def outstanding(self) -> int:
        """0 when no unit of the run is without a result, else a positive number: units pending, or
        leased by another process (ours that are running only wait for the writer's commit: the
        engine asks only when it holds no claimed unit and has none in flight). Not
        necessarily their count (``RunQueue`` answers 1: counting would read the whole run)."""
        ...


class WriterService(Protocol):
    """The single writer task: ``await nursery.start(writer.run, receive)``."""

    async def run(
        self,
        receive: trio.MemoryReceiveChannel[WriteItem],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class RunContext:
    """Everything a unit's task needs, resolved once per run. ``api_keys`` never leave memory."""

    providers: Mapping[str, ProviderSpec]
    cases: Mapping[str, CaseSpec]
    dialects: Mapping[str, Dialect]
    limiters: Mapping[str, ProviderLimiter]
    api_keys: Mapping[str, str | None] = field(repr=False)
    # Every key of the run (all providers': a gateway may echo another's), taken out of each
    # attempt before it goes anywhere (runner.run.redact).
    redactor: Redactor = field(default=Redactor(), repr=False)
    client: httpx.AsyncClient
    db_limiter: trio.CapacityLimiter
    capture: bool = True  # keep raw bodies in records; the writer's policy decides what is stored
    # The global cap on units in flight: --concurrency, else the sum of the providers' own caps.
    # runner.run.service computes it once and sizes the HTTP connection pool with the same number.
    concurrency: int
    max_cost_usd: float | None = None
    # The run's limits in its database, shared by every process joined on the run (the limiters
    # draw from it; the budget cap is checked against the run's total spend).
    shared: SharedSwitch | None = None
    peer_poll_seconds: float = 0.5  # how often a process alone on its run looks for others
    lease_renew_seconds: float = 20.0
    idle_poll_seconds: float = 2.0


@dataclass(slots=True)
class RunState:
    """The run's budget and the feeder's wake-up, shared by the tasks of one run (one trio thread:
    no locks). Units in flight and finished are counted once, in ``Progress``'s counters."""

    budget_cap: float | None
    spent: float = 0.0
    budget_spent: trio.Event = field(default_factory=trio.Event)
    slot_freed: trio.Event = field(default_factory=trio.Event)
    breakers: dict[str, Breaker] = field(default_factory=dict)  # per provider, made on first use
    # A judged unit was handed to the writer with its grading unit since the feeder last flushed it:
    # until that commits, the queue cannot show the grading unit, so "nothing outstanding" is not yet
    # the end of the run (runner.store.records.Flush).
    grading_unflushed: bool = False
    # The backoff jitter of every unit of the run: one generator, seeded once from the OS, instead of
    # a ``random.Random()`` per unit (its seeding read 2.5 kB of os.urandom, ~10 us a unit). The
    # waits stay full-jitter uniform draws; no two tasks draw at once (one trio thread).
    jitter: random.Random = field(default_factory=random.Random)

    def breaker(self, provider: str) -> Breaker:
        """The breaker of ``provider``, made on first use."""
        found = self.breakers.get(provider)
        if found is None:
            found = self.breakers[provider] = Breaker()
        return found

    def spend(self, cost: float | None) -> None:
        """Add ``cost`` to the run's spend; past the budget cap, set ``budget_spent``."""
        if cost:
            self.spent += cost
        if self.budget_cap is not None and self.spent >= self.budget_cap:
            self.budget_spent.set()
