"""Stop sending to a provider that refuses everyone (pure): N consecutive auth or quota refusals.

A provider answering 401 to every request would otherwise get every unit of the run, each failing
the same way. After ``STOP_AFTER`` consecutive non-retryable auth, payment or quota failures, the
engine fails that provider's remaining units with a "not sent" attempt instead of sending them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from runner.model import AttemptError, AttemptRecord, AttemptTiming

if TYPE_CHECKING:
    from datetime import datetime

    from runner.model import ErrorKind

STOP_AFTER: Final = 5
# Answers no retry and no other unit will change: the key, the account's credit or its quota.
REFUSALS: Final[frozenset[ErrorKind]] = frozenset({"auth_error", "payment_required", "quota_exhausted"})


@dataclass(slots=True)
class Breaker:
    """One provider's run of consecutive refusals; ``stopped`` holds the refusal that stopped it."""

    threshold: int = STOP_AFTER
    consecutive: int = 0
    stopped: AttemptError | None = None

    def record(self, error: AttemptError | None) -> AttemptError | None:
        """Count one attempt's outcome; the refusal when this one stopped the provider, else None."""
        if self.stopped is not None:
            return None
        if error is None or error.retryable or error.kind not in REFUSALS:
            self.consecutive = 0  # anything else (an answer, a 500, a timeout) breaks the run
            return None
        self.consecutive += 1
        if self.consecutive < self.threshold:
            return None
        self.stopped = error
        return error

    def not_sent(self, provider: str, unit_key: str, number: int, started_at: datetime) -> AttemptRecord:
        """The attempt a unit gets instead of a request once the provider is stopped.

        It carries the refusal's kind (so reports group it with the answers that caused it) and a
        message that says nothing was sent; no status, no bytes, no time.
        """
        assert self.stopped is not None, "not_sent() before the provider was stopped"
        cause = self.stopped
        error = AttemptError(
            kind=cause.kind,
            message=(
                f"not sent: provider {provider} refused {self.threshold} units in a row "
                f"({cause.kind}, last: {cause.message}); its remaining units fail without a request"
            ),
            http_status=None,
            retryable=False,
        )
        return AttemptRecord(
            unit_key=unit_key,
            number=number,
            http_status=None,
            error=error,
            completion=None,
            timing=AttemptTiming(started_at=started_at, end_s=0.0),
        )
