"""runner's httpx transport: HTTP/1.1 over trio with an O(1) pool, read in whole socket reads.

httpx stays the client (``AsyncClient``, ``Request``, ``Response``, timeouts, its exception types); this
replaces httpcore under it. Every failure surfaces as the httpx exception httpcore would raise, so
run/attempt.py's boundary (``EXCEPTION_MAP``) and the retry classification do not change.
"""

from __future__ import annotations

import re
import ssl
from contextlib import contextmanager
from typing import TYPE_CHECKING, Final, Protocol

import httpx
import trio

from runner.http.decode import ContentDecoder, DecodeError, decoder_for
from runner.http.parse import Head, HeadReader, ProtocolError, body_reader, is_keep_alive
from runner.http.pool import KEEPALIVE_EXPIRY_S, Connection, Origin, Pool

if TYPE_CHECKING:
    from collections.abc import Iterator

    from runner.http.parse import BodyReader

DEFAULT_PORTS: Final = {"http": 80, "https": 443}
# The response extension that carries runner's own body stream (httpx keeps a transport's extensions
# on the Response, as httpcore's "network_stream"): ``body_of`` reads it.
BODY_EXTENSION: Final = "runner.body"
_TOKEN: Final = re.compile(rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+")
_BAD_VALUE: Final = re.compile(rb"[\x00\r\n]")
# What _mapped maps; _Body._next_block maps the same inline (its hot path skips the context manager).
_READ_ERRORS: Final = (ProtocolError, OSError, trio.BrokenResourceError)


class Body(Protocol):
    """What ``body_of`` hands out: the body's blocks, and when the kernel received them (see ``_Body``)."""

    stamped: bool
    dating: bool
    head_arrival: float | None
    arrival: float | None
    first_arrival: float | None

    def __aiter__(self) -> Body: ...

    async def __anext__(self) -> bytes: ...


class HttpTransport(httpx.AsyncBaseTransport):
    """``httpx.AsyncClient(transport=HttpTransport(...))``: http:// and https:// over runner's own pool.

    Args:
        max_connections_per_host: requests in flight to one origin at a time (the rest wait: pool timeout).
        ssl_context: for https; ``ssl.create_default_context()`` (system CAs, SNI, hostname check) if None.
        kernel_timestamps: date the response head, and the body reads a reader asks for (``_Body.dating``),
            by when the kernel received them (runner.http.stamp) rather than when the loop read them.
            Plain TCP on Linux only; elsewhere ``arrival`` stays None and the reader keeps its own clock.
    """

    def __init__(
        self,
        *,
        max_connections_per_host: int = 100,
        ssl_context: ssl.SSLContext | None = None,
        keepalive_expiry: float = KEEPALIVE_EXPIRY_S,
        kernel_timestamps: bool = True,
    ) -> None:
        # None: the pool builds the default context at its first https connection (loading the
        # system's CAs takes ~80 ms, which a run against http:// providers never needs).
        self._pool = Pool(
            max_per_host=max_connections_per_host,
            ssl_context=ssl_context,
            keepalive_expiry=keepalive_expiry,
            stamped=kernel_timestamps,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme not in DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"runner's transport speaks http and https, not {url.scheme!r}")
        origin: Origin = (url.scheme, url.host, url.port or DEFAULT_PORTS[url.scheme])
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        head = _request_head(request)
        pool = self._pool
        if not pool.try_acquire(origin):  # a free slot needs neither the wait nor its timeout scope
            with _timeout(timeouts.get("pool"), httpx.PoolTimeout, "no free connection", request):
                await pool.acquire(origin)
        try:
            return await self._exchange(origin, head, request, timeouts)
        except BaseException:
            pool.release(origin)
            raise

    async def _exchange(
        self, origin: Origin, head: bytes, request: httpx.Request, timeouts: dict[str, float | None]
    ) -> httpx.Response:
        """Send on a pooled connection; read the response head; hand the body over as a stream."""
        try:
            body: bytes | None = request.content
        except httpx.RequestNotRead:
            body = None  # a streamed body: sent as it comes, so it cannot be sent twice
        connection = await self._connect(origin, request, timeouts, fresh=False)
        # Before the request leaves: no byte of its response can have arrived earlier, whatever a
        # kernel stamp says (a realtime step between the stamp and its reading).
        sent = trio.current_time()
        try:
            unsent = await _sent(connection, head, body, request, timeouts.get("write"))
            if unsent is not None and connection.reused and body is not None:
                # An idle keep-alive connection the server closed just now: nothing reached it, so the
                # request goes once more on a fresh connection (httpcore's retry of a dead idle one).
                await connection.aclose()
                connection = await self._connect(origin, request, timeouts, fresh=True)
                unsent = await _sent(connection, head, body, request, timeouts.get("write"))
            try:
                response_head, rest, head_at, rest_at = await _receive_head(
                    connection, request, timeouts.get("read")
                )
            except httpx.TransportError:
                # No answer either: the request's own failure is the outcome (it never went out whole).
                if unsent is not None:
                    raise unsent from unsent.__cause__  # the OS error the write met
                raise
            with _mapped(request):
                reader = body_reader(response_head, method=request.method.encode())
        except BaseException:
            with trio.CancelScope(shield=True):
                await connection.aclose()
            raise
        stream = _Body(self._pool, connection, response_head, reader, rest, request, timeouts)
        # Half a request on it (the server answered early), or the request asked to close: not reused.
        stream.reusable = unsent is None and not _asks_close(request)
        stream.head_arrival = _later(sent, head_at)
        stream.arrival = _later(stream.head_arrival, rest_at)
        return _response(response_head, stream)

    async def _connect(
        self, origin: Origin, request: httpx.Request, timeouts: dict[str, float | None], *, fresh: bool
    ) -> Connection:
        with _timeout(timeouts.get("connect"), httpx.ConnectTimeout, "connect", request):
            try:
                return await self._pool.checkout(origin, fresh=fresh)
            except (OSError, trio.BrokenResourceError, ssl.SSLError) as exc:
                raise httpx.ConnectError(_text(exc), request=request) from exc


def _response(head: Head, stream: _Body) -> httpx.Response:
    headers = head.headers
    decoder = decoder_for(head.values(b"content-encoding"))
    if decoder is not None:
        # Decoded here, in bounded steps: httpx must not decode again, and the length no longer holds.
        headers = [(k, v) for k, v in headers if k not in (b"content-encoding", b"content-length")]
        stream.decoder = decoder
    return httpx.Response(
        head.status,
        headers=headers,
        stream=stream,
        extensions={"http_version": head.version, "reason_phrase": head.reason, BODY_EXTENSION: stream},
    )


def body_of(response: httpx.Response) -> Body | None:
    """The body of a response runner's transport gave, to iterate directly; None for another transport.

    Its blocks are what ``aiter_raw`` would give (decoded already when the server compressed them):
    iterating it skips httpx's two async-generator hops per read. Leaving ``client.stream()`` still
    closes it through httpx, so a body left half-read closes its connection all the same.
    """
    body = response.extensions.get(BODY_EXTENSION)
    return body if isinstance(body, _Body) else None


def _request_head(request: httpx.Request) -> bytes:
    """The request line and headers; a header with CR, LF or NUL is refused without quoting it."""
    lines = [b"%s %s HTTP/1.1" % (request.method.encode(), request.url.raw_path)]
    for name, value in request.headers.raw:
        if not _TOKEN.fullmatch(name) or _BAD_VALUE.search(value):
            # The value may be an API key: the message names the header only.
            raise httpx.LocalProtocolError(
                f"header {name[:40]!r} is not valid HTTP/1.1 (a control character?)", request=request
            )
        lines.append(name + b": " + value)
    lines.append(b"\r\n")
    return b"\r\n".join(lines)


async def _sent(
    connection: Connection, head: bytes, body: bytes | None, request: httpx.Request, seconds: float | None
) -> httpx.WriteError | None:
    """Send the request; a write that failed is returned, not raised (httpcore's rule, for the same reason).

    A server may answer before it has read the whole request (a 413 for a body over its limit, a 401)
    and close, which fails the rest of the write: its answer, read next, is the outcome, not the error.
    """
    try:
        await _send(connection, head, body, request, seconds)
    except httpx.WriteError as exc:
        return exc
    return None


def _asks_close(request: httpx.Request) -> bool:
    """Whether the request says ``Connection: close`` (then the connection ends with its response)."""
    value = request.headers.get("connection")
    return value is not None and "close" in (part.strip() for part in value.lower().split(","))


async def _send(
    connection: Connection, head: bytes, body: bytes | None, request: httpx.Request, seconds: float | None
) -> None:
    with _timeout(seconds, httpx.WriteTimeout, "write", request):
        try:
            if body is not None:
                # One send: small bodies go in the head's segment (TCP_NODELAY is on).
                await connection.stream.send_all(head + body if len(body) < 65536 else head)
                if len(body) >= 65536:
                    await connection.stream.send_all(body)
                return
            await connection.stream.send_all(head)
            chunked = request.headers.get("transfer-encoding", "").lower() == "chunked"
            async for part in request.stream:  # type: ignore[union-attr]
                if part:
                    await connection.stream.send_all(b"%x\r\n%s\r\n" % (len(part), part) if chunked else part)
            if chunked:
                await connection.stream.send_all(b"0\r\n\r\n")
        except (OSError, trio.BrokenResourceError) as exc:
            raise httpx.WriteError(_text(exc), request=request) from exc


async def _receive_head(
    connection: Connection, request: httpx.Request, seconds: float | None
) -> tuple[Head, bytes, float | None, float | None]:
    """The response head, the body bytes that came with it, and when they arrived (the kernel's).

    When the head arrived: its read's first bytes as the watch peeked them, or else its newest
    segment; and the newest segment (what the body bytes read with it are dated by). None where the
    connection has no stamps (TLS, not Linux, a mock clock).
    """
    reader = HeadReader()
    connection.dating = True
    try:
        with _timeout(seconds, httpx.ReadTimeout, "read", request), _mapped(request):
            while True:
                data = await connection.receive()
                if not data:
                    raise httpx.RemoteProtocolError(
                        "Server disconnected without sending a response.", request=request
                    )
                head = reader.feed(data)
                if head is not None:
                    newest = connection.arrival
                    first = connection.first_arrival
                    return head, reader.rest, first if first is not None else newest, newest
    finally:
        connection.dating = False


class _Body(httpx.AsyncByteStream):
    """A response body: one block per socket read (or per decoded step), however many chunks it held.

    Read to its end, the connection goes back to the pool; closed early, failed or cancelled, the
    connection is closed: never returned half-read.

    ``stamped``: its reads can be dated (plain TCP on Linux, the loop on the machine's clock).
    ``head_arrival``: when the kernel received the head, on the loop's clock (runner.http.stamp), never
    before the request was sent nor after the loop read it; None without stamps (TLS, not Linux, a mock
    clock), where the reader's own clock is the best there is.

    While ``dating`` is on, ``arrival`` is when the kernel received the last block's newest bytes (an
    upper bound: runner.http.stamp), never earlier than a previous block's, never later than its read;
    the bytes that came with the head carry that read's. ``first_arrival``: when the block's first
    bytes arrived, as the pool's watch peeked them before the read (None: not peeked in time, or the
    bytes that came with the head).
    """

    def __init__(
        self,
        pool: Pool,
        connection: Connection,
        head: Head,
        reader: BodyReader,
        rest: bytes,
        request: httpx.Request,
        timeouts: dict[str, float | None],
    ) -> None:
        self.decoder: ContentDecoder | None = None
        self._pool = pool
        self._connection: Connection | None = connection
        self._head = head
        self._reader = reader
        self._rest = rest
        self._request = request
        self._read_timeout = timeouts.get("read")
        self._ended = False  # the body's bytes are all read (the decoder may still hold some)
        self._flushed = False
        self.reusable = True  # False: closed at the end whatever the response says (see _exchange)
        self._dating = False
        self.stamped = connection.stamped
        self.head_arrival: float | None = None
        self.arrival: float | None = None
        self.first_arrival: float | None = None

    @property
    def dating(self) -> bool:
        return self._dating

    @dating.setter
    def dating(self, on: bool) -> None:
        """Date the next reads by the kernel's stamps (a reader turns it off once it has its instants)."""
        self._dating = on
        if self._connection is not None:
            self._connection.dating = on

    def __aiter__(self) -> _Body:
        return self

    async def __anext__(self) -> bytes:
        try:
            while True:
                block = await self._next_block()
                if block is None:
                    raise StopAsyncIteration
                if block:
                    return block
        except StopAsyncIteration:
            raise
        except BaseException:
            await self._discard()
            raise

    async def _next_block(self) -> bytes | None:
        """The next payload bytes (maybe empty), or None at the end of the body.

        The hot path of a stream, once per socket read: errors are mapped with an inline try (a
        @contextmanager here cost two generator calls per read), and the read is the connection's own.
        """
        decoder, reader = self.decoder, self._reader
        if decoder is not None and decoder.has_more:
            # Input waits in the decompressor: the next bounded step, before any new read (or the end).
            return self._decoded(decoder, b"")
        if self._ended:
            if decoder is not None and not self._flushed:
                self._flushed = True
                return self._flush(decoder)
            return None
        try:
            if self._rest:
                data, self._rest = self._rest, b""
            elif reader.done:
                data = b""
            else:
                connection = self._connection
                assert connection is not None
                if self._read_timeout is None:  # runner's attempts: their own cancel scope bounds the wait
                    data = await connection.receive()
                else:
                    data = await self._receive_within(connection, self._read_timeout)
                if self._dating:  # one test per read when off: a stream past its first token pays no more
                    self.arrival = _later(self.arrival, connection.arrival)
                    self.first_arrival = connection.first_arrival
                if not data:
                    reader.eof()
            block = reader.feed(data) if data else b""
        except _READ_ERRORS as exc:
            raise _as_httpx(exc, self._request) from exc
        if reader.done:
            # The connection goes back now; what the decompressor still holds comes out in later steps.
            self._ended = True
            await self._finish()
        return self._decoded(decoder, block) if decoder is not None else block

    async def _receive_within(self, connection: Connection, seconds: float) -> bytes:
        with _timeout(seconds, httpx.ReadTimeout, "read", self._request):
            return await connection.receive()

    def _decoded(self, decoder: ContentDecoder, data: bytes) -> bytes:
        try:
            return decoder.decode(data)
        except DecodeError as exc:
            raise httpx.DecodingError(str(exc), request=self._request) from exc

    def _flush(self, decoder: ContentDecoder) -> bytes:
        try:
            return decoder.flush()
        except DecodeError as exc:  # pragma: no cover - zlib's flush does not fail on a truncated body
            raise httpx.DecodingError(str(exc), request=self._request) from exc

    async def _finish(self) -> None:
        """The body is complete: keep the connection if HTTP allows, and free the slot."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            if self.reusable and is_keep_alive(self._head, self._reader):
                await self._pool.checkin(connection)
            else:
                await connection.aclose()
        finally:
            self._pool.release(connection.origin)

    async def _discard(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        self._ended = True
        try:
            # Shielded: a cancelled stream must still close its socket (bounded: aclose_forcefully).
            with trio.CancelScope(shield=True):
                await connection.aclose()
        finally:
            self._pool.release(connection.origin)

    async def aclose(self) -> None:
        if self._connection is None:
            return
        if self._reader.done and not self._rest and (self.decoder is None or not self.decoder.has_more):
            self._ended = True
            await self._finish()
        else:
            await self._discard()


def _later(previous: float | None, at: float | None) -> float | None:
    """A block's arrival: its stamp, but never before the previous block's (None: not dated)."""
    if at is None or previous is None:
        return at
    return at if at > previous else previous


@contextmanager
def _timeout(
    seconds: float | None, error: type[httpx.TimeoutException], what: str, request: httpx.Request
) -> Iterator[None]:
    if seconds is None:
        yield
        return
    try:
        with trio.fail_after(seconds):
            yield
    except trio.TooSlowError as exc:
        raise error(f"{what} timed out after {seconds:g} s", request=request) from exc


@contextmanager
def _mapped(request: httpx.Request) -> Iterator[None]:
    """trio's and the OS's read errors, and the parser's, as httpx's (what httpcore raises for them)."""
    try:
        yield
    except _READ_ERRORS as exc:
        raise _as_httpx(exc, request) from exc


def _as_httpx(exc: BaseException, request: httpx.Request) -> httpx.HTTPError:
    """httpx's exception for one of ``_READ_ERRORS``: the parser's is a protocol error, trio's and the
    OS's a read error."""
    if isinstance(exc, ProtocolError):
        return httpx.RemoteProtocolError(str(exc), request=request)
    return httpx.ReadError(_text(exc), request=request)


def _text(exc: BaseException) -> str:
    cause = exc.__cause__ if isinstance(exc, trio.BrokenResourceError) and exc.__cause__ else exc
    return str(cause) or type(cause).__name__
