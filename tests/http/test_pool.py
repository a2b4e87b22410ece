"""A pooled connection's own reads keep trio's receive_some contract: cancel and schedule points."""

from __future__ import annotations

import socket

import pytest
import trio

from runner.http.pool import READS_PER_CHECKPOINT, Connection, Pool, open_connection
from tests.fakes.loopback import has_ipv6_loopback

READ = 1024  # small reads: a few KiB in the socket buffer make many reads that need not wait


async def _pair(read_size: int = READ) -> tuple[Connection, trio.SocketStream]:
    """A Connection over one end of a socket pair, and the other end to play the server."""
    ours, theirs = trio.socket.socketpair()
    connection = Connection(("http", "pair", 0), trio.SocketStream(ours), read_size=read_size)
    return connection, trio.SocketStream(theirs)


async def test_reads_that_never_wait_still_reach_a_cancel_point() -> None:
    """With bytes always waiting, a cancelled scope stops reads within READS_PER_CHECKPOINT, losing none."""
    connection, server = await _pair()
    sent = bytes(range(256)) * (READ * (READS_PER_CHECKPOINT + 4) // 256)
    await server.send_all(sent)
    got = bytearray()
    reads = 0
    with trio.CancelScope() as scope:
        scope.cancel()
        while True:
            got += await connection.receive()
            reads += 1
    assert scope.cancelled_caught
    assert reads <= READS_PER_CHECKPOINT
    while len(got) < len(sent):  # the rest is still there for the next reads: nothing was dropped
        got += await connection.receive()
    assert got == sent
    await connection.aclose()
    await server.aclose()


async def test_reads_that_never_wait_still_let_other_tasks_run() -> None:
    """A body whose bytes are always there yields to the scheduler every READS_PER_CHECKPOINT reads."""
    connection, server = await _pair()
    reads = 2 * READS_PER_CHECKPOINT + 1
    await server.send_all(b"x" * READ * reads)
    ran = trio.Event()

    async def other() -> None:
        ran.set()

    async with trio.open_nursery() as nursery:
        # It runs in the batch of the reader's first checkpoint (trio may run the reader first in
        # that batch): by the second checkpoint it has run, whatever the order.
        nursery.start_soon(other)
        for _ in range(reads):
            assert len(await connection.receive()) == READ
        assert ran.is_set()
    await connection.aclose()
    await server.aclose()


async def test_a_waiting_read_is_a_cancel_point() -> None:
    """A read waiting on a silent server ends when its scope is cancelled, as trio's receive_some does."""
    connection, server = await _pair()
    with trio.move_on_after(0.05) as scope:
        await connection.receive()
    assert scope.cancelled_caught
    await server.send_all(b"late")
    assert await connection.receive() == b"late"  # the connection still reads after a cancelled wait
    await connection.aclose()
    await server.aclose()


async def test_a_short_read_then_the_next_bytes_and_the_end() -> None:
    """After a read that drained the socket, the next read waits for the server's bytes, then its close."""
    connection, server = await _pair(read_size=65536)
    await server.send_all(b"first")
    assert await connection.receive() == b"first"
    async with trio.open_nursery() as nursery:

        async def later() -> None:
            await trio.sleep(0.02)
            await server.send_all(b"second")
            await server.aclose()

        nursery.start_soon(later)
        assert await connection.receive() == b"second"
        assert await connection.receive() == b""
    await connection.aclose()


async def test_a_closed_connection_never_reads_its_old_descriptor() -> None:
    """Once closed, a read fails (ClosedResourceError), never reading a number the OS may have reused."""
    connection, server = await _pair()
    await connection.aclose()
    replacement, peer = socket.socketpair()  # likely takes the freed descriptor number
    with replacement, peer:
        peer.send(b"someone else's bytes")
        try:
            await connection.receive()
        except trio.ClosedResourceError:
            pass
        else:
            raise AssertionError("a closed connection read something")
    await server.aclose()


@pytest.mark.parametrize(
    ("listen", "host"),
    [
        pytest.param("127.0.0.1", "127.0.0.1", id="ipv4-address"),
        pytest.param(
            "::1",
            "::1",
            id="ipv6-address",
            marks=pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback"),
        ),
        pytest.param("127.0.0.1", "localhost", id="name"),
    ],
)
async def test_connections_open_to_addresses_and_names(listen: str, host: str) -> None:
    """An IP address (connected to directly) and a name (resolved) both give a no-delay TCP stream."""
    (listener,) = await trio.open_tcp_listeners(0, host=listen)
    port = listener.socket.getsockname()[1]
    with trio.fail_after(10):
        async with listener:
            connection = await open_connection(("http", host, port), None)
            server = await listener.accept()
            await server.send_all(b"hello")
            assert await connection.receive() == b"hello"
            assert isinstance(connection.stream, trio.SocketStream)
            assert connection.stream.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            await connection.aclose()
            await server.aclose()


async def test_closing_the_pool_closes_its_idle_connections() -> None:
    """Closing the pool closes every idle plain connection at once: each peer reads the end of its
    stream, and the connection never reads again."""
    pool = Pool(max_per_host=4, ssl_context=None, keepalive_expiry=60.0)
    pairs = [await _pair() for _ in range(3)]
    for connection, _ in pairs:
        await pool.checkin(connection)
    await pool.aclose()
    for connection, server in pairs:
        with trio.fail_after(5):
            assert await server.receive_some(10) == b""
        with pytest.raises(trio.ClosedResourceError):
            await connection.receive()
        await server.aclose()


async def test_a_free_slot_is_taken_at_once_and_a_full_host_says_so() -> None:
    """``try_acquire`` takes a free slot of the origin with no wait, and refuses once the origin is
    full, until a slot is released."""
    pool = Pool(max_per_host=2, ssl_context=None, keepalive_expiry=60.0)
    origin = ("http", "127.0.0.1", 80)
    assert pool.try_acquire(origin)
    assert pool.try_acquire(origin)
    assert not pool.try_acquire(origin)
    pool.release(origin)
    assert pool.try_acquire(origin)
