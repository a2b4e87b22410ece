"""One claimed unit's task: its request built, its attempts made under the provider's limits and
retried by the one retry loop, each stored through the writer (a cut-off one too), and its finish
handed off.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import trio

from runner.model import AttemptError, AttemptRecord, AttemptTiming
from runner.run import retry
from runner.run.attempt import CANCELLED_MESSAGE, run_attempt
from runner.run.estimate import estimate_tokens
from runner.run.finish import computed_and_booked_cost, finish_grading, finish_unit, grading_case, usage_of
from runner.run.limits import BudgetSpent
from runner.store.records import AttemptWrite

if TYPE_CHECKING:
    from runner.model import Usage
    from runner.run.context import RunContext, RunState
    from runner.run.limits import ProviderLimiter
    from runner.run.progress import Progress, ProviderCounters
    from runner.spec import ProviderSpec
    from runner.store.records import ClaimedUnit, WriteItem
    from runner.wire.dialects.base import Dialect, HttpRequest

log = logging.getLogger(__name__)

# Longest a hand-off to the writer may wait once the run is being cancelled (the writer's drain
# timeout has the same length: both bound how long a Ctrl-C takes).
HAND_OFF_SECONDS = 5.0


@dataclass(frozen=True, slots=True, kw_only=True)
class _Work:
    """One claimed unit resolved against the run: what each of its attempts needs."""

    unit: ClaimedUnit
    provider: ProviderSpec
    dialect: Dialect
    limiter: ProviderLimiter
    request: HttpRequest
    estimate: int  # tokens the request is expected to count against TPM


async def work_unit(
    ctx: RunContext,
    owner: str,
    send: trio.MemorySendChannel[WriteItem],
    state: RunState,
    progress: Progress,
    unit: ClaimedUnit,
) -> None:
    """Work one claimed unit (counted in flight by the feeder) to its final attempt, and hand its
    finish to the writer."""
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
    state: RunState,
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
    state: RunState,
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
    state: RunState,
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
