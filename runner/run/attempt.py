"""One HTTP attempt: request -> httpx stream -> SSE decoder -> dialect accumulator -> AttemptRecord.

runner's one HTTP boundary: httpx's, trio's and the OS's errors become ``runner.errors`` here and are
returned as data (the record's ``error``, with partial output and timing); only bugs and cancellation escape.
"""

from __future__ import annotations

import itertools
import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final, Literal

import httpx
import trio

from runner import errors
from runner.http import body_of
from runner.model import AttemptError, AttemptRecord, AttemptTiming
from runner.run.retry import RetryDecision, classify_completion, classify_exception, classify_http
from runner.spec import DEFAULT_MAX_RESPONSE_BYTES
from runner.wire.events import event_count
from runner.wire.sse import SSEDecoder

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator, Mapping

    from runner.model import Completion, CompletionError
    from runner.spec import Timeouts
    from runner.wire.dialects.base import Accumulator, Dialect, HttpRequest
    from runner.wire.sse import RawEvent

# An error body is read for its message only; a misbehaving server must not make us buffer forever.
ERROR_BODY_LIMIT = 64 * 1024
# After the terminal signal only the chunked terminator should follow. Reading it lets httpx return
# the connection to the pool; a server that keeps talking is cut off after this long.
DRAIN_SECONDS = 1.0
# After an in-stream error the stream's terminal signal may still follow (MiroMind: an error finish,
# then [DONE]); it is waited for this long at most, so a stall after the error is no timeout.
ERROR_GRACE_SECONDS = 2.0
# Moving a cancel scope's deadline re-registers it with trio (a few microseconds, through a
# @contextmanager): with chunks microseconds apart, or 1,000 streams each sending every 20 ms, doing it
# per read is a large share of runner's own work. The idle deadline is pushed at most once per
# "slack" seconds, always to "newest push + idle + slack", so a timeout never fires early and at most
# the slack late. The slack is a share of the shortest gap limit (idle or token_idle), within bounds:
# 5 ms up to a 5 s limit, 60 ms for the 60 s default (20 ms gaps then push once per ~3 reads instead of
# at every read), 100 ms at most.
DEADLINE_SLACK = 0.005  # the least slack
DEADLINE_SLACK_SHARE = 0.001
DEADLINE_SLACK_MAX = 0.1
# The first match wins, so the specific come first (httpcore's map_exceptions). Every httpx.HTTPError
# is here: httpx's DecodingError (a body that does not match its Content-Encoding) is not a
# TransportError. httpx's read and pool timeouts are off, so its timeouts are connect and write ones.
EXCEPTION_MAP: Final[tuple[tuple[type[Exception], type[errors.ProviderError]], ...]] = (
    (httpx.TimeoutException, errors.TransportTimeoutError),
    (trio.TooSlowError, errors.TransportTimeoutError),
    (httpx.ConnectError, errors.ConnectError),
    (httpx.WriteError, errors.ConnectError),
    (ConnectionRefusedError, errors.ConnectError),
    (httpx.DecodingError, errors.StreamProtocolError),
    (httpx.HTTPError, errors.TransportError),
    (trio.BrokenResourceError, errors.TransportError),
    (OSError, errors.TransportError),
)

# The error message of an attempt the run's interruption cut off (the engine's too, for one that
# was cut before it was sent).
CANCELLED_MESSAGE: Final = "the run was interrupted during this attempt"

Phase = Literal["connect", "error-body", "body"]


@dataclass(slots=True)
class _Clock:
    """Monotonic instants of one attempt (trio's clock, so tests with autojump_clock stay exact).

    On runner's transport over plain TCP on Linux, the headers, the first byte and the first tokens
    are dated by when the kernel received their bytes (runner.http.stamp), placed on this clock: a
    loop too busy to read them at once does not add its delay to them. Elsewhere (stock httpx, TLS,
    another OS, a mock clock), by when the loop read them. Later reads keep the loop's time (gaps).
    """

    start: float
    headers: float | None = None
    first_byte: float | None = None
    first_reasoning: float | None = None
    first_answer: float | None = None
    end: float | None = None


@dataclass(slots=True)
class _Received:
    """What one attempt has received so far; kept up to date, so a cut stream keeps its counts."""

    status: int | None = None
    nbytes: int = 0
    nevents: int = 0
    gaps: list[float] = field(default_factory=list)
    parts: list[bytes] | None = None  # the raw body, only when capturing


class _Deadlines:
    """Sans-IO: the phase of one attempt and the deadline its one cancel scope must have.

    ``first_byte`` until the response headers, then ``first_token`` until the first reasoning or
    answer token, ``idle`` between two body reads (heartbeats count as bytes), ``token_idle`` (when
    set) between two tokens (heartbeats do not count), ``total`` over all.
    """

    __slots__ = (
        "_first_token",
        "_hard",
        "_token_pushed",
        "connect",
        "in_error_grace",
        "last_token",
        "phase",
        "slack",
        "timeouts",
    )

    def __init__(self, timeouts: Timeouts, start: float) -> None:
        self.timeouts = timeouts
        self.phase: Phase = "connect"
        self.in_error_grace = False  # the stream carried an error; only its terminal signal is awaited
        self.last_token: float | None = None  # when the latest token arrived (kept for token_idle)
        self._token_pushed = start  # the latest token time a forced push took into the deadline
        self._hard = start + timeouts.total
        self._first_token = start + timeouts.first_token
        self.connect = min(start + timeouts.first_byte, self._hard)
        shortest = min(timeouts.idle, timeouts.token_idle or timeouts.idle)
        self.slack = min(DEADLINE_SLACK_MAX, max(DEADLINE_SLACK, shortest * DEADLINE_SLACK_SHARE))

    def body(self, now: float) -> float:
        """The deadline once 2xx headers arrived at ``now``."""
        self.phase = "body"
        return self.after_read(now, has_token=False)

    def error_body(self, now: float) -> float:
        """The deadline once non-2xx headers arrived at ``now``: ``idle`` for their body, not ``first_byte``.

        The first-byte limit is met once headers came; kept, it would cut a body that follows them
        late and turn the server's answer (its status, its Retry-After) into a timeout.
        """
        self.phase = "error-body"
        return min(now + self.timeouts.idle + self.slack, self._hard)

    def after_read(self, now: float, *, has_token: bool) -> float:
        """The deadline after a read at ``now``; the first token lifts the first-token limit."""
        limit = now + self.timeouts.idle + self.slack
        if not has_token:
            limit = min(limit, self._first_token)
        elif self.timeouts.token_idle is not None and self.last_token is not None:
            limit = min(limit, self.last_token + self.timeouts.token_idle + self.slack)
        return min(limit, self._hard)

    def token_seen(self, now: float) -> bool:
        """Note a read that carried a token; True when the deadline must be pushed now.

        The pushed deadline holds (token time it saw) + token_idle + slack: a token more than the
        slack after the one a push last took must push, or the scope would fire early.
        """
        self.last_token = now
        if now - self._token_pushed <= self.slack:
            return False
        self._token_pushed = now
        return True

    def after_error(self, now: float) -> float:
        """The deadline once the stream carried an error at ``now``: a short grace for its terminal signal."""
        self.in_error_grace = True
        self._hard = min(self._hard, now + ERROR_GRACE_SECONDS)
        return self._hard

    def timeout_message(self, clock: _Clock) -> str:
        """Which limit ended the attempt, in words."""
        timeouts = self.timeouts
        elapsed = (clock.end or clock.start) - clock.start
        if elapsed >= timeouts.total - 1e-9:
            return f"total timeout ({timeouts.total:g} s) during {self.phase}"
        if clock.headers is None:
            return f"no response headers within {timeouts.first_byte:g} s"
        if self.phase == "error-body":
            return f"the error body stalled for more than {timeouts.idle:g} s"
        if clock.first_reasoning is None and clock.first_answer is None:
            return f"no token within {timeouts.first_token:g} s (or {timeouts.idle:g} s of silence)"
        token_idle, end = timeouts.token_idle, clock.end or clock.start
        if token_idle is not None and self.last_token is not None and end - self.last_token >= token_idle:
            return f"no token for more than {token_idle:g} s (token_idle; heartbeats do not count)"
        return f"idle for more than {timeouts.idle:g} s"


@contextmanager
def map_exceptions(received: _Received, *, unit_key: str, attempt: int) -> Iterator[None]:
    """Re-raise httpx's, trio's and the OS's errors as ``runner.errors`` (``EXCEPTION_MAP``), ``from`` them.

    ``received.status`` is read when the error happens: None means no response had started.
    """
    try:
        yield
    except Exception as exc:
        for source, target in EXCEPTION_MAP:
            if isinstance(exc, source):
                status = received.status
                raise target(_describe(exc), unit_key=unit_key, attempt=attempt, status=status) from exc
        raise


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
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    on_cancel: Callable[[AttemptRecord], None] | None = None,
) -> AttemptRecord:
    """Send one request and read its response to the end, a timeout or a failure.

    The limits (``_Deadlines``) all act on one cancel scope; ``connect`` is httpx's own. Every failure
    is classified by runner.run.retry and stored as the record's ``error``.

    Args:
        capture: keep the raw body bytes in the record (for replay with ``runner parse``).
        max_response_bytes: the most body bytes (decompressed) to read; one more fails the attempt.
        on_cancel: called, when an enclosing scope cancels the attempt (Ctrl-C), with what it had
            received so far (error kind ``cancelled``) before the cancellation propagates.
    """
    started_at = datetime.now(UTC)
    clock = _Clock(start=trio.current_time())
    deadlines = _Deadlines(timeouts, clock.start)
    got = _Received(parts=[] if capture else None)
    accumulator = dialect.new_accumulator()
    decoder = SSEDecoder(max_event_bytes=max_response_bytes)
    error: AttemptError | None = None

    def record(error: AttemptError | None) -> AttemptRecord:
        clock.end = trio.current_time()
        # A stream cut short, timed out or cancelled keeps its partial output.
        completion = accumulator.result() if deadlines.phase == "body" else None
        if error is None and completion is not None:
            error = _completion_error(completion, got.status)
        # Before _timing, which sorts the gaps in place: in arrival order they date each read.
        reads = _read_times(got.parts, got.gaps, clock) if got.parts is not None else None
        return AttemptRecord(
            unit_key=unit_key,
            number=number,
            http_status=got.status,
            error=error,
            completion=completion,
            timing=_timing(started_at, clock, got.gaps),
            bytes_received=got.nbytes,
            chunks=got.nevents,
            heartbeats=decoder.comments + accumulator.pings,  # SSE comments and ping events alike
            raw_capture=b"".join(got.parts) if got.parts is not None else None,
            raw_reads=reads,
        )

    def cut() -> AttemptRecord:
        return record(AttemptError(kind="cancelled", message=CANCELLED_MESSAGE, http_status=got.status))

    # The hook is outside our own scope: that scope's deadlines are caught by it (timeouts, below),
    # so only an enclosing cancellation (the run stopping) reaches the hook.
    with _report_cancel(on_cancel, cut), trio.CancelScope(deadline=deadlines.connect) as scope:
        try:
            with map_exceptions(got, unit_key=unit_key, attempt=number):
                async with client.stream(
                    request.method,
                    request.url,
                    headers=request.headers,
                    content=request.body,
                    # read=None: the idle, first-token and total limits are enforced on our scope,
                    # because httpx's read timeout would also cap the wait for headers.
                    timeout=httpx.Timeout(timeouts.connect, read=None, pool=None),
                ) as response:
                    clock.headers = _arrived(response, clock.start, trio.current_time())
                    got.status = status = response.status_code
                    if 200 <= status < 300:
                        scope.deadline = deadlines.body(clock.headers)
                        await _read_stream(
                            response, scope, deadlines, clock, got, decoder, accumulator, max_response_bytes
                        )
                    else:
                        scope.deadline = deadlines.error_body(clock.headers)
                        error = await _read_error_body(response, dialect, got)
        except errors.ProviderError as exc:
            decision = classify_exception(exc)
            if decision is None:  # pragma: no cover - every ProviderError is classified
                raise
            error = _error_from(decision, f"{exc} (during {deadlines.phase})", got.status)
    clock.end = trio.current_time()
    # Cut off while waiting for the terminal signal after an error: the error is the outcome.
    if scope.cancelled_caught and not deadlines.in_error_grace:
        message = deadlines.timeout_message(clock)
        error = AttemptError(kind="timeout", message=message, http_status=got.status, retryable=True)
    return record(error)


@contextmanager
def _report_cancel(
    on_cancel: Callable[[AttemptRecord], None] | None, cut: Callable[[], AttemptRecord]
) -> Iterator[None]:
    """Hand ``cut()`` to ``on_cancel`` when a cancellation passes, then let it propagate.

    What a cancelled attempt received is real traffic (bytes, tokens, partial text, raw body): the
    engine stores it like a failed attempt's, instead of an empty record.
    """
    try:
        yield
    except trio.Cancelled:
        if on_cancel is not None:
            on_cancel(cut())
        raise


async def _read_stream(
    response: httpx.Response,
    scope: trio.CancelScope,
    deadlines: _Deadlines,
    clock: _Clock,
    got: _Received,
    decoder: SSEDecoder,
    accumulator: Accumulator,
    limit: int,
) -> None:
    """Feed a 2xx body to the decoder and accumulator until its terminal signal or its end.

    The hot loop of runner: counts live in locals and are written back to ``got`` on every way out.
    It stays one function, longer than most, because a call per read is measurable here.
    More than ``limit`` body bytes raise ``ResponseTooLargeError``; they are counted after httpx
    decompressed each read, so a gzip bomb stops at the bound too (one read's output past it at most).
    """
    # runner's transport: its body directly, one block per socket read (decoded already when the
    # server compressed it), without httpx's two async-generator hops per read. Stock httpx: aiter_raw
    # (SSE bodies are not compressed in practice, and httpx's decoder stack costs per chunk:
    # PERFORMANCE.md), and aiter_bytes for a compressed body.
    body = body_of(response)
    chunks: AsyncIterator[bytes]
    if body is None:
        compressed = "content-encoding" in response.headers
        chunks = response.aiter_bytes() if compressed else response.aiter_raw()
    else:
        chunks = body
    # The kernel dates the reads up to the first answer token (plain TCP, Linux); then dating stops,
    # and the reads after it cost what they did without it. Even when the head came unstamped: the
    # kernel turns stamping on lazily (runner.http.watch.ArrivalWatch.keep_stamping).
    dated = body is not None and body.stamped
    if dated:
        assert body is not None
        body.dating = True
    gaps, parts = got.gaps, got.parts
    nbytes = nevents = 0
    last = pushed = clock.headers if clock.headers is not None else clock.start
    has_token = False
    # token_idle (off unless set): `tokens` is the accumulator's token-delta count when last seen;
    # a read that grows it is a token read (heartbeats never do).
    watch_tokens = deadlines.timeouts.token_idle is not None
    tokens = 0
    slack = deadlines.slack
    try:
        async for chunk in chunks:
            now = trio.current_time()
            # When this read's bytes arrived, for the instants it may mark up to the first answer:
            # its newest segment (`at`: an upper bound) and, when the watch peeked them, its first
            # bytes (`first_at`); without kernel stamps, both are the loop's time.
            at = first_at = now
            if dated:
                assert body is not None
                at = _within(body.arrival, last, now)
                first_at = _within(body.first_arrival, last, at)
            if clock.first_byte is None:
                clock.first_byte = first_at
                _check_event_stream(response, chunk)
            else:
                gaps.append(now - last)
            last = now
            nbytes += len(chunk)
            if nbytes > limit:
                got.nbytes = nbytes
                raise _too_large(limit)
            if parts is not None:
                parts.append(chunk)
            # The whole read in one call: message data as raw bytes, so the dialect hands them
            # straight to its JSON decoder (runner.wire.sse.feed_raw, Accumulator.feed_read).
            leads = (False, False)
            if first_at < at and not has_token:
                events = decoder.feed_raw(chunk)
                if events:
                    nevents += event_count(events)
                    leads = _feed_leading(accumulator, events, chunk)
            else:
                nevents += accumulator.feed_read(decoder, chunk)
            first = False
            if not has_token:
                if clock.first_reasoning is None and accumulator.has_reasoning:
                    clock.first_reasoning = first_at if leads[0] else at
                    first = True
                if accumulator.has_answer:
                    clock.first_answer = first_at if leads[1] else at
                    has_token = first = True
                    if dated:
                        assert body is not None
                        body.dating = dated = False
            if watch_tokens and accumulator.tokens != tokens:
                tokens = accumulator.tokens
                first = deadlines.token_seen(now) or first
            if accumulator.is_done:
                # The answer is whole: draining and closing are shielded (bounded by the drain
                # time), so a Ctrl-C landing now cannot turn a finished attempt into a cut one.
                # Closed here, the response's own close on leaving client.stream() is a no-op.
                with trio.CancelScope(shield=True):
                    with trio.move_on_after(DRAIN_SECONDS):
                        async for _ in chunks:
                            pass
                    with trio.move_on_after(DRAIN_SECONDS):
                        await response.aclose()  # marks it closed first: never closed twice
                break
            if accumulator.has_error and not deadlines.in_error_grace:
                scope.deadline = deadlines.after_error(now)
                continue
            # Skipping a push leaves the deadline at pushed + idle + slack, which is still at or
            # after now + idle. The first token lifts the first-token limit, so it always pushes.
            if first or now - pushed > slack:
                pushed = now
                token = has_token or clock.first_reasoning is not None
                scope.deadline = deadlines.after_read(now, has_token=token)
        decoder.close()
    finally:
        got.nbytes = nbytes
        got.nevents = nevents


def _feed_leading(accumulator: Accumulator, events: list[RawEvent], chunk: bytes) -> tuple[bool, bool]:
    """Feed a read's events; whether its first bytes began the first reasoning, and answer, token.

    A read that starts with the token's event dates it by its first bytes (exact, when the watch
    peeked them); one that starts with anything else (an earlier event's end, a comment) dates it by
    its newest bytes (an upper bound). The first event goes alone to tell which: only until the
    first answer token, and only for reads the watch peeked.
    """
    had_reasoning = accumulator.has_reasoning
    accumulator.feed_many(events[:1])
    starts = not chunk.startswith(b":")  # a comment line (a heartbeat) came first
    reasoning = starts and not had_reasoning and accumulator.has_reasoning
    answer = starts and accumulator.has_answer
    accumulator.feed_many(events[1:])
    return reasoning, answer


def _arrived(response: httpx.Response, start: float, now: float) -> float:
    """When the response head arrived: the kernel's instant on runner's transport (when it has one)."""
    body = body_of(response)
    return _within(body.head_arrival if body is not None else None, start, now)


def _within(at: float | None, earliest: float, latest: float) -> float:
    """A kernel's arrival instant, kept between what the loop knows for sure; None: the loop's ``latest``.

    ``earliest`` (the request's start, the previous read) and ``latest`` (this read) bound any honest
    answer: a stamp outside them (a realtime clock stepped in between) must not become a figure.
    """
    if at is None or at >= latest:
        return latest
    return at if at > earliest else earliest


def _too_large(limit: int) -> errors.ResponseTooLargeError:
    return errors.ResponseTooLargeError(
        f"the body passed max_response_bytes ({limit} bytes, counted decompressed); "
        "raise the provider's max_response_bytes if answers this large are expected"
    )


def _check_event_stream(response: httpx.Response, first: bytes) -> None:
    """Raise ``NotAnEventStreamError`` for a 2xx body that is an HTML page (a proxy's or a login page).

    An event stream never starts with ``<`` (it would be a field line WHATWG ignores), so the first
    bytes tell, whatever the content type says.
    """
    content_type = response.headers.get("content-type", "")
    if "html" in content_type.lower() or first[:64].lstrip().startswith(b"<"):
        shown = content_type.split(";")[0].strip() or "no content type"
        raise errors.NotAnEventStreamError(
            f"HTTP {response.status_code} with {shown}, starting with '<': an HTML page (a proxy's or a "
            "gateway's?), not an event stream"
        )


async def _read_error_body(response: httpx.Response, dialect: Dialect, got: _Received) -> AttemptError:
    """Read a non-2xx body (bounded) for the provider's error message, and classify the response."""
    status = response.status_code
    body = await _read_limited(response)
    got.nbytes = len(body)  # real traffic, counted whether or not the body is captured
    if got.parts is not None:
        got.parts.append(body)
    return _http_error(status, response.headers, dialect.parse_error_body(status, body))


def _completion_error(completion: Completion, status: int | None) -> AttemptError | None:
    """The error of a 2xx stream that ended: an in-band error, or no terminal signal."""
    decision = classify_completion(completion)
    if decision is None:
        return None
    if completion.error is not None:
        message = f"{completion.error.type}: {completion.error.message}"
    else:
        message = "the stream ended without its terminal signal"
    return _error_from(decision, message, status)


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
        error_message=body_error.message if body_error else None,
        error_retry_after=body_error.retry_after if body_error else None,
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
    if isinstance(exc, httpx.LocalProtocolError):
        # h11 quotes the header value it refused ("Illegal header value b'Bearer sk-...\\n'"): that can be
        # the API key, so the message is ours alone. Other httpx messages name the URL at most.
        return (
            "LocalProtocolError: the request is not valid HTTP/1.1 (a header value has a control character?)"
        )
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


def _read_times(parts: list[bytes], gaps: list[float], clock: _Clock) -> tuple[tuple[int, float], ...]:
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
