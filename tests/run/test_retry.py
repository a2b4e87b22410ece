"""The retry layer: HTTP and exception classification, server hints, and tenacity on trio's virtual clock."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import pytest
import trio

from runner import errors
from runner.model import Completion, CompletionError
from runner.run.retry import (
    RetryDecision,
    backoff,
    build_retrying,
    classify_completion,
    classify_exception,
    classify_http,
    parse_retry_after,
    run_with_retries,
    should_retry,
)
from runner.spec import RetryPolicy

NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)


class _CeilingRandom(random.Random):
    """Jitter that always picks the top of its range, so backoff spacing is exact."""

    def uniform(self, a: float, b: float) -> float:
        return b


@dataclass
class _Outcome:
    """A stand-in for the attempt layer's outcome: just the decision the retry layer reads."""

    decision: RetryDecision | None
    started: float = field(default=0.0)


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [
        pytest.param(408, "timeout", True, id="408"),
        pytest.param(409, "client_error", True, id="409"),
        pytest.param(425, "client_error", True, id="425"),
        pytest.param(429, "rate_limited", True, id="429"),
        pytest.param(500, "server_error", True, id="500"),
        pytest.param(503, "server_error", True, id="503"),
        pytest.param(529, "overloaded", True, id="529"),
        pytest.param(400, "client_error", False, id="400"),
        pytest.param(401, "auth_error", False, id="401"),
        pytest.param(403, "auth_error", False, id="403"),
        pytest.param(402, "payment_required", False, id="402"),
        pytest.param(404, "not_found", False, id="404"),
        pytest.param(422, "client_error", False, id="422"),
        pytest.param(418, "client_error", False, id="418"),
    ],
)
def test_classify_http_status(status: int, kind: str, retryable: bool) -> None:
    """Each status maps to its error kind and retryability."""
    decision = classify_http(status, {}, now=NOW)
    assert (decision.kind, decision.retryable) == (kind, retryable)


def test_insufficient_quota_429_is_not_retried() -> None:
    """A 429 whose body says insufficient_quota is quota_exhausted and final."""
    decision = classify_http(429, {}, now=NOW, error_type="insufficient_quota")
    assert decision == RetryDecision(kind="quota_exhausted", retryable=False)
    assert classify_http(429, {}, now=NOW, error_code="insufficient_quota").kind == "quota_exhausted"


def test_overloaded_error_body_is_overloaded() -> None:
    """Anthropic's overloaded_error body classifies as overloaded whatever the status."""
    assert classify_http(503, {}, now=NOW, error_type="overloaded_error").kind == "overloaded"


@pytest.mark.parametrize(
    ("status", "header", "retryable"),
    [
        pytest.param(400, "true", True, id="force-retry"),
        pytest.param(503, "false", False, id="forbid-retry"),
        pytest.param(503, "maybe", True, id="ignored"),
    ],
)
def test_x_should_retry_overrides(status: int, header: str, retryable: bool) -> None:
    """x-should-retry: true/false overrides the status table; other values are ignored."""
    assert classify_http(status, {"X-Should-Retry": header}, now=NOW).retryable is retryable


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param({"retry-after-ms": "1500"}, 1.5, id="ms"),
        pytest.param({"retry-after-ms": "250", "retry-after": "9"}, 0.25, id="ms-first"),
        pytest.param({"Retry-After": "7"}, 7.0, id="seconds"),
        pytest.param({"retry-after": "Wed, 01 Jan 2025 12:00:30 GMT"}, 30.0, id="http-date"),
        pytest.param({"retry-after": "Wed, 01 Jan 2025 11:00:00 GMT"}, None, id="date-in-past"),
        pytest.param({"retry-after": "0"}, None, id="zero"),
        pytest.param({"retry-after": "-3"}, None, id="negative"),
        pytest.param({"retry-after": "soon"}, None, id="garbage"),
        pytest.param({"retry-after-ms": "nan", "retry-after": "2"}, 2.0, id="bad-ms-falls-through"),
        pytest.param({}, None, id="absent"),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    """retry-after-ms wins, then Retry-After seconds, then an HTTP date relative to now; junk is ignored."""
    assert parse_retry_after(headers, now=NOW) == expected


def test_http_date_needs_now() -> None:
    """Without a clock reading an HTTP-date Retry-After is ignored rather than guessed."""
    assert parse_retry_after({"retry-after": "Wed, 01 Jan 2025 12:00:30 GMT"}, now=None) is None


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        pytest.param(httpx.ConnectError("refused"), "connect_error", id="connect"),
        pytest.param(httpx.ReadTimeout("slow"), "timeout", id="read-timeout"),
        pytest.param(trio.TooSlowError(), "timeout", id="trio-timeout"),
        pytest.param(httpx.RemoteProtocolError("peer closed"), "early_close", id="remote-protocol"),
        pytest.param(httpx.ReadError("reset"), "early_close", id="read-reset"),
        pytest.param(ConnectionResetError(), "early_close", id="os-reset"),
        pytest.param(errors.StreamProtocolError("bad chunk"), "protocol_error", id="protocol"),
        pytest.param(errors.TransportError("cut"), "early_close", id="transport"),
        pytest.param(errors.ServerError("boom", status=502), "server_error", id="server"),
    ],
)
def test_classify_exception_retryable(exc: Exception, kind: str) -> None:
    """Transport failures, timeouts and protocol errors are retryable with their kind."""
    decision = classify_exception(exc)
    assert decision is not None
    assert (decision.kind, decision.retryable) == (kind, True)


def test_classify_exception_special_cases() -> None:
    """A RateLimitedError keeps its retry_after; client errors are final; unknown errors are bugs (None)."""
    assert classify_exception(errors.RateLimitedError("slow down", retry_after=3.0)) == RetryDecision(
        kind="rate_limited", retryable=True, retry_after=3.0
    )
    decision = classify_exception(errors.ClientError("nope", status=401))
    assert decision is not None
    assert (decision.kind, decision.retryable) == ("auth_error", False)
    assert classify_exception(ValueError("bug")) is None
    assert classify_exception(KeyboardInterrupt()) is None


@pytest.mark.parametrize(
    ("completion", "kind", "retryable"),
    [
        pytest.param(Completion(complete=True), None, None, id="ok"),
        pytest.param(Completion(complete=False), "early_close", True, id="no-terminal"),
        pytest.param(
            Completion(error=CompletionError(type="protocol_error", message="x")),
            "protocol_error",
            True,
            id="protocol",
        ),
        pytest.param(
            Completion(error=CompletionError(type="server_error", message="x")),
            "stream_error",
            True,
            id="stream",
        ),
        pytest.param(
            Completion(error=CompletionError(type="overloaded_error", message="x")),
            "overloaded",
            True,
            id="overloaded",
        ),
        pytest.param(
            Completion(error=CompletionError(type="x", message="x", code="insufficient_quota")),
            "quota_exhausted",
            False,
            id="quota",
        ),
    ],
)
def test_classify_completion(completion: Completion, kind: str | None, retryable: bool | None) -> None:
    """A 2xx stream without its terminal signal or with an in-band error is a classified failure."""
    decision = classify_completion(completion)
    if kind is None:
        assert decision is None
    else:
        assert decision is not None
        assert (decision.kind, decision.retryable) == (kind, retryable)


def test_should_retry_caps_retry_after() -> None:
    """A Retry-After longer than retry_after_max fails the unit instead of sleeping."""
    policy = RetryPolicy(retry_after_max=60)
    assert should_retry(RetryDecision(kind="rate_limited", retryable=True, retry_after=60), policy)
    assert not should_retry(RetryDecision(kind="rate_limited", retryable=True, retry_after=61), policy)
    assert not should_retry(RetryDecision(kind="auth_error", retryable=False), policy)
    assert not should_retry(None, policy)


def test_backoff_is_full_jitter_under_the_cap() -> None:
    """Backoff lies in [0, min(max, initial * 2^(n-1))] and never overflows for huge n."""
    policy = RetryPolicy(backoff_initial=0.5, backoff_max=4)
    rng = random.Random(7)
    for retry_number, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 4.0), (10_000, 4.0)]:
        waits = [backoff(policy, retry_number, rng) for _ in range(200)]
        assert all(0 <= wait <= ceiling for wait in waits)
        assert max(waits) > ceiling * 0.8


SERVER_ERROR = RetryDecision(kind="server_error", retryable=True)


async def test_backoff_spacing_in_virtual_time(autojump_clock: trio.testing.MockClock) -> None:
    """Attempts are spaced 0.5, 1, 2 s (exponential) and stop after max_attempts with the last outcome."""
    policy = RetryPolicy(max_attempts=4, backoff_initial=0.5, backoff_max=30)
    starts: list[float] = []

    async def attempt() -> _Outcome:
        starts.append(trio.current_time())
        return _Outcome(decision=SERVER_ERROR)

    outcome = await run_with_retries(policy, attempt, rng=_CeilingRandom())
    assert outcome.decision == SERVER_ERROR
    assert [round(b - a, 6) for a, b in itertools.pairwise(starts)] == [0.5, 1.0, 2.0]


async def test_retry_after_overrides_backoff(autojump_clock: trio.testing.MockClock) -> None:
    """A server's retry_after replaces the computed backoff for that wait."""
    policy = RetryPolicy(max_attempts=3, backoff_initial=0.5)
    hinted = RetryDecision(kind="rate_limited", retryable=True, retry_after=7.0)
    decisions = iter([hinted, SERVER_ERROR, None])
    starts: list[float] = []

    async def attempt() -> _Outcome:
        starts.append(trio.current_time())
        return _Outcome(decision=next(decisions))

    outcome = await run_with_retries(policy, attempt, rng=_CeilingRandom())
    assert outcome.decision is None
    assert [round(b - a, 6) for a, b in itertools.pairwise(starts)] == [7.0, 1.0]


@pytest.mark.parametrize(
    "decision",
    [
        pytest.param(RetryDecision(kind="auth_error", retryable=False), id="not-retryable"),
        pytest.param(
            RetryDecision(kind="rate_limited", retryable=True, retry_after=121), id="retry-after-too-long"
        ),
        pytest.param(None, id="success"),
    ],
)
async def test_single_attempt_cases(
    autojump_clock: trio.testing.MockClock, decision: RetryDecision | None
) -> None:
    """Success, a final error and an over-long Retry-After each end after one attempt with no sleep."""
    calls = 0

    async def attempt() -> _Outcome:
        nonlocal calls
        calls += 1
        return _Outcome(decision=decision)

    outcome = await run_with_retries(RetryPolicy(retry_after_max=120), attempt)
    assert calls == 1
    assert outcome.decision == decision
    assert trio.current_time() == 0


async def test_async_for_form(autojump_clock: trio.testing.MockClock) -> None:
    """The engine's `async for attempt in build_retrying(...)` form retries and ends after success."""
    decisions = iter([SERVER_ERROR, SERVER_ERROR, None])
    seen: list[_Outcome] = []
    async for attempt in build_retrying(RetryPolicy(max_attempts=5), rng=_CeilingRandom()):
        with attempt:
            outcome = _Outcome(decision=next(decisions), started=trio.current_time())
            seen.append(outcome)
        if attempt.retry_state.outcome is not None and not attempt.retry_state.outcome.failed:
            attempt.retry_state.set_result(outcome)
    assert [o.started for o in seen] == [0.0, 0.5, 1.5]
    assert seen[-1].decision is None


async def test_exceptions_propagate_unretried(autojump_clock: trio.testing.MockClock) -> None:
    """An exception from the attempt function is a bug: it escapes on the first attempt."""
    calls = 0

    async def attempt() -> _Outcome:
        nonlocal calls
        calls += 1
        raise ValueError("bug")

    with pytest.raises(ValueError, match="bug"):
        await run_with_retries(RetryPolicy(), attempt)
    assert calls == 1


async def test_before_sleep_sees_each_retry(autojump_clock: trio.testing.MockClock) -> None:
    """before_sleep runs once per retry with the attempt number, for progress reporting."""
    numbers: list[int] = []

    async def attempt() -> _Outcome:
        return _Outcome(decision=SERVER_ERROR)

    await run_with_retries(
        RetryPolicy(max_attempts=3), attempt, before_sleep=lambda state: numbers.append(state.attempt_number)
    )
    assert numbers == [1, 2]
