"""The one retry layer: classify failures and decide the waits (pure), then loop on tenacity.

Only ``runner.errors`` are classified here; this module knows neither httpx nor trio.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Final

import tenacity

from runner import errors
from runner.model import PROTOCOL_ERROR

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import datetime

    from runner.model import AttemptError, Completion, ErrorKind
    from runner.spec import RetryPolicy

RETRYABLE_STATUSES = frozenset({408, 409, 425, 429, *range(500, 600)})
# Types and codes that mean "no money or quota left", compared lowercased without separators, so
# OpenAI's insufficient_quota, Runware's insufficientCredits and Anthropic's billing_error all match.
_QUOTA_MARKERS = frozenset(
    {
        "insufficientquota",
        "quotaexceeded",
        "quotaexhausted",
        "billinghardlimitreached",
        "billingerror",
        "insufficientcredits",
        "insufficientcredit",
        "insufficientbalance",
        "insufficientfunds",
        "creditsexhausted",
        "outofcredits",
    }
)
# Messages that say it in words, where the type or code does not (Anthropic answers HTTP 400
# invalid_request_error "Your credit balance is too low ..."; routers reword OpenAI's message).
_QUOTA_MESSAGE = re.compile(
    r"insufficient[ _-]?(?:quota|credits?|balance|funds)"
    r"|exceeded your (?:current )?quota"
    r"|(?:quota|credits?|balance)\b(?:\W+\w+){0,3}?\W+(?:exhausted|depleted|used up|too low|exceeded)"
    r"|out of (?:credits?|quota|funds)"
    r"|(?:purchase|add|buy) (?:more )?credits",
    re.IGNORECASE,
)
# A quota per time window is a rate limit that waiting fixes (Gemini's "Quota exceeded for quota
# metric ... per minute"): its message names the window.
_RATE_WINDOW = re.compile(r"per (?:second|minute|hour)|rate.?limit|\b[rt]pm\b", re.IGNORECASE)
_SEPARATORS = re.compile(r"[^0-9a-z]")
# A link in a message is no word of it: Gemini's quota message links its rate-limits page for a daily
# quota too ("head to: https://ai.google.dev/gemini-api/docs/rate-limits"), which names no window.
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE)
# Gemini's 503 UNAVAILABLE is "The model is overloaded. Please try again later."
_OVERLOADED_MARKERS = frozenset({"overloaded_error", "overloaded", "UNAVAILABLE"})
# Google's RPC status names, sent as the error's type in a Gemini stream (runner.wire.dialects.gemini):
# what the HTTP status would have said, had the error come before the 200.
_RPC_KINDS: Final[dict[str, ErrorKind]] = {
    "RESOURCE_EXHAUSTED": "rate_limited",  # a quota per window: waiting fixes it (a used-up one: above)
    "INTERNAL": "server_error",
    "UNKNOWN": "server_error",
    "DEADLINE_EXCEEDED": "timeout",
}
# The type or code a 429's body carries, sent in the stream after the 200 instead: Anthropic's
# rate_limit_error event, the Responses API's error event or response.failed with code
# rate_limit_exceeded. It counts as the 429 would (PROTOCOLS.md C18), so the limiter backs off.
_RATE_LIMIT_MARKERS: Final = frozenset({"rate_limit_error", "rate_limit_exceeded"})
# Errors sent in the stream after the 200 that refuse the request itself: the same request gets the
# same answer, so a retry only pays for its input again. Anthropic's invalid_request_error (its 400's
# type); the Responses API's response.failed codes for the prompt or an image it cannot read or will
# not answer (openai's ResponseError; failed_to_download_image is left retried: the image's host may
# answer next time).
_REFUSED_MARKERS: Final = frozenset(
    {"invalid_request_error", "invalid_prompt", "bio_policy", "misalignment_policy_violation"}
    | {"data_residency_mismatch", "invalid_image", "invalid_image_format", "invalid_base64_image"}
    | {"invalid_image_url", "image_too_large", "image_too_small", "image_parse_error", "invalid_image_mode"}
    | {"image_content_policy_violation", "image_file_too_large", "unsupported_image_media_type"}
    | {"empty_image_file", "image_file_not_found"}
)
# Codes that say the credentials are refused whatever the status: Google answers a wrong or expired
# API key with 400 INVALID_ARGUMENT and this ErrorInfo reason, not with a 401.
_AUTH_MARKERS: Final = frozenset({"API_KEY_INVALID"})
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


def is_quota_exhausted(error_type: str | None, code: str | int | None, message: str | None) -> bool:
    """Whether a provider's error says the account's quota or credit is used up (no retry helps).

    By type or code (``insufficient_quota``, ``insufficientCredits``, ``billing_error``), else by
    message ("credit balance is too low", "exceeded your current quota"), unless the message names
    a time window (a per-minute quota is a rate limit). The message's links are not read.
    """
    markers = {_SEPARATORS.sub("", str(value).lower()) for value in (error_type, code) if value is not None}
    if markers & _QUOTA_MARKERS:
        return True
    words = _URL.sub(" ", message) if message else ""
    if not _QUOTA_MESSAGE.search(words):
        return False
    return _RATE_WINDOW.search(words) is None


def classify_http(
    status: int,
    headers: Mapping[str, str],
    *,
    now: datetime | None,
    error_type: str | None = None,
    error_code: str | int | None = None,
    error_message: str | None = None,
    error_retry_after: float | None = None,
) -> RetryDecision:
    """Classify a non-2xx response from its status, headers and the error body's type, code and message.

    A 5xx is read by its type and code only: a message about quota there is the server's trouble. The
    wait comes from ``Retry-After`` when sent, else from the body (``error_retry_after``).
    """
    markers = {str(error_type), str(error_code)}
    kind: ErrorKind
    if is_quota_exhausted(error_type, error_code, error_message if status < 500 else None):
        kind = "quota_exhausted"  # a 429 that no amount of waiting fixes
    elif status == 529 or markers & _OVERLOADED_MARKERS:
        kind = "overloaded"
    elif status == 429:
        kind = "rate_limited"
    elif status == 408:
        kind = "timeout"
    elif status >= 500:
        kind = "server_error"
    elif status in (401, 403) or markers & _AUTH_MARKERS:
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
    retry_after = parse_retry_after(headers, now=now)
    return RetryDecision(
        kind=kind,
        retryable=retryable,
        retry_after=retry_after if retry_after is not None else error_retry_after,
    )


def classify_exception(exc: BaseException) -> RetryDecision | None:
    """Classify a ``runner.errors.ProviderError``; None for anything else (a bug or a cancellation).

    ``runner.run.attempt`` has already mapped httpx's, trio's and the OS's errors onto these. A
    transport failure before any response (``status`` None) is a failed connection; after the
    headers it is a stream cut short.
    """
    if not isinstance(exc, errors.ProviderError):
        return None
    if isinstance(exc, errors.StreamProtocolError):
        return RetryDecision(kind="protocol_error", retryable=True)
    if isinstance(exc, errors.ResponseTooLargeError):
        # The same request most likely gets the same answer again: retrying only pays for it twice.
        return RetryDecision(kind="response_too_large", retryable=False)
    if isinstance(exc, errors.NotAnEventStreamError):
        return RetryDecision(kind="not_an_event_stream", retryable=True)  # a proxy's page passes
    if isinstance(exc, errors.TransportTimeoutError):
        return RetryDecision(kind="timeout", retryable=True)
    if isinstance(exc, errors.ConnectError) or exc.status is None:
        return RetryDecision(kind="connect_error", retryable=True)
    return RetryDecision(kind="early_close", retryable=True)


def classify_completion(completion: Completion) -> RetryDecision | None:
    """Classify a stream that got a 2xx: None when it ended with its terminal signal and no error."""
    error = completion.error
    if error is not None:
        markers = {error.type, str(error.code)}
        if error.type == PROTOCOL_ERROR:
            return RetryDecision(kind="protocol_error", retryable=True)
        if is_quota_exhausted(error.type, error.code, error.message):
            return RetryDecision(kind="quota_exhausted", retryable=False)
        if markers & _OVERLOADED_MARKERS:
            return RetryDecision(kind="overloaded", retryable=True, retry_after=error.retry_after)
        if markers & _RATE_LIMIT_MARKERS:
            return RetryDecision(kind="rate_limited", retryable=True, retry_after=error.retry_after)
        if markers & _REFUSED_MARKERS:
            return RetryDecision(kind="client_error", retryable=False)
        kind = _RPC_KINDS.get(error.type, "stream_error")
        return RetryDecision(kind=kind, retryable=True, retry_after=error.retry_after)
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


def will_retry(decision: RetryDecision, policy: RetryPolicy, *, attempts_made: int) -> bool:
    """Whether a unit that failed with ``decision`` gets another one (``attempts_made`` in this process)."""
    return attempts_made < policy.max_attempts and should_retry(decision, policy)


def delay(policy: RetryPolicy, retry_number: int, rng: random.Random, *, retry_after: float | None) -> float:
    """The wait before retry ``retry_number``: the server's Retry-After when it named one, else backoff."""
    return retry_after if retry_after is not None else backoff(policy, retry_number, rng)


def decision_of(error: AttemptError | None) -> RetryDecision | None:
    """The decision an attempt's stored error carries (None: the attempt succeeded)."""
    if error is None:
        return None
    return RetryDecision(kind=error.kind, retryable=error.retryable, retry_after=error.retry_after)


class RetryScheduled(tenacity.TryAgain):
    """Raised inside ``with attempt:`` to have tenacity wait, then run the block again.

    A signal between the loop body and ``retrying``, not an error (hence tenacity's ``TryAgain``): it
    never leaves the loop, because ``retrying`` has no stop of its own; ``will_retry`` is the bound.
    """

    def __init__(self, decision: RetryDecision) -> None:
        self.decision = decision
        super().__init__()


def retrying(policy: RetryPolicy, *, rng: random.Random | None = None) -> tenacity.AsyncRetrying:
    """tenacity's loop over the attempts of one unit (stamina's form)::

        async for attempt in retrying(policy):
            with attempt:
                ...  # one attempt; store it, then `raise RetryScheduled(decision)` to go again

    A block that ends normally ends the loop. Any other exception (a bug, a cancellation) propagates
    untouched (``retry_never``). tenacity's default sleep is ``trio.sleep`` under trio, so tests
    use ``autojump_clock``. ``rng`` feeds the jitter (seed it for reproducible waits).
    """
    jitter = rng or random.Random()

    def wait(state: tenacity.RetryCallState) -> float:
        scheduled = state.outcome.exception() if state.outcome is not None else None
        retry_after = scheduled.decision.retry_after if isinstance(scheduled, RetryScheduled) else None
        return delay(policy, state.attempt_number, jitter, retry_after=retry_after)

    return tenacity.AsyncRetrying(wait=wait, retry=tenacity.retry_never)
