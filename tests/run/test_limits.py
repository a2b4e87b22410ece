"""Provider limits on trio's virtual clock: concurrency, RPM/TPM buckets, adaptive AIMD and a global cap."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
import trio
import trio.testing

from runner.run.estimate import DEFAULT_OUTPUT_ESTIMATE, estimate_tokens
from runner.run.limits import ProviderLimiter, TokenBucket, build_limiters
from runner.spec import CaseSpec, ProviderSpec


async def _send_all(limiter: ProviderLimiter, count: int, tokens: int = 1, hold: float = 0.0) -> list[float]:
    """Start ``count`` requests at once; return when each got its slot (virtual seconds)."""
    granted: list[float] = []

    async def one() -> None:
        async with limiter.slot(tokens):
            granted.append(trio.current_time())
            await trio.sleep(hold)

    async with trio.open_nursery() as nursery:
        for _ in range(count):
            nursery.start_soon(one)
    return sorted(granted)


async def test_rpm_spaces_requests(autojump_clock: trio.testing.MockClock) -> None:
    """rpm=60 lets one request through per second after a one-request burst: 10 requests take 9 s."""
    granted = await _send_all(ProviderLimiter(concurrency=100, rpm=60), 10)
    assert granted[0] == 0
    assert granted[-1] == pytest.approx(9.0)
    assert [b - a for a, b in itertools.pairwise(granted)] == pytest.approx([1.0] * 9)


async def test_tpm_budget_and_settle(autojump_clock: trio.testing.MockClock) -> None:
    """tpm=60,000 passes 1,000 tokens a second; settling with a smaller actual count refunds the rest."""
    limiter = ProviderLimiter(concurrency=100, tpm=60_000)
    granted = await _send_all(limiter, 4, tokens=500)
    assert granted == pytest.approx([0, 0, 0.5, 1.0])  # a 1,000-token burst, then 500 per 0.5 s
    start = trio.current_time()
    async with limiter.slot(1000) as slot:
        slot.settle(100)  # the estimate was 10x too high: 900 tokens come back
        slot.settle(5000)  # a second settle is ignored
    async with limiter.slot(900):
        pass
    assert trio.current_time() - start == pytest.approx(1.0)


async def test_big_request_passes_in_debt(autojump_clock: trio.testing.MockClock) -> None:
    """A request larger than the burst still goes, and the next waits for the debt to refill."""
    bucket = TokenBucket(per_minute=60_000)
    await bucket.take(5000)
    assert trio.current_time() == 0
    await bucket.take(1)
    assert trio.current_time() == pytest.approx(4.001)


async def test_concurrency_limit(autojump_clock: trio.testing.MockClock) -> None:
    """With concurrency 2, four 1-second requests take 2 s."""
    granted = await _send_all(ProviderLimiter(concurrency=2), 4, hold=1.0)
    assert granted == pytest.approx([0, 0, 1, 1])


async def test_adaptive_halving_and_recovery() -> None:
    """A 429 halves the limit once per congestion event; successes add one back up to the configured limit."""
    limiter = ProviderLimiter(concurrency=8, recover_after=3)
    async with limiter.slot(1) as early, limiter.slot(1) as also_early:
        limiter.on_outcome(True, slot=early)
        assert limiter.effective_concurrency == 4
        limiter.on_outcome(True, slot=also_early)  # same burst of 429s: no second halving
        assert limiter.effective_concurrency == 4
    for _ in range(5):
        limiter.on_outcome(True)
    assert limiter.effective_concurrency == 1  # never below one
    for _ in range(3 * 20):
        limiter.on_outcome(False)
    assert limiter.effective_concurrency == 8  # +1 per 3 successes, capped at the configured 8
    limiter.on_outcome(False)
    assert limiter.effective_concurrency == limiter.configured_concurrency == 8


async def test_a_429_resets_the_success_streak() -> None:
    """Recovery needs N consecutive successes: a 429 in between starts the count again."""
    limiter = ProviderLimiter(concurrency=4, recover_after=2)
    limiter.on_outcome(True)
    assert limiter.effective_concurrency == 2
    limiter.on_outcome(False)
    limiter.on_outcome(True)
    limiter.on_outcome(False)
    assert limiter.effective_concurrency == 1
    limiter.on_outcome(False)
    assert limiter.effective_concurrency == 2


async def test_halved_limit_throttles_new_slots(autojump_clock: trio.testing.MockClock) -> None:
    """After halving, no new slot is granted until in-flight ones drop below the new limit."""
    limiter = ProviderLimiter(concurrency=4)
    limiter.on_outcome(True)
    granted = await _send_all(limiter, 4, hold=1.0)
    assert granted == pytest.approx([0, 0, 1, 1])


async def test_global_cap_across_providers(autojump_clock: trio.testing.MockClock) -> None:
    """A global cap of 2 bounds the sum of in-flight requests over all providers."""
    providers = [
        ProviderSpec(name=name, dialect="openai-chat", base_url="https://x.test", model="m", concurrency=4)
        for name in ("a", "b")
    ]
    limiters = build_limiters(providers, global_concurrency=2)
    holding = peak = 0

    async def one(limiter: ProviderLimiter) -> None:
        nonlocal holding, peak
        async with limiter.slot(1):
            holding += 1
            peak = max(peak, holding)
            await trio.sleep(1)
            holding -= 1

    async with trio.open_nursery() as nursery:
        for limiter in limiters.values():
            for _ in range(3):
                nursery.start_soon(one, limiter)
    assert peak == 2
    assert trio.current_time() == pytest.approx(3.0)


def test_estimate_tokens() -> None:
    """The estimate is prompt characters / 4 plus max_tokens (or a default when unset)."""
    provider = ProviderSpec(
        name="p", dialect="openai-chat", base_url="https://x.test", model="m", params={"max_tokens": 100}
    )
    case = CaseSpec(id="c", system="s" * 40, messages=({"role": "user", "content": "u" * 360},))
    assert estimate_tokens(provider, case) == 100 + 100
    bare = ProviderSpec(name="p", dialect="runware", base_url="https://x.test", model="m")
    parts = CaseSpec(id="c", messages=({"role": "user", "content": [{"type": "text", "text": "x" * 8}]},))
    assert estimate_tokens(bare, parts) == 2 + DEFAULT_OUTPUT_ESTIMATE
    nested = CaseSpec(
        id="c", messages=({"role": "user", "content": ""},), params={"settings": {"maxTokens": 50}}
    )
    assert estimate_tokens(bare, nested) == 50


async def test_a_free_slot_is_granted_without_a_schedule_point_and_waiters_keep_their_turn() -> None:
    """A free slot (provider's and global) is granted with no task switch; a slot that frees while
    someone waits goes to that waiter, never to a newcomer."""
    provider = ProviderSpec(name="a", dialect="openai-chat", base_url="https://x.test", model="m")
    limiter = build_limiters([dataclasses.replace(provider, concurrency=1)], global_concurrency=1)["a"]
    order: list[str] = []

    async def take(name: str) -> None:
        async with limiter.slot(1):
            order.append(name)
            await trio.sleep(0.01)

    async with trio.open_nursery() as nursery:
        ran = False

        async def other() -> None:
            nonlocal ran
            ran = True

        nursery.start_soon(other)
        async with limiter.slot(1):
            assert not ran  # granted at once: the other task has not had a turn
            nursery.start_soon(take, "waiter")
            await trio.sleep(0.001)  # the waiter is queued for the slot
        await take("newcomer")  # asks while the freed slot is the waiter's
    assert order == ["waiter", "newcomer"]
