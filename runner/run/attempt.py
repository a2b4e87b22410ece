"""One HTTP attempt: request -> httpx stream -> SSE decoder -> dialect accumulator -> AttemptRecord.

runner's one HTTP boundary: httpx's, trio's and the OS's errors become ``runner.errors`` here and are
returned as data (the record's ``error``, with partial output and timing); only bugs and cancellation escape.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

import httpx
import trio

from runner import errors
from runner.model import AttemptError, AttemptRecord
from runner.run.deadlines import Clock, Deadlines
from runner.run.outcome import completion_error, error_from, read_times, timing
from runner.run.retry import classify_exception
from runner.run.stream import Received, arrived, read_error_body, read_stream
from runner.spec import DEFAULT_MAX_RESPONSE_BYTES
from runner.wire.sse import SSEDecoder

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from runner.spec import Timeouts
    from runner.wire.dialects.base import Dialect, HttpRequest

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


@contextmanager
def map_exceptions(received: Received, *, unit_key: str, attempt: int) -> Iterator[None]:
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

    The limits (``Deadlines``) all act on one cancel scope; ``connect`` is httpx's own. Every failure
    is classified by runner.run.retry and stored as the record's ``error``.

    Args:
        capture: keep the raw body bytes in the record (for replay with ``runner parse``).
        max_response_bytes: the most body bytes (decompressed) to read; one more fails the attempt.
        on_cancel: called, when an enclosing scope cancels the attempt (Ctrl-C), with what it had
            received so far (error kind ``cancelled``) before the cancellation propagates.
    """
    started_at = datetime.now(UTC)
    clock = Clock(start=trio.current_time())
    deadlines = Deadlines(timeouts, clock.start)
    got = Received(parts=[] if capture else None)
    accumulator = dialect.new_accumulator()
    decoder = SSEDecoder(max_event_bytes=max_response_bytes)
    error: AttemptError | None = None

    def record(error: AttemptError | None) -> AttemptRecord:
        clock.end = trio.current_time()
        # A stream cut short, timed out or cancelled keeps its partial output.
        completion = accumulator.result() if deadlines.phase == "body" else None
        if error is None and completion is not None:
            error = completion_error(completion, got.status)
        # Before timing, which sorts the gaps in place: in arrival order they date each read.
        reads = read_times(got.parts, got.gaps, clock) if got.parts is not None else None
        return AttemptRecord(
            unit_key=unit_key,
            number=number,
            http_status=got.status,
            error=error,
            completion=completion,
            timing=timing(started_at, clock, got.gaps),
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
                    clock.headers = arrived(response, clock.start, trio.current_time())
                    got.status = status = response.status_code
                    if 200 <= status < 300:
                        scope.deadline = deadlines.body(clock.headers)
                        await read_stream(
                            response, scope, deadlines, clock, got, decoder, accumulator, max_response_bytes
                        )
                    else:
                        scope.deadline = deadlines.error_body(clock.headers)
                        error = await read_error_body(response, dialect, got)
        except errors.ProviderError as exc:
            decision = classify_exception(exc)
            if decision is None:  # pragma: no cover - every ProviderError is classified
                raise
            error = error_from(decision, f"{exc} (during {deadlines.phase})", got.status)
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


def _describe(exc: Exception) -> str:
    if isinstance(exc, httpx.LocalProtocolError):
        # h11 quotes the header value it refused ("Illegal header value b'Bearer sk-...\\n'"): that can be
        # the API key, so the message is ours alone. Other httpx messages name the URL at most.
        return (
            "LocalProtocolError: the request is not valid HTTP/1.1 (a header value has a control character?)"
        )
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"
