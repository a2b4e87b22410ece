"""Per-provider send limits on trio's clock: concurrency, RPM and TPM buckets, adaptive backoff on 429.

One ``ProviderLimiter`` per provider, owned by the engine for one run, plus an optional global
``trio.CapacityLimiter`` shared by all of them (``--concurrency``). A unit holds a slot for one HTTP
attempt only, never across a retry's sleep, so a backing-off unit does not block its provider.
"""

from __future__ import annotations

import json
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Final

import trio

from runner.spec import request_params
from runner.wire.dialects import get_dialect

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable

    from runner.spec import CaseSpec, ProviderSpec

# Output tokens assumed when a request sets no max_tokens: providers reserve TPM for the cap, and
# a budget that assumes too little only means a correction after the usage arrives.
DEFAULT_OUTPUT_ESTIMATE: Final = 1024


def estimate_tokens(provider: ProviderSpec, case: CaseSpec) -> int:
    """Tokens a request will count against TPM before it is sent: prompt chars / 4 + max tokens.

    The max tokens are the cap the provider's dialect puts in the request (each names it its own way).
    """
    chars = len(case.system or "")
    if case.tools:  # tool schemas are sent, and counted, as part of the prompt
        chars += len(json.dumps(list(case.tools)))
    for message in case.messages:
        chars += _content_chars(message.get("content"))
    output = get_dialect(provider.dialect).max_output_tokens(request_params(provider, case))
    return chars // 4 + (DEFAULT_OUTPUT_ESTIMATE if output is None else output)


def _content_chars(content: Any) -> int:
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):  # content parts: count the text ones
        return sum(len(part.get("text", "")) for part in content if isinstance(part, dict))
    return 0


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

    def give_back(self, amount: float) -> None:
        """Correct an estimate: a positive ``amount`` returns tokens, a negative one charges more."""
        self._refill()
        self._tokens = min(self._capacity, self._tokens + amount)


class Slot:
    """One granted attempt; ``settle`` corrects the TPM estimate with the usage actually reported."""

    __slots__ = ("_limiter", "_settled", "epoch", "estimated_tokens")

    def __init__(self, limiter: ProviderLimiter, estimated_tokens: int, epoch: int) -> None:
        self._limiter = limiter
        self._settled = False
        self.estimated_tokens = estimated_tokens
        self.epoch = epoch  # the limiter's decrease count when granted

    def settle(self, actual_tokens: int | None) -> None:
        """Charge ``actual_tokens`` instead of the estimate (once; None keeps the estimate)."""
        if actual_tokens is None or self._settled:
            return
        self._settled = True
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
    ) -> None:
        self._configured = concurrency
        self._concurrency = trio.CapacityLimiter(concurrency)
        self._global = global_limiter
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
        await self._concurrency.acquire_on_behalf_of(slot)
        try:
            if self.rpm is not None:
                await self.rpm.take(1)
            if self.tpm is not None:
                await self.tpm.take(estimated_tokens)
            if self._global is not None:
                await self._global.acquire_on_behalf_of(slot)
            try:
                yield slot
            finally:
                if self._global is not None:
                    self._global.release_on_behalf_of(slot)
        finally:
            self._concurrency.release_on_behalf_of(slot)

    def on_outcome(self, rate_limited: bool, *, slot: Slot | None = None) -> None:
        """Feed one attempt's result to the adaptive limit (pass the slot to group 429 bursts)."""
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


def build_limiters(
    providers: Iterable[ProviderSpec], *, global_concurrency: int | None = None, recover_after: int = 10
) -> dict[str, ProviderLimiter]:
    """One limiter per provider name, all under one shared global cap when ``global_concurrency`` is set."""
    shared = trio.CapacityLimiter(global_concurrency) if global_concurrency else None
    return {
        provider.name: ProviderLimiter(
            concurrency=provider.concurrency,
            rpm=provider.rpm,
            tpm=provider.tpm,
            global_limiter=shared,
            recover_after=recover_after,
        )
        for provider in providers
    }
