"""Connections and the per-host pool: O(1) checkout and return, a per-host connection limit, TLS.

Each origin has a deque of idle connections (newest on the right) and a semaphore of active ones.
Checkout pops from the right, return appends there: no scan over all connections, whatever the load
(httpcore 1.0 rescans every connection for every waiting request, quadratic in the concurrency).
Errors are trio's and the OS's; runner/http/transport.py maps them onto httpx's types.
"""

from __future__ import annotations

import ipaddress
import os
import select
import socket
import ssl
from collections import deque
from dataclasses import dataclass, field
from typing import Final

import trio

from runner.http import stamp
from runner.http.watch import ArrivalWatch

# httpx's default: a connection idle longer than this may already be closed by the server.
KEEPALIVE_EXPIRY_S: Final = 5.0
# One socket read: large, so a fast stream is read in few wake-ups (PERFORMANCE.md: per read, not per chunk).
RECEIVE_BYTES: Final = 64 * 1024
# Reads that found data at once, in a row, before a forced trio checkpoint: a body that never makes
# its reader wait must still let other tasks run and its cancel scope's deadline fire.
READS_PER_CHECKPOINT: Final = 8
# Plain TCP is read with os.read on the socket's descriptor, under trio's wait_readable: trio's own
# receive_some costs ~5 Python frames and two checkpoints per read (a quarter of runner's CPU with
# 1,000 slow streams). os.read on a socket is POSIX only; elsewhere trio's path stays.
_RAW_READS: Final = os.name == "posix"

Origin = tuple[str, str, int]  # (scheme, host, port)


class Connection:
    """One HTTP/1.1 connection (TCP, or TLS over it)."""

    __slots__ = (
        "_dating",
        "_fd",
        "_generation",
        "_immediate",
        "_must_wait",
        "_read_size",
        "_stamped",
        "_watch",
        "_watched",
        "arrival",
        "first_arrival",
        "idle_since",
        "origin",
        "reused",
        "stream",
    )

    def __init__(
        self,
        origin: Origin,
        stream: trio.abc.Stream,
        *,
        read_size: int = RECEIVE_BYTES,
        stamped: bool = False,
        watch: ArrivalWatch | None = None,
    ) -> None:
        self.origin = origin
        self.stream = stream
        self.idle_since = 0.0
        self.reused = False  # carried a request before this one
        # The descriptor read directly (plain TCP on POSIX), or -1: read through the trio stream (TLS).
        self._fd = stream.socket.fileno() if _RAW_READS and isinstance(stream, trio.SocketStream) else -1
        self._immediate = 0  # reads in a row that did not wait
        self._must_wait = False  # the last read drained the socket: wait before the next one
        self._read_size = read_size
        # The kernel stamps what this socket receives (runner.http.stamp.enable; plain TCP only: a TLS
        # record's bytes are read through the SSL object, and their segments' stamps do not reach us).
        self._stamped = stamped and self._fd >= 0
        # Dating the reads (``dating``): off by default, so a stream past the instants it times (its
        # head, its first token) reads with os.read at no extra cost.
        self._dating = False
        # The thread that peeks at the first unread segment's stamp while dating (its pool's), and
        # whether this socket is in it; reads are numbered so a peek is matched to its read.
        self._watch = watch if self._stamped else None
        self._watched = False
        self._generation = 0
        # When the kernel received the last dated read's newest segment, on the loop's clock (None: the
        # read was not dated, or the kernel gave no stamp). An upper bound: runner.http.stamp says why.
        self.arrival: float | None = None
        # When its first bytes arrived, as the watch peeked them before the loop read them (None: not
        # peeked in time, or no watch): exact for what the read starts with.
        self.first_arrival: float | None = None

    @property
    def stamped(self) -> bool:
        """Whether the kernel stamps what this connection receives (its reads can be dated)."""
        return self._stamped

    @property
    def dating(self) -> bool:
        """Whether reads are dated (recvmsg with the kernel's stamp); never on without stamps."""
        return self._dating

    @dating.setter
    def dating(self, on: bool) -> None:
        on = on and self._stamped
        self._dating = on
        watch = self._watch
        if watch is None:
            return
        if on:
            if not self._watched:
                self._watched = watch.add(self._fd)
            if self._watched:
                self._generation = watch.new_generation()
                watch.arm(self._fd, self._generation)
        elif self._watched:
            watch.disarm(self._fd)

    async def receive(self) -> bytes:
        """The next bytes the server sent (up to ``read_size``); b"" when it closed the connection.

        Same contract as trio's ``receive_some``: a cancel point while it waits, and a schedule point at
        least every ``READS_PER_CHECKPOINT`` reads. Errors are trio's or the OS's (the caller maps them).
        """
        fd = self._fd
        if fd < 0:
            data = await self.stream.receive_some(self._read_size)
            return data if isinstance(data, bytes) else bytes(data)  # SSLStream's are bytearrays
        if self._dating:
            return await self._receive_dated()
        if self._must_wait:
            # The last read came back short, so the socket was empty then: with slow streams the next
            # bytes are almost never there yet, and a read that would fail costs a syscall and an
            # exception for nothing. Waiting first is correct either way (epoll is level-triggered).
            await trio.lowlevel.wait_readable(fd)
            self._immediate = 0
        elif self._immediate >= READS_PER_CHECKPOINT:
            # Before the read, not after: a cancellation here loses no bytes (trio's receive_some
            # checks for one first, then yields shielded once it has data, for the same reason).
            await trio.lowlevel.checkpoint()
            self._immediate = 0
        while True:
            try:
                data = os.read(fd, self._read_size)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(fd)
                self._immediate = 0
                continue
            break
        self._immediate += 1
        self._must_wait = len(data) < self._read_size
        return data

    async def _receive_dated(self) -> bytes:
        """``receive`` through recvmsg, which also hands over the kernel's receive stamp (``arrival``).

        trio's own recvmsg (a cancel point, and a schedule point whether it waited or not): only the
        few reads a stream dates take this path, so its extra frames do not matter.
        """
        assert isinstance(self.stream, trio.SocketStream)
        generation = self._generation
        data, ancdata, _flags, _address = await self.stream.socket.recvmsg(
            self._read_size, stamp.ANCILLARY_BYTES
        )
        # The two clocks side by side, right after the read: the stamp's age on the one is taken
        # off the other (runner.http.stamp.place).
        now, realtime = trio.current_time(), stamp.realtime_ns()
        newest = stamp.stamp_ns(ancdata)
        first = None
        watch = self._watch
        if self._watched and watch is not None:
            first = watch.stamp(self._fd, generation)
            # A peek later than the read's own stamp saw later bytes (the loop read first): not ours.
            if first is not None and newest is not None and first > newest:
                first = None
            self._generation = watch.new_generation()
            watch.arm(self._fd, self._generation)  # for the next read's first bytes
        self.arrival = None if newest is None else stamp.place(newest, now, realtime)
        self.first_arrival = None if first is None else stamp.place(first, now, realtime)
        self._immediate = 0
        self._must_wait = len(data) < self._read_size
        return data

    def fileno(self) -> int:
        stream = self.stream
        if isinstance(stream, trio.SSLStream):
            stream = stream.transport_stream
        assert isinstance(stream, trio.SocketStream)
        return stream.socket.fileno()

    def is_readable(self) -> bool:
        """Whether the idle socket has something to read: the server closed it (or talks out of turn).

        poll, not select: select fails on descriptors past 1024, and 1,000 streams get there.
        """
        poller = select.poll()
        poller.register(self.fileno(), select.POLLIN)
        return bool(poller.poll(0))

    async def aclose(self) -> None:
        """Close at once, without a TLS close_notify (a half-read stream is not worth a round trip)."""
        self._forget()
        await trio.aclose_forcefully(self.stream)

    def close_plain(self) -> bool:
        """Close a plain TCP connection now, without a schedule point; False (and open) for TLS.

        What ``aclose`` does to a plain socket, less its cancelled checkpoint: a pool closing its
        500 idle connections at the end of a run spent ~18 ms raising and catching those.
        """
        if not isinstance(self.stream, trio.SocketStream):
            return False
        self._forget()
        self.stream.socket.close()
        return True

    def _forget(self) -> None:
        # Forget the descriptor first: once closed, its number may be reused by another connection.
        if self._watched and self._watch is not None:
            self._watch.remove(self._fd)
            self._watched = False
        self._fd = -1


def default_ssl_context() -> ssl.SSLContext:
    """The system's verification (its CAs, SNI, hostname check), offering HTTP/1.1 only."""
    context = ssl.create_default_context()
    # Say so in the handshake: a server that would pick HTTP/2 must stay on HTTP/1.1 with us.
    context.set_alpn_protocols(["http/1.1"])
    return context


async def open_connection(
    origin: Origin,
    ssl_context: ssl.SSLContext | None,
    *,
    stamped: bool = False,
    watch: ArrivalWatch | None = None,
) -> Connection:
    """Connect to ``origin``; for https, a TLS handshake with SNI and hostname checking.

    ``stamped``: ask the kernel to stamp what a plain TCP connection receives (runner.http.stamp),
    when the loop's clock is the machine's (a mock clock cannot place a stamp).
    """
    scheme, host, port = origin
    tcp = await _open_tcp(host, port)
    stream: trio.abc.Stream = tcp
    if scheme == "http":
        stamped = stamped and stamp.loop_clock_is_real() and stamp.enable(tcp.socket)
        return Connection(origin, stream, stamped=stamped, watch=watch)
    if scheme == "https":
        if ssl_context is None:
            ssl_context = default_ssl_context()
        # https_compatible: servers rarely send close_notify; a close after a complete body is fine.
        tls = trio.SSLStream(stream, ssl_context, server_hostname=host, https_compatible=True)
        try:
            await tls.do_handshake()
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise
        stream = tls
    return Connection(origin, stream)


async def _open_tcp(host: str, port: int) -> trio.SocketStream:
    """A TCP stream to ``host:port`` (trio.SocketStream sets TCP_NODELAY).

    An IP address is connected to directly: trio's open_tcp_stream runs its happy-eyeballs nursery
    even for one address, ~100 us of CPU a connection (a tenth of a short stream's cost, and a wave of
    500 new streams waits 50 ms on it). A name goes through it: several addresses, tried in turn.
    """
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return await trio.open_tcp_stream(host, port)
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    sock = trio.socket.socket(family, socket.SOCK_STREAM)
    try:
        await sock.connect((host, port))
    except BaseException:
        sock.close()
        raise
    return trio.SocketStream(sock)


@dataclass(slots=True)
class _Host:
    slots: trio.Semaphore
    idle: deque[Connection] = field(default_factory=deque)


class Pool:
    """Idle connections per origin, and at most ``max_per_host`` requests in flight to each."""

    __slots__ = ("_closed", "_hosts", "_ssl_context", "_watch", "keepalive_expiry", "max_per_host", "stamped")

    def __init__(
        self,
        *,
        max_per_host: int,
        ssl_context: ssl.SSLContext | None,
        keepalive_expiry: float,
        stamped: bool = False,
    ) -> None:
        self.max_per_host = max_per_host
        self.keepalive_expiry = keepalive_expiry
        self.stamped = stamped  # new plain TCP connections get kernel receive stamps (runner.http.stamp)
        # Its thread starts at the first dated read: a pool that never dates one costs nothing.
        self._watch = ArrivalWatch() if stamped and stamp.SUPPORTED else None
        self._ssl_context = ssl_context
        self._hosts: dict[Origin, _Host] = {}
        self._closed = False

    def _host(self, origin: Origin) -> _Host:
        host = self._hosts.get(origin)
        if host is None:
            host = self._hosts[origin] = _Host(trio.Semaphore(self.max_per_host))
        return host

    def try_acquire(self, origin: Origin) -> bool:
        """Take a slot of ``origin`` at once if one is free (no schedule point); False if it would wait.

        A schedule point before the send puts the request behind every other runnable task (on a
        loop busy with a wave of streams, milliseconds); the send checkpoints right after anyway. A
        free slot means nobody waits for one (trio's Semaphore), so this never overtakes a request.
        """
        try:
            self._host(origin).slots.acquire_nowait()
        except trio.WouldBlock:
            return False
        return True

    async def acquire(self, origin: Origin) -> None:
        """Wait for a slot of ``origin`` (the caller bounds the wait: httpx's pool timeout)."""
        await self._host(origin).slots.acquire()

    def release(self, origin: Origin) -> None:
        """Give back the slot ``acquire`` took."""
        self._hosts[origin].slots.release()

    async def checkout(self, origin: Origin, *, fresh: bool = False) -> Connection:
        """The newest live idle connection of ``origin``, or a new one (always new when ``fresh``).

        An idle connection past its expiry, or that the server closed meanwhile (readable: EOF), is closed
        here and the next one tried: a request never goes out on a connection known to be dead.
        """
        idle = self._host(origin).idle
        deadline = trio.current_time() - self.keepalive_expiry
        while idle and not fresh:
            connection = idle.pop()
            if connection.idle_since >= deadline and not connection.is_readable():
                connection.reused = True
                return connection
            await connection.aclose()
        if origin[0] == "https" and self._ssl_context is None:
            self._ssl_context = default_ssl_context()  # built once, at the first https connection
        if self._watch is not None and origin[0] == "http":
            self._watch.keep_stamping()  # before the connect: the kernel turns stamping on lazily
        return await open_connection(origin, self._ssl_context, stamped=self.stamped, watch=self._watch)

    async def checkin(self, connection: Connection) -> None:
        """Keep a connection whose response was read to its end; expired ones at the old end go."""
        if self._closed:
            # Its request was in flight when the pool closed: kept, nothing would ever close it.
            await connection.aclose()
            return
        now = trio.current_time()
        connection.idle_since = now
        idle = self._host(connection.origin).idle
        idle.append(connection)
        # The oldest sit on the left: drop those past expiry (amortized O(1), no scan of live ones).
        while idle[0].idle_since < now - self.keepalive_expiry:
            await idle.popleft().aclose()

    async def aclose(self) -> None:
        """Close every idle connection now (plain ones at once); one in flight, when its response ends."""
        self._closed = True
        # Shielded: closed under a cancellation (a client closed on Ctrl-C), the first TLS connection's
        # checkpoint would stop the loop and leave the rest open. Bounded: aclose_forcefully never waits.
        with trio.CancelScope(shield=True):
            for host in self._hosts.values():
                while host.idle:
                    connection = host.idle.pop()
                    if not connection.close_plain():
                        await connection.aclose()
        if self._watch is not None:
            self._watch.close()  # joins its thread: a blocking call, but one that returns at once
