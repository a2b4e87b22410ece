"""The pacer sends every stream's planned writes from one task, on real loopback sockets."""

from __future__ import annotations

import socket
import struct
from typing import TYPE_CHECKING

import pytest
import trio
import trio.testing

from runner.simulator.pacer import Pacer
from runner.simulator.pacing import Write

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


@pytest.fixture
async def pacer(nursery: trio.Nursery) -> Pacer:
    pacer = Pacer()
    nursery.start_soon(pacer.run)
    return pacer


@pytest.fixture
async def listener() -> AsyncIterator[trio.SocketListener]:
    (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
    async with listener:
        yield listener


async def _pair(listener: trio.SocketListener) -> tuple[trio.SocketStream, trio.SocketStream]:
    client = await trio.testing.open_stream_to_socket_listener(listener)
    server = await listener.accept()
    return server, client


async def _read_all(stream: trio.abc.ReceiveStream, arrivals: list[float] | None = None) -> bytes:
    data = bytearray()
    while piece := await stream.receive_some(1 << 16):
        data += piece
        if arrivals is not None:
            arrivals.append(trio.current_time())
    return bytes(data)


async def test_streams_get_their_writes_in_order_after_their_delays(
    pacer: Pacer, listener: trio.SocketListener
) -> None:
    """Three streams played at once each receive their bytes whole, no earlier than their delays add up."""
    plans = [
        [Write(0.0, b"head-%d;" % n), *(Write(0.01 * (n + 1), b"e%d;" % k) for k in range(4))]
        for n in range(3)
    ]
    firsts: list[int] = []
    received: dict[int, bytes] = {}
    took: dict[int, float] = {}

    pairs = [await _pair(listener) for _ in range(3)]  # one at a time: each accept gets its own client

    async def one(n: int) -> None:
        server, client = pairs[n]
        start = trio.current_time()
        async with server, client, trio.open_nursery() as nursery:

            async def read() -> None:
                received[n] = await _read_all(client)
                took[n] = trio.current_time() - start

            nursery.start_soon(read)
            await pacer.play(server, plans[n], lambda: firsts.append(n))
            await server.aclose()

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            for n in range(3):
                nursery.start_soon(one, n)
    for n in range(3):
        assert received[n] == b"".join(w.data for w in plans[n])
        assert took[n] >= 4 * 0.01 * (n + 1)
    assert firsts == []  # no write was marked as holding the first token


async def test_the_first_token_hook_runs_once_before_its_write(
    pacer: Pacer, listener: trio.SocketListener
) -> None:
    """The hook runs when the marked write is due, whether that write is sent by the pacer or at once."""
    server, client = await _pair(listener)
    calls: list[float] = []
    writes = [Write(0.0, b"head;"), Write(0.02, b"token;", first_token=True), Write(0.01, b"end;")]
    with trio.fail_after(10):
        async with server, client:
            start = trio.current_time()
            await pacer.play(server, writes, lambda: calls.append(trio.current_time() - start))
            await server.aclose()
            assert await _read_all(client) == b"head;token;end;"
    assert len(calls) == 1
    assert calls[0] >= 0.02


async def test_a_cancelled_stream_is_never_written_again(pacer: Pacer, listener: trio.SocketListener) -> None:
    """Cancelled while the pacer holds it, a stream's later writes never reach its socket."""
    server, client = await _pair(listener)
    writes = [Write(0.0, b"a;"), Write(0.01, b"b;"), Write(0.2, b"never;")]
    with trio.fail_after(10):
        async with client:
            async with server:
                with trio.move_on_after(0.1):
                    await pacer.play(server, writes, lambda: None)
            await trio.sleep(0.3)  # past the cancelled write's due time
            assert await _read_all(client) == b"a;b;"


async def test_a_slow_reader_gets_every_byte(pacer: Pacer, listener: trio.SocketListener) -> None:
    """A write bigger than the kernel takes at once is finished by its task, and the stream goes on."""
    server, client = await _pair(listener)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    big = bytes(range(256)) * 4096  # 1 MiB: far more than the socket buffers hold
    writes = [Write(0.0, b"head;"), Write(0.01, big), Write(0.01, b";end")]
    with trio.fail_after(10):
        async with server, client, trio.open_nursery() as nursery:
            got: list[bytes] = []

            async def read() -> None:
                await trio.sleep(0.05)  # the pacer's write finds the buffers full
                got.append(await _read_all(client))

            nursery.start_soon(read)
            await pacer.play(server, writes, lambda: None)
            await server.aclose()
    assert got == [b"head;" + big + b";end"]


async def test_a_client_that_went_away_breaks_the_stream(pacer: Pacer, listener: trio.SocketListener) -> None:
    """A reset connection surfaces as trio.BrokenResourceError in the stream's task."""
    server, client = await _pair(listener)
    # SO_LINGER 0: close() sends RST, so the pacer's next write fails at once.
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    await client.aclose()
    writes = [Write(0.01, b"x" * 100), *(Write(0.001, b"y" * 100) for _ in range(5))]
    with trio.fail_after(10):
        async with server:
            with pytest.raises(trio.BrokenResourceError):
                await pacer.play(server, writes, lambda: None)
