"""One HTTP attempt: request -> httpx stream -> SSE decoder -> dialect accumulator -> AttemptRecord.

Everything an attempt learns is returned, never raised: a failed attempt is data (its partial output,
the tokens it consumed, its timing), and the caller decides about retries. Only bugs and
cancellation escape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import httpx
import trio

from runner.model import AttemptError, AttemptRecord, AttemptTiming
from runner.run.retry import RetryDecision, classify_completion, classify_exception, classify_http
from runner.wire.sse import SSEDecoder

if TYPE_CHECKING:
    from collections.abc import Mapping

    from runner.model import Completion, CompletionError
    from runner.spec import Timeouts
    from runner.wire.dialects.base import Dialect, HttpRequest

# An error body is read for its message only; a misbehaving server must not make us buffer forever.
ERROR_BODY_LIMIT = 64 * 1024
# After the terminal signal only the chunked terminator should follow. Reading it lets httpx return
# the connection to the pool; a server that keeps talking is cut off after this long.
DRAIN_SECONDS = 1.0
# Moving a cancel scope's deadline re-registers it with trio (a few microseconds): with chunks
# microseconds apart, doing it per chunk is a large share of runner's own per-chunk work. The idle
# deadline is pushed at most once per this many seconds, always to "newest push + idle + slack", so a
# timeout never fires early and at most this late.
DEADLINE_SLACK = 0.005


@dataclass(slots=True)
class _Clock:
    """Monotonic offsets of one attempt (trio's clock, so tests with autojump_clock stay exact)."""

    start: float
    headers: float | None = None
    first_byte: float | None = None
    first_reasoning: float | None = None
    first_answer: float | None = None
    end: float | None = None


def _rel(value: float | None, start: float) -> float | None:
    return None if value is None else value - start


def _percentile(sorted_values: list[float], fraction: float) -> float:
    # Nearest-rank percentile: the reported gap is one that really happened.
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


async def run_attempt(
    client: httpx.AsyncClient,
    dialect: Dialect,
    request: HttpRequest,
    *,
    unit_key: str,
    number: int,
    timeouts: Timeouts,
    capture: bool = False,
) -> AttemptRecord:
    """Send one request and read its stream to the end, a timeout or a failure.

    Timeouts, all on one cancel scope whose deadline moves with the phase: ``first_byte`` until the
    response headers, ``first_token`` until the first reasoning or answer token, ``idle`` between two
    body reads (heartbeat comments count as bytes), and ``total`` over everything. ``connect`` is
    httpx's own.

    Every failure is classified by runner.run.retry (the one place that decides what a failure means)
    and stored as the record's ``error``, with ``retryable`` and the server's ``retry_after``.

    Args:
        capture: keep the raw body bytes in the record (for replay with ``runner parse``).
    """
    started_at = datetime.now(UTC)
    clock = _Clock(start=trio.current_time())
    hard_deadline = clock.start + timeouts.total
    first_token_deadline = clock.start + timeouts.first_token
    accumulator = dialect.new_accumulator()
    decoder = SSEDecoder()
    parts: list[bytes] = []
    gaps: list[float] = []
    nbytes = 0
    nevents = 0
    status: int | None = None
    error: AttemptError | None = None
    completion: Completion | None = None
    phase = "connect"

    with trio.CancelScope(deadline=min(clock.start + timeouts.first_byte, hard_deadline)) as scope:
        try:
            async with client.stream(
                request.method,
                request.url,
                headers=request.headers,
                content=request.body,
                # read=None: the idle, first-token and total limits are enforced on our scope,
                # because httpx's read timeout would also cap the wait for headers.
                timeout=httpx.Timeout(timeouts.connect, read=None, pool=None),
            ) as response:
                now = trio.current_time()
                clock.headers = now
                status = response.status_code
                if not 200 <= status < 300:
                    phase = "error-body"
                    body = await _read_limited(response)
                    error = _http_error(status, response.headers, dialect.parse_error_body(status, body))
                    if capture:
                        parts.append(body)
                        nbytes = len(body)
                else:
                    phase = "body"
                    idle_limit = now + timeouts.idle + DEADLINE_SLACK
                    scope.deadline = min(first_token_deadline, hard_deadline, idle_limit)
                    last = pushed = now
                    has_token = False
                    # aiter_raw: SSE bodies are not compressed in practice, and skipping httpx's
                    # decoder stack saves per-chunk work (PERFORMANCE.md); a compressed body is
                    # handled below by falling back to aiter_bytes.
                    chunks = (
                        response.aiter_raw()
                        if "content-encoding" not in response.headers
                        else response.aiter_bytes()
                    )
                    async for chunk in chunks:
                        now = trio.current_time()
                        if clock.first_byte is None:
                            clock.first_byte = now
                        else:
                            gaps.append(now - last)
                        last = now
                        nbytes += len(chunk)
                        if capture:
                            parts.append(chunk)
                        # The whole read in one call: message data as raw bytes, so the dialect
                        # hands them straight to its JSON decoder (runner.wire.sse.feed_raw).
                        events = decoder.feed_raw(chunk)
                        if events:
                            nevents += len(events)
                            accumulator.feed_many(events)
                        first = False
                        if not has_token:
                            if clock.first_reasoning is None and accumulator.has_reasoning:
                                clock.first_reasoning = now
                                first = True
                            if accumulator.has_answer:
                                clock.first_answer = now
                                has_token = first = True
                        if accumulator.is_done:
                            with trio.move_on_after(DRAIN_SECONDS):
                                async for _ in chunks:
                                    pass
                            break
                        # Skipping a push leaves the deadline at pushed + idle + slack, which is
                        # still at or after now + idle. The first token lifts the first-token
                        # limit, so it always pushes.
                        if first or now - pushed > DEADLINE_SLACK:
                            pushed = now
                            limit = now + timeouts.idle + DEADLINE_SLACK
                            if not has_token and clock.first_reasoning is None:
                                limit = min(limit, first_token_deadline)
                            scope.deadline = min(limit, hard_deadline)
                    decoder.close()
                    completion = accumulator.result()
        except httpx.TransportError as exc:
            # Connect errors, resets, bodies cut inside a chunk, httpx's own connect timeout.
            decision = classify_exception(exc, response_started=status is not None)
            if decision is None:  # pragma: no cover - every httpx.TransportError is classified
                raise
            error = _error_from(decision, f"{_describe(exc)} (during {phase})", status)

    clock.end = trio.current_time()
    if scope.cancelled_caught:
        error = AttemptError(
            kind="timeout",
            message=_timeout_message(phase, clock, timeouts),
            http_status=status,
            retryable=True,
        )
    if phase == "body" and completion is None:
        completion = accumulator.result()  # partial output of a cut or timed-out stream
    if error is None and completion is not None:
        decision = classify_completion(completion)
        if decision is not None:
            if completion.error is not None:
                message = f"{completion.error.type}: {completion.error.message}"
            else:
                message = "the stream ended without its terminal signal"
            error = _error_from(decision, message, status)
    timing = _timing(started_at, clock, gaps)
    return AttemptRecord(
        unit_key=unit_key,
        number=number,
        http_status=status,
        error=error,
        completion=completion,
        timing=timing,
        bytes_received=nbytes,
        chunks=nevents,
        heartbeats=decoder.comments + accumulator.pings,  # SSE comments and ping events alike
        raw_capture=b"".join(parts) if capture else None,
    )


async def _read_limited(response: httpx.Response) -> bytes:
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) >= ERROR_BODY_LIMIT:
            break
    return bytes(body[:ERROR_BODY_LIMIT])


def _http_error(status: int, headers: Mapping[str, str], body_error: CompletionError | None) -> AttemptError:
    decision = classify_http(
        status,
        headers,
        now=datetime.now(UTC),
        error_type=body_error.type if body_error else None,
        error_code=body_error.code if body_error else None,
    )
    message = f"HTTP {status}"
    if body_error is not None:
        message += f" {body_error.type}: {body_error.message}"
    return _error_from(decision, message, status)


def _error_from(decision: RetryDecision, message: str, status: int | None) -> AttemptError:
    return AttemptError(
        kind=decision.kind,
        message=message,
        http_status=status,
        retry_after=decision.retry_after,
        retryable=decision.retryable,
    )


def _describe(exc: Exception) -> str:
    # httpx messages name the URL at most, never headers, so no key can leak through them.
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


def _timeout_message(phase: str, clock: _Clock, timeouts: Timeouts) -> str:
    elapsed = (clock.end or clock.start) - clock.start
    if elapsed >= timeouts.total - 1e-9:
        return f"total timeout ({timeouts.total:g} s) during {phase}"
    if clock.headers is None:
        return f"no response headers within {timeouts.first_byte:g} s"
    if clock.first_reasoning is None and clock.first_answer is None:
        return f"no token within {timeouts.first_token:g} s (or {timeouts.idle:g} s of silence)"
    return f"idle for more than {timeouts.idle:g} s"


def _timing(started_at: datetime, clock: _Clock, gaps: list[float]) -> AttemptTiming:
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
