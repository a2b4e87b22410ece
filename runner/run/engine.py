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
"""

from __future__ import annotations

import contextlib
import logging
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal, Protocol

import trio

from runner.errors import StorageError
from runner.model import AttemptError, AttemptRecord, AttemptTiming
from runner.run import retry
from runner.run.attempt import CANCELLED_MESSAGE, run_attempt
from runner.run.breaker import Breaker
from runner.run.claims import ClaimAhead
from runner.run.finish import computed_and_booked_cost, finish_grading, finish_unit, grading_case, usage_of
from runner.run.limits import BudgetSpent, estimate_tokens
from runner.run.redact import Redactor
from runner.store.records import AttemptWrite, Flush, WriteItem

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import httpx

    from runner.model import Usage
    from runner.run.limits import ProviderLimiter, SharedSwitch
    from runner.run.progress import Progress, ProviderCounters
    from runner.spec import CaseSpec, ProviderSpec
    from runner.store.records import ClaimedUnit
    from runner.wire.dialects.base import Dialect, HttpRequest

log = logging.getLogger(__name__)

# Longest a hand-off to the writer may wait once the run is being cancelled (the writer's drain
# timeout has the same length: both bound how long a Ctrl-C takes).
HAND_OFF_SECONDS = 5.0


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


RunEnd = Literal["finished", "interrupted"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RunResult:
    """How the run ended in this process: ``interrupted`` when the budget stopped it."""

    end: RunEnd
    ok: int
    failed: int
    spent_usd: float


@dataclass(slots=True)
class _State:
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
        found = self.breakers.get(provider)
        if found is None:
            found = self.breakers[provider] = Breaker()
        return found

    def spend(self, cost: float | None) -> None:
        if cost:
            self.spent += cost
        if self.budget_cap is not None and self.spent >= self.budget_cap:
            self.budget_spent.set()


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
    state = _State(budget_cap=ctx.max_cost_usd)
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
                    work.start_soon(_feed, work, ctx, queue, send, state, progress)
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
    state: _State,
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


async def _go_shared(ctx: RunContext, switch: SharedSwitch, state: _State, already_spent_usd: float) -> None:
    # Snapshot and switch in one step (no await between): every attempt from here on takes from
    # the run's rows, and the ones in flight give back there. The publish goes first in the
    # database limiter's queue (it is FIFO), before any take made after the switch.
    in_flight = {name: limiter.go_shared() for name, limiter in ctx.limiters.items()}
    switch.active = True
    await trio.to_thread.run_sync(
        switch.gate.go_shared, in_flight, state.spent - already_spent_usd, limiter=ctx.db_limiter
    )


async def _feed(
    nursery: trio.Nursery,
    ctx: RunContext,
    queue: UnitQueue,
    send: trio.MemorySendChannel[WriteItem],
    state: _State,
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
    state: _State,
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
            nursery.start_soon(_work_unit, ctx, owner, send.clone(), state, progress, unit)
        free[name] = max(slots, 0)
    return free


async def _claim(
    ctx: RunContext, queue: UnitQueue, state: _State, claims: ClaimAhead, wants: Mapping[str, int]
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


@dataclass(frozen=True, slots=True, kw_only=True)
class _Work:
    """One claimed unit resolved against the run: what each of its attempts needs."""

    unit: ClaimedUnit
    provider: ProviderSpec
    dialect: Dialect
    limiter: ProviderLimiter
    request: HttpRequest
    estimate: int  # tokens the request is expected to count against TPM


async def _work_unit(
    ctx: RunContext,
    owner: str,
    send: trio.MemorySendChannel[WriteItem],
    state: _State,
    progress: Progress,
    unit: ClaimedUnit,
) -> None:
    provider = ctx.providers[unit.provider]
    graded_case = case = ctx.cases[unit.case_id]
    if unit.grading_prompt is not None:  # a grading unit: the judge is sent the grading request
        case = grading_case(unit.case_id, unit.grading_prompt)
    dialect = ctx.dialects[provider.dialect]
    work = _Work(
        unit=unit,
        provider=provider,
        dialect=dialect,
        limiter=ctx.limiters[provider.name],
        request=dialect.build_request(provider, case, api_key=ctx.api_keys.get(provider.name)),
        estimate=estimate_tokens(provider, case),
    )
    counters = progress.of(provider.name)  # its in_flight was counted by the feeder at the claim
    counters.grading = unit.grading_prompt is not None
    async with send:
        try:
            final, cost, unit_spent = await _attempt_until_final(ctx, work, send, state, counters)
        except BudgetSpent:
            # Another process spent the run's budget before this attempt could start: the unit
            # stays unfinished under our lease, which the end of the run gives back as pending.
            state.budget_spent.set()
            return
        finally:
            counters.in_flight -= 1
            state.slot_freed.set()
        if final.error is None:
            counters.done += 1
        else:
            counters.failed += 1
        usage = usage_of(final)
        counters.output_tokens += (usage.output_tokens or 0) if usage else 0
        counters.cost_usd += unit_spent
        # Shielded: a Ctrl-C landing between the attempt's end and this hand-off must not lose a
        # finished, paid-for attempt (its unit would be requested again on resume).
        if unit.grading_prompt is not None:
            finish = finish_grading(unit, graded_case, final, owner=owner, cost_computed=cost)
        else:
            judges = {name: p for name, p in ctx.providers.items() if p.role == "judge"}
            finish = finish_unit(
                unit, case, final, owner=owner, cost_computed=cost, unit_spent=unit_spent, judges=judges
            )
            state.grading_unflushed |= finish.grading is not None
        await _hand_off(send, finish)


@dataclass(slots=True)
class _Spent:
    """What a unit's attempts spent here, added up across attempts (for the max_cost_usd assertion)."""

    usd: float = 0.0


async def _attempt_until_final(
    ctx: RunContext,
    work: _Work,
    send: trio.MemorySendChannel[WriteItem],
    state: _State,
    counters: ProviderCounters,
) -> tuple[AttemptRecord, float | None, float]:
    """Attempt the unit until it succeeds or may not retry: its final attempt, that attempt's
    computed cost, and what all its attempts spent here (for the max_cost_usd assertion)."""
    spent = _Spent()
    try:
        # The first attempt outside tenacity's loop: most units make no other, and the loop (its
        # RetryCallState, action chain and coroutine checks) cost ~20 us a unit even then.
        record, cost = await _attempt_or_schedule(ctx, work, send, state, counters, 1, spent)
    except retry.RetryScheduled as first:
        async for attempt in retry.retrying(work.provider.retry, rng=state.jitter):
            with attempt:
                made = attempt.retry_state.attempt_number  # in this process; the unit may have had more
                if made == 1:
                    # Made above, and stored: replayed so that tenacity waits before attempt 2
                    # exactly as it waits before every later one (backoff, or Retry-After).
                    raise first
                record, cost = await _attempt_or_schedule(ctx, work, send, state, counters, made, spent)
    return record, cost, spent.usd


async def _attempt_or_schedule(
    ctx: RunContext,
    work: _Work,
    send: trio.MemorySendChannel[WriteItem],
    state: _State,
    counters: ProviderCounters,
    made: int,
    spent: _Spent,
) -> tuple[AttemptRecord, float | None]:
    """Attempt ``made`` of the unit in this process: the final attempt and its computed cost, or
    ``RetryScheduled`` once a retryable failure is stored."""
    policy = work.provider.retry
    record = await _attempt_once(ctx, work, send, work.unit.attempts + made, state, counters)
    cost, booked = computed_and_booked_cost(record, work.provider.price)
    spent.usd += booked or 0.0
    state.spend(booked)
    decision = retry.decision_of(record.error)
    if decision is not None and retry.will_retry(decision, policy, attempts_made=made):
        counters.retrying += 1
        # Stored now, before tenacity's backoff sleep, so an interruption during the sleep
        # cannot lose it (its tokens count for cost). The final attempt goes with UnitFinish.
        await _hand_off(
            send,
            AttemptWrite(
                unit_id=work.unit.id,
                attempt=record,
                cost_computed=cost,
                lease_token=work.unit.lease_token,
            ),
        )
        raise retry.RetryScheduled(decision)
    return record, cost


async def _attempt_once(
    ctx: RunContext,
    work: _Work,
    send: trio.MemorySendChannel[WriteItem],
    number: int,
    state: _State,
    counters: ProviderCounters,
) -> AttemptRecord:
    """One attempt under the provider's limits; a cancelled one is stored as such, then re-raised.

    A provider that refused everyone (``runner.run.breaker``) gets no request: the attempt is a
    "not sent" failure with the refusal's kind.
    """
    started_at = datetime.now(UTC)
    started = trio.current_time()
    breaker = state.breaker(work.provider.name)
    if breaker.stopped is not None:
        return breaker.not_sent(work.provider.name, work.unit.key, number, started_at)
    received: list[AttemptRecord] = []  # what run_attempt had when a cancellation cut it off
    try:
        async with work.limiter.slot(work.estimate) as slot:
            record = await run_attempt(
                ctx.client,
                work.dialect,
                work.request,
                unit_key=work.unit.key,
                number=number,
                timeouts=work.provider.timeouts,
                capture=ctx.capture,
                max_response_bytes=work.provider.max_response_bytes,
                on_cancel=received.append,
            )
            # The one place a provider's answer enters the run: from here on (grading, the
            # writer, the database, reports) no echoed key can be in it.
            record = ctx.redactor.record(record, work.provider.dialect)
            slot.settle(_used_tokens(usage_of(record)))
            rate_limited = record.error is not None and record.error.kind == "rate_limited"
            # Inside the slot: with shared limits the outcome and the cost go back with the slot.
            work.limiter.on_outcome(rate_limited, slot=slot)
            slot.cost = computed_and_booked_cost(record, work.provider.price)[1] or 0.0
    except trio.Cancelled:
        # Ctrl-C / SIGTERM: store the cut-off attempt so the timeline shows it, with what it had
        # received (partial output, bytes, timings, raw body; its tokens count for cost). Cut
        # while waiting for its slot, it never sent anything: an empty cancelled record.
        if received:
            # What it received came from the provider: redacted like every other record.
            cut = ctx.redactor.record(received[0], work.provider.dialect)
        else:
            cut = _cancelled(work.unit.key, number, started_at, trio.current_time() - started)
        cost, _ = computed_and_booked_cost(cut, work.provider.price)
        await _hand_off(
            send,
            AttemptWrite(
                unit_id=work.unit.id, attempt=cut, cost_computed=cost, lease_token=work.unit.lease_token
            ),
        )
        raise  # (_hand_off has re-raised the cancellation already; this keeps the intent plain)
    refusal = breaker.record(record.error)
    if refusal is not None:
        counters.stopped = refusal.kind
        log.warning(
            "provider %s refused %d units in a row (%s); its remaining units fail without being sent",
            work.provider.name,
            breaker.threshold,
            refusal.kind,
        )
    return record


async def _hand_off(send: trio.MemorySendChannel[WriteItem], item: WriteItem) -> None:
    """Give ``item`` to the writer, even when the run is being cancelled meanwhile.

    A plain send waits as long as the writer needs (backpressure). If a cancellation arrives, the
    item was not delivered (trio's send is atomic), so it is sent again shielded: a cancellation
    must not drop a record whose request was already paid for (the writer drains its channel before
    it stops). Bounded, so a writer stuck on a dead database cannot hang shutdown; a writer that
    already gave up (past its drain timeout, or failed) must not turn the interruption into a crash:
    then the record is lost, and the cancellation still propagates.
    """
    try:
        await send.send(item)
    except trio.Cancelled:
        with (
            trio.CancelScope(shield=True),
            trio.move_on_after(HAND_OFF_SECONDS),
            contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError),
        ):
            await send.send(item)
        raise


def _used_tokens(usage: Usage | None) -> int | None:
    if usage is None:
        return None
    if usage.total_tokens is not None:
        return usage.total_tokens
    if usage.input_tokens is None and usage.output_tokens is None:
        return None
    return (usage.input_tokens or 0) + (usage.output_tokens or 0)


def _cancelled(unit_key: str, number: int, started_at: datetime, elapsed: float) -> AttemptRecord:
    return AttemptRecord(
        unit_key=unit_key,
        number=number,
        http_status=None,
        error=AttemptError(kind="cancelled", message=CANCELLED_MESSAGE),
        completion=None,
        timing=AttemptTiming(started_at=started_at, end_s=elapsed),
    )
