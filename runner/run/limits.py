"""Per-provider send limits on trio's clock: concurrency, RPM and TPM buckets, adaptive backoff on 429.

One ``ProviderLimiter`` per provider, owned by the engine for one run, plus an optional global
``trio.CapacityLimiter`` shared by all of them (``--concurrency``). A unit holds a slot for one HTTP
attempt only, never across a retry's sleep, so a backing-off unit does not block its provider.

With a ``SharedGate`` (the run's database, runner.store.shared_limits), the provider's concurrency,
RPM, TPM and adaptive limit are the run's, drawn by every process joined on it, once the run has more
than one process (``SharedSwitch.active``); a process alone keeps them here, at no database cost. The
in-process concurrency limiter still caps this process's own share (its claims).
"""

from __future__ import annotations

import contextlib
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Protocol, TypeAlias

import trio

from runner.errors import StorageError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable

    from runner.spec import ProviderSpec
    from runner.store.records import Peers, Take

# A process's limits as it moves them to the run's rows: (attempts in flight, adaptive concurrency,
# RPM tokens, TPM tokens); a bucket is None when the provider sets no such limit.
LocalLimits: TypeAlias = tuple[int, int, float | None, float | None]

# Longest the end of an attempt may wait to give its shared slot back once cancelled (a dead
# database must not hang a Ctrl-C; the slot then lapses with this process's heartbeat).
GIVE_BACK_SECONDS: Final = 5.0


class BudgetSpent(Exception):
    """The run's spend (all its processes') reached max_cost_usd: this attempt must not start."""


class SharedGate(Protocol):
    """The run's limits kept in its database (runner.store.shared_limits.SharedLimits).

    Sync methods: called on a worker thread under the database limiter.
    """

    def take(self, provider: str, tokens: int) -> Take:
        """Take a slot, one RPM token and ``tokens`` TPM tokens of ``provider``, or say how long to wait."""
        ...

    def give(
        self, provider: str, token_correction: float, outcome: tuple[bool, int] | None, cost: float
    ) -> None:
        """End an attempt: free its slot, correct TPM, feed (rate limited, epoch) to the adaptive limit,
        add its ``cost`` (USD) to the run's spend, all at once (no take sees the slot free and the spend
        not yet counted)."""
        ...

    def check_in(self, spent_here: float) -> Peers:
        """Say this process works the run (alone so far) and has spent ``spent_here`` USD since it
        started; return the other live ones."""
        ...

    def go_shared(self, local: dict[str, LocalLimits], spent_here: float) -> None:
        """Move this process's limits to the run's: {provider: (in flight, adaptive concurrency,
        RPM tokens, TPM tokens)} as they are here, and what it has spent since it started."""
        ...

    def renew(self) -> None:
        """Keep this process's slots counted (its heartbeat)."""
        ...

    def release(self, spent_here: float) -> None:
        """Free every slot this process still counts and record what it spent (it stops)."""
        ...


@dataclass(slots=True, kw_only=True)
class SharedSwitch:
    """Whether this process's limiters draw from the run's database (``active``) or from memory.

    Off while the process is alone on its run; ``runner.run.engine`` turns it on (once, for good)
    when another process appears, after publishing what this one has in flight.
    """

    gate: SharedGate
    db_limiter: trio.CapacityLimiter
    active: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Shared:
    """A provider limiter's link to the run's shared limits."""

    switch: SharedSwitch
    # One taker per provider per process polls the database; the others queue here in arrival order.
    lock: trio.Lock = field(default_factory=trio.Lock)


class TokenBucket:
    """A token bucket refilled at ``per_minute / 60`` per second of trio time.

    ``burst`` defaults to one second's worth (at least 1): providers quantize per-minute limits into
    short windows, so a full minute's budget sent at once would earn 429s. A take larger than the
    burst is allowed once the bucket is full and leaves it in debt, so big requests still pass at the
    right long-run rate instead of waiting forever.
    """

    def __init__(self, *, per_minute: float, burst: float | None = None) -> None:
        self._rate = per_minute / 60.0
        self._capacity = burst if burst is not None else max(1.0, self._rate)
        self._tokens = self._capacity
        self._stamp: float | None = None  # first use: trio.current_time() needs a running loop
        self._lock = trio.Lock()  # fair (FIFO), so waiting takers are served in arrival order

    @property
    def capacity(self) -> float:
        return self._capacity

    def _refill(self) -> None:
        now = trio.current_time()
        if self._stamp is not None:
            self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now

    async def take(self, amount: float) -> None:
        """Wait until ``amount`` tokens (at most a full bucket's worth) are there, then spend them."""
        # Holding the lock while sleeping is the point: the next taker queues behind this one.
        async with self._lock:
            self._refill()
            need = min(amount, self._capacity)
            if self._tokens < need:
                await trio.sleep((need - self._tokens) / self._rate)
                self._refill()
            self._tokens -= amount

    def level(self) -> float:
        """The tokens there now (negative: in debt)."""
        self._refill()
        return self._tokens

    def give_back(self, amount: float) -> None:
        """Correct an estimate: a positive ``amount`` returns tokens, a negative one charges more."""
        self._refill()
        self._tokens = min(self._capacity, self._tokens + amount)


class Slot:
    """One granted attempt; ``settle`` corrects the TPM estimate with the usage actually reported."""

    __slots__ = (
        "_limiter",
        "_settled",
        "correction",
        "cost",
        "counted",
        "epoch",
        "estimated_tokens",
        "outcome",
    )

    def __init__(self, limiter: ProviderLimiter, estimated_tokens: int, epoch: int) -> None:
        self._limiter = limiter
        self._settled = False
        self.estimated_tokens = estimated_tokens
        self.epoch = epoch  # the limiter's decrease count when granted
        # Shared limits: what the slot's give-back carries (TPM correction; rate limited or not).
        self.correction = 0.0
        self.outcome: bool | None = None
        self.cost = 0.0  # USD, booked: set by the engine before the slot ends
        self.counted = False  # counted in the run's shared slots: it gives its slot back there

    def settle(self, actual_tokens: int | None) -> None:
        """Charge ``actual_tokens`` instead of the estimate (once; None keeps the estimate)."""
        if actual_tokens is None or self._settled:
            return
        self._settled = True
        self.correction = float(self.estimated_tokens - actual_tokens)
        if self._limiter.tpm is not None:
            self._limiter.tpm.give_back(self.estimated_tokens - actual_tokens)


class ProviderLimiter:
    """Concurrency (adaptive), RPM and TPM for one provider, under an optional global cap.

    Adaptive concurrency is AIMD: a 429 halves the effective limit (never below 1), and
    ``recover_after`` consecutive successes add one back (never above the configured concurrency).
    A 429 from an attempt granted before the latest decrease is the same congestion event and does
    not halve again: without that, 16 in-flight 429s would take a limit of 16 straight to 1.
    """

    def __init__(
        self,
        *,
        concurrency: int,
        rpm: float | None = None,
        tpm: float | None = None,
        global_limiter: trio.CapacityLimiter | None = None,
        recover_after: int = 10,
        name: str = "",
        shared: Shared | None = None,
    ) -> None:
        self._configured = concurrency
        self._concurrency = trio.CapacityLimiter(concurrency)
        self._global = global_limiter
        self.name = name
        self._shared = shared
        self._sending: set[Slot] = set()  # granted and not yet ended: what moves to the run's rows
        # While shared, the buckets of the run's database apply instead of these.
        self.rpm = TokenBucket(per_minute=rpm) if rpm else None
        self.tpm = TokenBucket(per_minute=tpm) if tpm else None
        self._recover_after = recover_after
        self._successes = 0
        self._epoch = 0

    @property
    def effective_concurrency(self) -> int:
        return int(self._concurrency.total_tokens)

    @property
    def configured_concurrency(self) -> int:
        return self._configured

    @asynccontextmanager
    async def slot(self, estimated_tokens: int) -> AsyncIterator[Slot]:
        """Wait for a concurrency slot, the RPM and TPM budgets, then the global cap; hold for one attempt.

        Order matters: the provider's own slot and buckets come before the global cap, so a provider
        waiting on its rate limit never sits on a global slot another provider could use.
        """
        slot = Slot(self, estimated_tokens, self._epoch)
        # on_behalf_of a fresh Slot: one task may hold several slots (and trio forbids a task
        # borrowing twice from one limiter).
        await _acquire(self._concurrency, slot)
        try:
            await self._take(slot)
            self._sending.add(slot)
            if self._global is not None:
                await _acquire(self._global, slot)
            try:
                yield slot
            finally:
                self._sending.discard(slot)
                if self._global is not None:
                    self._global.release_on_behalf_of(slot)
        finally:
            try:
                if slot.counted and self._shared is not None:
                    await self._give_shared(self._shared, slot)
            finally:
                self._concurrency.release_on_behalf_of(slot)

    async def _take(self, slot: Slot) -> None:
        if self._shared is not None and self._shared.switch.active:
            await self._take_shared(self._shared, slot)
            slot.counted = True
            return
        if self.rpm is not None:
            await self.rpm.take(1)
        if self.tpm is not None:
            await self.tpm.take(slot.estimated_tokens)
        if self._shared is not None and self._shared.switch.active:
            # The run went shared while this waited on a bucket here: it takes the run's too.
            await self._take_shared(self._shared, slot)
            slot.counted = True

    def go_shared(self) -> LocalLimits:
        """Count every attempt now in flight as the run's (they give back there); return that count,
        the adaptive concurrency and the buckets' levels. Sync, so no attempt starts in between."""
        for slot in self._sending:
            slot.counted = True
        rpm = None if self.rpm is None else self.rpm.level()
        tpm = None if self.tpm is None else self.tpm.level()
        return len(self._sending), self.effective_concurrency, rpm, tpm

    async def _take_shared(self, shared: Shared, slot: Slot) -> None:
        """Wait for the run's slot and tokens, polling the database as long as it says to wait."""
        async with shared.lock:
            while True:
                answer = await trio.to_thread.run_sync(
                    shared.switch.gate.take,
                    self.name,
                    slot.estimated_tokens,
                    limiter=shared.switch.db_limiter,
                )
                if answer.budget_spent:
                    raise BudgetSpent
                if answer.granted:
                    slot.epoch = answer.epoch
                    return
                await trio.sleep(answer.wait_s)

    async def _give_shared(self, shared: Shared, slot: Slot) -> None:
        outcome = None if slot.outcome is None else (slot.outcome, slot.epoch)
        # Shielded and bounded: a cancelled attempt still frees its slot at once if the database
        # answers; if it does not, the slot lapses with this process's heartbeat.
        with (
            trio.CancelScope(shield=True),
            trio.move_on_after(GIVE_BACK_SECONDS),
            contextlib.suppress(StorageError),
        ):
            await trio.to_thread.run_sync(
                shared.switch.gate.give,
                self.name,
                slot.correction,
                outcome,
                slot.cost,
                limiter=shared.switch.db_limiter,
            )

    def on_outcome(self, rate_limited: bool, *, slot: Slot | None = None) -> None:
        """Feed one attempt's result to the adaptive limit (pass the slot to group 429 bursts).

        Shared: the outcome rides on the slot's give-back (call this before leaving ``slot()``).
        """
        if slot is not None and slot.counted:
            slot.outcome = rate_limited
            return
        if rate_limited:
            self._successes = 0
            if slot is not None and slot.epoch != self._epoch:
                return  # sent before the last decrease: already accounted for
            self._epoch += 1
            # Lowering total_tokens below the borrowed count is allowed: trio just grants nothing
            # until enough slots are released.
            self._concurrency.total_tokens = max(1, self.effective_concurrency // 2)
            return
        self._successes += 1
        if self._successes >= self._recover_after and self.effective_concurrency < self._configured:
            self._successes = 0
            self._concurrency.total_tokens = self.effective_concurrency + 1


async def _acquire(limiter: trio.CapacityLimiter, borrower: object) -> None:
    """``limiter.acquire_on_behalf_of(borrower)``, without its schedule point when a token is free.

    Each schedule point between a unit's start and its request's send put the send one more trip
    through the scheduler later, and when a wave of streams ends the loop is so busy that a trip
    takes milliseconds: the next wave's requests all went out only after every unit of the wave had
    started. Taken at once only when nobody waits (trio's nowait refuses then), so the limiters stay
    FIFO; when no token is free it waits as before. The send checkpoints right after.
    """
    try:
        limiter.acquire_on_behalf_of_nowait(borrower)
    except trio.WouldBlock:
        await limiter.acquire_on_behalf_of(borrower)


def build_limiters(
    providers: Iterable[ProviderSpec],
    *,
    global_concurrency: int | None = None,
    recover_after: int = 10,
    switch: SharedSwitch | None = None,
) -> dict[str, ProviderLimiter]:
    """One limiter per provider name, all under one shared global cap when ``global_concurrency`` is set;
    drawing from the run's shared limits while ``switch`` is active."""
    capped = trio.CapacityLimiter(global_concurrency) if global_concurrency else None
    return {
        provider.name: ProviderLimiter(
            concurrency=provider.concurrency,
            rpm=provider.rpm,
            tpm=provider.tpm,
            global_limiter=capped,
            recover_after=recover_after,
            name=provider.name,
            shared=None if switch is None else Shared(switch=switch),
        )
        for provider in providers
    }
