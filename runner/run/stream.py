"""Reading one response body: a 2xx event stream through the SSE decoder into the dialect's
accumulator (runner's hot loop), or a non-2xx body, bounded, for the provider's error message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import trio

from runner import errors
from runner.http import body_of
from runner.run.outcome import http_error
from runner.wire.events import event_count

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import httpx

    from runner.model import AttemptError
    from runner.run.deadlines import Clock, Deadlines
    from runner.wire.dialects.base import Accumulator, Dialect
    from runner.wire.sse import RawEvent, SSEDecoder

# An error body is read for its message only; a misbehaving server must not make us buffer forever.
ERROR_BODY_LIMIT = 64 * 1024
# After the terminal signal only the chunked terminator should follow. Reading it lets httpx return
# the connection to the pool; a server that keeps talking is cut off after this long.
DRAIN_SECONDS = 1.0


@dataclass(slots=True)
class Received:
    """What one attempt has received so far; kept up to date, so a cut stream keeps its counts."""

    status: int | None = None
    nbytes: int = 0
    nevents: int = 0
    gaps: list[float] = field(default_factory=list)
    parts: list[bytes] | None = None  # the raw body, only when capturing


async def read_stream(
    response: httpx.Response,
    scope: trio.CancelScope,
    deadlines: Deadlines,
    clock: Clock,
    got: Received,
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
                at = within(body.arrival, last, now)
                first_at = within(body.first_arrival, last, at)
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


def arrived(response: httpx.Response, start: float, now: float) -> float:
    """When the response head arrived: the kernel's instant on runner's transport (when it has one)."""
    body = body_of(response)
    return within(body.head_arrival if body is not None else None, start, now)


def within(at: float | None, earliest: float, latest: float) -> float:
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


async def _read_limited(response: httpx.Response) -> bytes:
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) >= ERROR_BODY_LIMIT:
            break
    return bytes(body[:ERROR_BODY_LIMIT])


async def read_error_body(response: httpx.Response, dialect: Dialect, got: Received) -> AttemptError:
    """Read a non-2xx body (bounded) for the provider's error message, and classify the response."""
    status = response.status_code
    body = await _read_limited(response)
    got.nbytes = len(body)  # real traffic, counted whether or not the body is captured
    if got.parts is not None:
        got.parts.append(body)
    return http_error(status, response.headers, dialect.parse_error_body(status, body))
