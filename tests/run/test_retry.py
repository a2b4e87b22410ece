"""The retry layer: HTTP and exception classification, server hints, and tenacity on trio's virtual clock."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable
from datetime import UTC, datetime

import pytest
import trio

from runner import errors
from runner.model import AttemptError, Completion, CompletionError
from runner.run.retry import (
    RetryDecision,
    RetryScheduled,
    backoff,
    classify_completion,
    classify_exception,
    classify_http,
    decision_of,
    delay,
    parse_retry_after,
    retrying,
    should_retry,
    will_retry,
)
from runner.spec import RetryPolicy

NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)


class _CeilingRandom(random.Random):
    """Jitter that always picks the top of its range, so backoff spacing is exact."""

    def uniform(self, a: float, b: float) -> float:
        return b


async def _drive(
    policy: RetryPolicy, decisions: Iterable[RetryDecision | None], rng: random.Random | None = None
) -> tuple[list[float], RetryDecision | None]:
    """Run ``retrying`` as the engine does, one decision per attempt: start times and last decision."""
    outcomes = iter(decisions)
    starts: list[float] = []
    last: RetryDecision | None = None
    async for attempt in retrying(policy, rng=rng):
        with attempt:
            starts.append(trio.current_time())
            last = next(outcomes)
            made = attempt.retry_state.attempt_number
            if last is not None and will_retry(last, policy, attempts_made=made):
                raise RetryScheduled(last)
    return starts, last


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
        pytest.param(errors.ConnectError("refused"), "connect_error", id="connect"),
        pytest.param(errors.ConnectError("write failed", status=200), "connect_error", id="connect-late"),
        pytest.param(errors.TransportTimeoutError("slow"), "timeout", id="timeout"),
        pytest.param(errors.TransportError("peer closed", status=200), "early_close", id="cut-stream"),
        pytest.param(errors.TransportError("reset"), "connect_error", id="reset-before-response"),
        pytest.param(errors.StreamProtocolError("bad gzip", status=200), "protocol_error", id="protocol"),
    ],
)
def test_classify_exception_retryable(exc: Exception, kind: str) -> None:
    """Transport failures, timeouts and undecodable bodies are retryable, with their kind."""
    decision = classify_exception(exc)
    assert decision is not None
    assert (decision.kind, decision.retryable) == (kind, True)


def test_classify_exception_only_knows_provider_errors() -> None:
    """Anything but a ProviderError is a bug or a cancellation (None), an OSError included."""
    assert classify_exception(ValueError("bug")) is None
    assert classify_exception(ConnectionResetError()) is None
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


def test_will_retry_counts_attempts() -> None:
    """A retryable failure is retried until max_attempts attempts have been made in this process."""
    policy = RetryPolicy(max_attempts=3)
    assert will_retry(SERVER_ERROR, policy, attempts_made=2)
    assert not will_retry(SERVER_ERROR, policy, attempts_made=3)
    assert not will_retry(RetryDecision(kind="auth_error", retryable=False), policy, attempts_made=1)


def test_delay_prefers_retry_after() -> None:
    """The server's Retry-After is the wait when it named one; else full-jitter backoff."""
    policy = RetryPolicy(backoff_initial=0.5, backoff_max=30)
    assert delay(policy, 3, _CeilingRandom(), retry_after=7.0) == 7.0
    assert delay(policy, 3, _CeilingRandom(), retry_after=None) == 2.0


def test_decision_of_a_stored_error() -> None:
    """A stored AttemptError carries its decision back; a success has none."""
    error = AttemptError(kind="rate_limited", message="HTTP 429", retry_after=2.0, retryable=True)
    assert decision_of(error) == RetryDecision(kind="rate_limited", retryable=True, retry_after=2.0)
    assert decision_of(None) is None


SERVER_ERROR = RetryDecision(kind="server_error", retryable=True)


async def test_backoff_spacing_in_virtual_time(autojump_clock: trio.testing.MockClock) -> None:
    """Attempts are spaced 0.5, 1, 2 s (exponential) and stop after max_attempts with the last outcome."""
    policy = RetryPolicy(max_attempts=4, backoff_initial=0.5, backoff_max=30)
    starts, last = await _drive(policy, itertools.repeat(SERVER_ERROR), rng=_CeilingRandom())
    assert last == SERVER_ERROR
    assert [round(b - a, 6) for a, b in itertools.pairwise(starts)] == [0.5, 1.0, 2.0]


async def test_retry_after_overrides_backoff(autojump_clock: trio.testing.MockClock) -> None:
    """A server's retry_after replaces the computed backoff for that wait."""
    policy = RetryPolicy(max_attempts=3, backoff_initial=0.5)
    hinted = RetryDecision(kind="rate_limited", retryable=True, retry_after=7.0)
    starts, last = await _drive(policy, [hinted, SERVER_ERROR, None], rng=_CeilingRandom())
    assert last is None
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
    starts, last = await _drive(RetryPolicy(retry_after_max=120), [decision])
    assert len(starts) == 1
    assert last == decision
    assert trio.current_time() == 0


async def test_exceptions_propagate_unretried(autojump_clock: trio.testing.MockClock) -> None:
    """An exception from the attempt block is a bug: it escapes on the first attempt."""
    calls = 0

    async def loop() -> None:
        nonlocal calls
        async for attempt in retrying(RetryPolicy()):
            with attempt:
                calls += 1
                raise ValueError("bug")

    with pytest.raises(ValueError, match="bug"):
        await loop()
    assert calls == 1


async def test_cancellation_during_the_backoff_sleep_escapes(autojump_clock: trio.testing.MockClock) -> None:
    """A cancel during tenacity's sleep (on trio's clock) ends the loop: no further attempt starts."""
    policy = RetryPolicy(max_attempts=3, backoff_initial=60, backoff_max=60)
    attempts = 0
    with trio.move_on_after(10) as scope:
        async for attempt in retrying(policy, rng=_CeilingRandom()):
            with attempt:
                attempts += 1
                raise RetryScheduled(SERVER_ERROR)
    assert scope.cancelled_caught
    assert attempts == 1
    assert trio.current_time() == pytest.approx(10)
