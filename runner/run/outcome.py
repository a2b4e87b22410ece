"""Pure: what one attempt came to, as its record stores it: the error of a stream that ended or of
a non-2xx response (classified by runner.run.retry), and the attempt's timing.
"""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from runner.model import AttemptError, AttemptTiming
from runner.run.retry import classify_completion, classify_http

if TYPE_CHECKING:
    from collections.abc import Mapping

    from runner.model import Completion, CompletionError
    from runner.run.deadlines import Clock
    from runner.run.retry import RetryDecision


def _rel(value: float | None, start: float) -> float | None:
    return None if value is None else value - start


def _percentile(sorted_values: list[float], fraction: float) -> float:
    # Nearest-rank percentile: the reported gap is one that really happened.
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def completion_error(completion: Completion, status: int | None) -> AttemptError | None:
    """The error of a 2xx stream that ended: an in-band error, or no terminal signal."""
    decision = classify_completion(completion)
    if decision is None:
        return None
    if completion.error is not None:
        message = f"{completion.error.type}: {completion.error.message}"
    else:
        message = "the stream ended without its terminal signal"
    return error_from(decision, message, status)


def http_error(status: int, headers: Mapping[str, str], body_error: CompletionError | None) -> AttemptError:
    """The error of a non-2xx response, from its status, headers and the body's parsed error."""
    decision = classify_http(
        status,
        headers,
        now=datetime.now(UTC),
        error_type=body_error.type if body_error else None,
        error_code=body_error.code if body_error else None,
        error_message=body_error.message if body_error else None,
        error_retry_after=body_error.retry_after if body_error else None,
    )
    message = f"HTTP {status}"
    if body_error is not None:
        message += f" {body_error.type}: {body_error.message}"
    return error_from(decision, message, status)


def error_from(decision: RetryDecision, message: str, status: int | None) -> AttemptError:
    """The attempt's error as classified by ``decision``."""
    return AttemptError(
        kind=decision.kind,
        message=message,
        http_status=status,
        retry_after=decision.retry_after,
        retryable=decision.retryable,
    )


def read_times(parts: list[bytes], gaps: list[float], clock: Clock) -> tuple[tuple[int, float], ...]:
    """``(offset into the capture, seconds after the request)`` of each captured read.

    Rebuilt once, at the end, from what the read loop keeps anyway (the first byte's instant and the
    gap before each later read), so capturing costs the hot loop nothing more than the append.
    An error body is one read, dated at the first byte or, unknown, at the headers.
    """
    at = clock.first_byte if clock.first_byte is not None else clock.headers
    at = (at if at is not None else clock.start) - clock.start
    # gaps[i] is the wait before read i + 1; the loop may stop after a gap whose read was refused.
    waits = gaps[: len(parts) - 1]
    waits += [0.0] * (len(parts) - 1 - len(waits))
    offsets = itertools.accumulate(map(len, parts), initial=0)
    return tuple(zip(offsets, itertools.accumulate(waits, initial=at), strict=False))


def timing(started_at: datetime, clock: Clock, gaps: list[float]) -> AttemptTiming:
    """The attempt's instants relative to its start, and its gap percentiles (``gaps`` is sorted in place)."""
    start = clock.start
    gaps.sort()
    return AttemptTiming(
        started_at=started_at,
        headers_s=_rel(clock.headers, start),
        first_byte_s=_rel(clock.first_byte, start),
        first_reasoning_s=_rel(clock.first_reasoning, start),
        first_answer_s=_rel(clock.first_answer, start),
        end_s=_rel(clock.end, start),
        gap_p50_s=_percentile(gaps, 0.5) if gaps else None,
        gap_p90_s=_percentile(gaps, 0.9) if gaps else None,
        gap_max_s=gaps[-1] if gaps else None,
    )
