"""The one retry layer: classify what went wrong, then let tenacity decide, wait (on trio) and stop.

Design. An attempt function never raises for a provider failure: it *returns* an outcome object with a
``decision`` attribute (``None`` for success, else a ``RetryDecision``), so a failed attempt's partial
output is never lost in an exception. Tenacity retries on the result (``retry_if_result``), waits for
the server's Retry-After or else exponential backoff with full jitter, and stops after
``max_attempts``; when it stops, the last outcome is handed back instead of a ``RetryError``. An
exception escaping the attempt function is a bug (or a cancellation) and propagates untouched.

Classification is pure (``classify_http``, ``classify_exception``, ``classify_completion``); the clock
for HTTP-date Retry-After values comes in as ``now``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Protocol, TypeVar

import httpx
import tenacity
import trio

from runner import errors
from runner.model import PROTOCOL_ERROR

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping
    from datetime import datetime

    from runner.model import Completion, ErrorKind
    from runner.spec import RetryPolicy

RETRYABLE_STATUSES = frozenset({408, 409, 425, 429, *range(500, 600)})
_QUOTA_MARKERS = frozenset({"insufficient_quota", "quota_exceeded", "billing_hard_limit_reached"})
_OVERLOADED_MARKERS = frozenset({"overloaded_error", "overloaded"})
_MAX_EXPONENT = 62  # 2**62 * any sane backoff_initial is far past backoff_max; avoids float overflow


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryDecision:
    """What one failed attempt means for the unit.

    ``retry_after`` is the server's requested wait in seconds (None: use backoff). A value above the
    policy's ``retry_after_max`` fails the unit instead of sleeping (``should_retry``).
    """

    kind: ErrorKind
    retryable: bool
    retry_after: float | None = None


class Outcome(Protocol):
    """What an attempt function returns: ``decision`` is None when the attempt succeeded."""

    @property
    def decision(self) -> RetryDecision | None: ...


OutcomeT = TypeVar("OutcomeT", bound=Outcome)


# -- classification (pure) --------------------------------------------------------------------------


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def parse_retry_after(headers: Mapping[str, str], *, now: datetime | None) -> float | None:
    """The server's requested wait: ``retry-after-ms`` first, then ``Retry-After`` (seconds or date).

    Zero, negative, non-finite or malformed values give None, so backoff applies (openai-python rule).
    An HTTP-date is measured from ``now`` (aware UTC); with ``now=None`` it is ignored.
    """
    lowered = _lower(headers)
    millis = _positive_float(lowered.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000
    value = lowered.get("retry-after")
    if value is None:
        return None
    seconds = _positive_float(value)
    if seconds is not None:
        return seconds
    if now is None:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # "-0000" parses naive, but an HTTP-date is always GMT
    delta = (when - now).total_seconds()
    return delta if delta > 0 else None


def _positive_float(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) and number > 0 else None


def classify_http(
    status: int,
    headers: Mapping[str, str],
    *,
    now: datetime | None,
    error_type: str | None = None,
    error_code: str | int | None = None,
) -> RetryDecision:
    """Classify a non-2xx response from its status, headers and the error body's type/code."""
    markers = {str(error_type), str(error_code)}
    kind: ErrorKind
    if markers & _QUOTA_MARKERS:
        kind = "quota_exhausted"  # a 429 that no amount of waiting fixes
    elif status == 529 or markers & _OVERLOADED_MARKERS:
        kind = "overloaded"
    elif status == 429:
        kind = "rate_limited"
    elif status == 408:
        kind = "timeout"
    elif status >= 500:
        kind = "server_error"
    elif status in (401, 403):
        kind = "auth_error"
    elif status == 402:
        kind = "payment_required"
    elif status == 404:
        kind = "not_found"
    else:
        kind = "client_error"
    retryable = kind != "quota_exhausted" and status in RETRYABLE_STATUSES
    should = _lower(headers).get("x-should-retry", "").strip().lower()
    if should in ("true", "false"):
        retryable = should == "true"  # the server knows better than a status table
    return RetryDecision(kind=kind, retryable=retryable, retry_after=parse_retry_after(headers, now=now))


def classify_exception(exc: BaseException, *, response_started: bool = True) -> RetryDecision | None:
    """Classify an exception from one attempt; None for anything that is not a provider failure.

    ``trio.Cancelled`` and other non-``Exception``s are never classified: they must propagate.
    ``response_started`` is False while no response headers have arrived: a reset then is a failed
    connection, not a stream cut short.
    """
    if not isinstance(exc, Exception):
        return None
    decision = _classify_exception(exc)
    if decision is not None and decision.kind == "early_close" and not response_started:
        return RetryDecision(kind="connect_error", retryable=True)
    return decision


def _classify_exception(exc: Exception) -> RetryDecision | None:
    if isinstance(exc, errors.RateLimitedError):
        return RetryDecision(kind="rate_limited", retryable=True, retry_after=exc.retry_after)
    if isinstance(exc, errors.ServerError | errors.ClientError) and exc.status is not None:
        return classify_http(exc.status, {}, now=None)
    if isinstance(exc, errors.StreamProtocolError | httpx.DecodingError):
        return RetryDecision(kind="protocol_error", retryable=True)
    if isinstance(exc, trio.TooSlowError | TimeoutError | httpx.TimeoutException):
        return RetryDecision(kind="timeout", retryable=True)
    if isinstance(exc, httpx.ConnectError | httpx.WriteError | ConnectionRefusedError):
        return RetryDecision(kind="connect_error", retryable=True)
    if isinstance(
        exc,
        errors.TransportError
        | httpx.ReadError
        | httpx.RemoteProtocolError
        | ConnectionError
        | trio.BrokenResourceError,
    ):
        return RetryDecision(kind="early_close", retryable=True)
    if isinstance(exc, httpx.TransportError | OSError):
        return RetryDecision(kind="connect_error", retryable=True)
    return None


def classify_completion(completion: Completion) -> RetryDecision | None:
    """Classify a stream that got a 2xx: None when it ended with its terminal signal and no error."""
    error = completion.error
    if error is not None:
        markers = {error.type, str(error.code)}
        if error.type == PROTOCOL_ERROR:
            return RetryDecision(kind="protocol_error", retryable=True)
        if markers & _QUOTA_MARKERS:
            return RetryDecision(kind="quota_exhausted", retryable=False)
        if markers & _OVERLOADED_MARKERS:
            return RetryDecision(kind="overloaded", retryable=True)
        return RetryDecision(kind="stream_error", retryable=True)
    if not completion.complete:
        return RetryDecision(kind="early_close", retryable=True)
    return None


# -- policy -----------------------------------------------------------------------------------------


def should_retry(decision: RetryDecision | None, policy: RetryPolicy) -> bool:
    """Whether an attempt with this decision is worth another one (attempts left aside)."""
    if decision is None or not decision.retryable:
        return False
    # A server asking for a longer wait than the policy allows fails the unit now (openai-python).
    return decision.retry_after is None or decision.retry_after <= policy.retry_after_max


def backoff(policy: RetryPolicy, retry_number: int, rng: random.Random) -> float:
    """Full-jitter exponential backoff before retry ``retry_number`` (1 for the first retry)."""
    exponent = min(max(retry_number - 1, 0), _MAX_EXPONENT)
    ceiling = min(policy.backoff_max, policy.backoff_initial * 2.0**exponent)
    return rng.uniform(0.0, ceiling)


def build_retrying(
    policy: RetryPolicy,
    *,
    rng: random.Random | None = None,
    before_sleep: Callable[[tenacity.RetryCallState], Awaitable[None] | None] | None = None,
) -> tenacity.AsyncRetrying:
    """A tenacity ``AsyncRetrying`` for ``policy`` that sleeps on trio's clock.

    Use either ``await retrying(attempt_fn)`` (returns the last outcome) or::

        async for attempt in build_retrying(policy):
            with attempt:
                outcome = await run_attempt(...)
            if not attempt.retry_state.outcome.failed:
                attempt.retry_state.set_result(outcome)  # tenacity cannot see the block's value

    ``rng`` feeds the jitter (pass a seeded ``random.Random`` for reproducible waits);
    ``before_sleep`` sees the state before each wait (progress: "retrying").
    """
    jitter = rng or random.Random()

    def retry_on(outcome: Outcome) -> bool:
        return should_retry(outcome.decision, policy)

    def wait(state: tenacity.RetryCallState) -> float:
        outcome: Outcome = state.outcome.result()  # type: ignore[union-attr]
        decision = outcome.decision
        if decision is not None and decision.retry_after is not None:
            return decision.retry_after  # the server's hint overrides the computed backoff
        return backoff(policy, state.attempt_number, jitter)

    def last_outcome(state: tenacity.RetryCallState) -> object:
        return state.outcome.result()  # type: ignore[union-attr]

    return tenacity.AsyncRetrying(
        sleep=trio.sleep,
        stop=tenacity.stop_after_attempt(policy.max_attempts),
        wait=wait,
        retry=tenacity.retry_if_result(retry_on),
        before_sleep=before_sleep,
        retry_error_callback=last_outcome,
    )


async def run_with_retries(
    policy: RetryPolicy,
    attempt_fn: Callable[[], Awaitable[OutcomeT]],
    *,
    rng: random.Random | None = None,
    before_sleep: Callable[[tenacity.RetryCallState], Awaitable[None] | None] | None = None,
) -> OutcomeT:
    """Run ``attempt_fn`` until it succeeds, is not retryable, or attempts run out; the last outcome."""
    retrying = build_retrying(policy, rng=rng, before_sleep=before_sleep)
    result: OutcomeT = await retrying(attempt_fn)
    return result
