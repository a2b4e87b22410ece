"""runner's transport over real loopback sockets: reuse, cancellation, the per-host limit, timeouts, TLS."""

from __future__ import annotations

import gzip
import socket
import ssl
import struct
from collections.abc import AsyncIterator
from functools import partial

import httpx
import pytest
import trio
import trustme

from runner.http import HttpTransport, body_of
from runner.http.decode import BLOCK_BYTES
from tests.http.corpus import SCENARIOS, SSE, CorpusServer, Step

CHUNKED = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
BOMB = gzip.compress(b"\0" * (64 << 20), compresslevel=9)
SLOW: dict[str, list[Step]] = {
    **SCENARIOS,
    # A first chunk, then a long silence: the client has a half-read body in hand.
    "slow": [CHUNKED, b"%x\r\n%s\r\n" % (len(SSE), SSE), 30.0, b"0\r\n\r\n"],
    "stall-after-head": [CHUNKED, 30.0],
    "hold": [0.3, b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"],
    # 64 MiB of zeros gzipped (about 64 KB), head and all in one write: the whole bomb in a read or two.
    "bomb": [
        b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: %d\r\n\r\n%s" % (len(BOMB), BOMB)
    ],
    # 100 HTTP chunks in one write: one socket read on the client.
    "many-chunks": [CHUNKED + b"".join(b"%x\r\n%s\r\n" % (len(SSE), SSE) for _ in range(100)) + b"0\r\n\r\n"],
}


@pytest.fixture
async def server() -> AsyncIterator[CorpusServer]:
    async with trio.open_nursery() as nursery:
        yield await nursery.start(CorpusServer(scenarios=SLOW).serve)
        nursery.cancel_scope.cancel()


# Leaving a body mid-way leaves httpx's iterators to trio's finalizer, which warns.
ABANDONED = pytest.mark.filterwarnings("ignore:Async generator 'http:ResourceWarning")


@ABANDONED
async def test_a_cancelled_stream_closes_its_connection(server: CorpusServer) -> None:
    """Cancelled mid-body: the connection is closed, never handed to the next request half-read."""
    async with httpx.AsyncClient(transport=HttpTransport()) as client:
        with trio.move_on_after(0.3) as scope:
            async with client.stream("GET", server.url("slow")) as response:
                async for _ in response.aiter_raw():
                    pass
        assert scope.cancelled_caught
        response = await client.get(server.url("content-length"))
        assert response.content == SSE
    assert server.connections == 2  # one reused half-read would have been 1, and its bytes garbage


@ABANDONED
async def test_a_stream_closed_early_is_not_reused(server: CorpusServer) -> None:
    async with httpx.AsyncClient(transport=HttpTransport()) as client:
        async with client.stream("GET", server.url("slow")) as response:
            async for _ in response.aiter_raw():
                break
        assert (await client.get(server.url("content-length"))).status_code == 200
    assert server.connections == 2


@pytest.mark.parametrize(
    ("make", "blocks"),
    [(HttpTransport, range(1, 3)), (httpx.AsyncHTTPTransport, range(100, 101))],
    ids=["runner", "httpx"],
)
async def test_the_body_comes_in_one_block_per_read(server: CorpusServer, make: type, blocks: range) -> None:
    """100 chunks in one read reach the reader as one block (httpcore hands over one per HTTP chunk)."""
    async with (
        httpx.AsyncClient(transport=make()) as client,
        client.stream("GET", server.url("many-chunks")) as response,
    ):
        got = [block async for block in response.aiter_raw()]
    assert b"".join(got) == SSE * 100
    assert len(got) in blocks


async def test_body_of_hands_out_runners_body_and_nothing_for_stock_httpx(server: CorpusServer) -> None:
    """Iterated directly, runner's body gives the bytes and returns the connection; stock httpx has none."""
    async with httpx.AsyncClient(transport=HttpTransport()) as client:
        for _ in range(2):
            async with client.stream("GET", server.url("many-chunks")) as response:
                body = body_of(response)
                assert body is not None
                assert b"".join([block async for block in body]) == SSE * 100
    assert server.connections == 1  # read to its end: the connection went back to the pool
    async with (
        httpx.AsyncClient(transport=httpx.AsyncHTTPTransport()) as client,
        client.stream("GET", server.url("many-chunks")) as response,
    ):
        assert body_of(response) is None
        await response.aread()


async def test_a_gzip_bomb_read_at_once_still_inflates_in_bounded_blocks(server: CorpusServer) -> None:
    """The whole compressed body arrives before the first block is out: still no block over BLOCK_BYTES."""
    async with (
        httpx.AsyncClient(transport=HttpTransport()) as client,
        client.stream("GET", server.url("bomb")) as response,
    ):
        sizes = [len(block) async for block in response.aiter_raw()]
    assert sum(sizes) == 64 << 20
    assert max(sizes) <= BLOCK_BYTES


async def test_complete_bodies_reuse_the_connection(server: CorpusServer) -> None:
    async with httpx.AsyncClient(transport=HttpTransport()) as client:
        for _ in range(5):
            assert (await client.get(server.url("odd-chunks"))).status_code == 200
    assert server.connections == 1


async def test_the_per_host_limit_holds_and_the_pool_timeout_fires(server: CorpusServer) -> None:
    """Two connections per host: a third request waits; with a pool timeout it fails with PoolTimeout."""
    results: list[object] = []
    timeout = httpx.Timeout(5, pool=0.1)
    async with httpx.AsyncClient(
        transport=HttpTransport(max_connections_per_host=2), timeout=timeout
    ) as client:

        async def one() -> None:
            try:
                results.append((await client.get(server.url("hold"))).status_code)
            except httpx.PoolTimeout as exc:
                results.append(type(exc))

        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(one)
    assert sorted(map(str, results)) == sorted(["200", "200", str(httpx.PoolTimeout)])
    assert server.most_in_flight == 2


async def test_waiting_requests_all_get_through_the_limit(server: CorpusServer) -> None:
    transport = HttpTransport(max_connections_per_host=3)
    async with httpx.AsyncClient(transport=transport) as client, trio.open_nursery() as nursery:
        for _ in range(10):
            nursery.start_soon(client.get, server.url("hold"))
    assert server.most_in_flight == 3
    assert server.connections == 3


@pytest.mark.parametrize("make", [HttpTransport, httpx.AsyncHTTPTransport], ids=["runner", "httpx"])
async def test_a_request_that_asks_to_close_does_not_leave_its_connection_pooled(
    server: CorpusServer, make: type
) -> None:
    """``Connection: close`` on the request ends the connection after its response (RFC 9112 9.6)."""
    async with httpx.AsyncClient(transport=make()) as client:
        for _ in range(2):
            response = await client.get(server.url("content-length"), headers={"connection": "close"})
            assert response.content == SSE
    assert server.connections == 2


async def test_a_request_in_flight_when_the_client_closes_ends_and_closes_its_connection(
    server: CorpusServer,
) -> None:
    """Closed while a request waits for its head: the response still comes, and its connection is closed."""
    got: list[bytes] = []
    client = httpx.AsyncClient(transport=HttpTransport())
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:

            async def get() -> None:
                got.append((await client.get(server.url("hold"))).content)

            nursery.start_soon(get)
            await trio.sleep(0.1)  # the request is out; its head comes after 0.3 s
            await client.aclose()
        await trio.sleep(0.2)  # loopback: the server reads the client's FIN well within this
    assert got == [b"ok"]
    assert server.closed_by_client == 1  # closed, not left in the closed pool


@pytest.mark.parametrize("make", [HttpTransport, httpx.AsyncHTTPTransport], ids=["runner", "httpx"])
async def test_a_stalled_body_is_a_read_timeout(server: CorpusServer, make: type) -> None:
    async with httpx.AsyncClient(transport=make(), timeout=httpx.Timeout(5, read=0.2)) as client:
        with pytest.raises(httpx.ReadTimeout):
            async with client.stream("GET", server.url("stall-after-head")) as response:
                await response.aread()


@pytest.mark.parametrize("make", [HttpTransport, httpx.AsyncHTTPTransport], ids=["runner", "httpx"])
async def test_a_late_head_is_a_read_timeout(server: CorpusServer, make: type) -> None:
    async with httpx.AsyncClient(transport=make(), timeout=httpx.Timeout(5, read=0.1)) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get(server.url("hold"))


@pytest.mark.parametrize("make", [HttpTransport, httpx.AsyncHTTPTransport], ids=["runner", "httpx"])
async def test_a_refused_connection_is_a_connect_error(make: type) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: the connection is refused
        async with httpx.AsyncClient(transport=make()) as client:
            with pytest.raises(httpx.ConnectError):
                await client.get(f"http://127.0.0.1:{port}/")


async def test_a_header_with_a_newline_is_refused_without_quoting_it(server: CorpusServer) -> None:
    async with httpx.AsyncClient(transport=HttpTransport()) as client:
        with pytest.raises(httpx.LocalProtocolError) as caught:
            await client.get(
                server.url("content-length"), headers={"authorization": "Bearer sk-secret\nx: y"}
            )
    assert "sk-secret" not in str(caught.value)
    assert server.requests == []


async def test_a_streamed_request_body_is_sent_chunked(server: CorpusServer) -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"part one, "
        yield b"part two"

    async with httpx.AsyncClient(transport=HttpTransport()) as client:
        response = await client.post(server.url("content-length"), content=body())
    assert response.content == SSE
    assert b"transfer-encoding: chunked" in server.requests[0].lower()


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def tls_server(authority: trustme.CA) -> AsyncIterator[CorpusServer]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    async with trio.open_nursery() as nursery:
        yield await nursery.start(CorpusServer(ssl_context=context).serve)
        nursery.cancel_scope.cancel()


def _trusting(authority: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()  # the system's verification: SNI, hostname check
    authority.configure_trust(context)
    return context


async def test_a_client_closed_in_a_cancelled_scope_still_closes_every_tls_connection(
    tls_server: CorpusServer, authority: trustme.CA
) -> None:
    """Closing under a cancellation (Ctrl-C) closes all idle TLS connections, not just the first."""
    client = httpx.AsyncClient(transport=HttpTransport(ssl_context=_trusting(authority)))

    async def get() -> None:
        async with client.stream("GET", tls_server.url("content-length", host="localhost")) as response:
            await trio.sleep(0.1)  # the three overlap: a connection each
            await response.aread()

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(get)
    assert tls_server.connections == 3  # three idle connections in the pool
    with trio.CancelScope() as scope:
        scope.cancel()
        await client.aclose()
    await trio.sleep(0.2)  # loopback: the server reads each close well within this
    assert tls_server.closed_by_client == 3


async def test_tls_with_a_trusted_ca_streams_and_reuses(
    tls_server: CorpusServer, authority: trustme.CA
) -> None:
    async with httpx.AsyncClient(transport=HttpTransport(ssl_context=_trusting(authority))) as client:
        for name in ("odd-chunks", "gzip-chunked", "content-length"):
            response = await client.get(tls_server.url(name, host="localhost"))
            assert response.status_code == 200
            assert response.content
    assert tls_server.connections == 1


async def test_tls_reads_are_not_dated(tls_server: CorpusServer, authority: trustme.CA) -> None:
    """Over TLS the kernel's stamps do not reach the reader: no arrival, the reader keeps its own clock."""
    async with (
        httpx.AsyncClient(transport=HttpTransport(ssl_context=_trusting(authority))) as client,
        client.stream("GET", tls_server.url("odd-chunks", host="localhost")) as response,
    ):
        body = body_of(response)
        assert body is not None
        body.dating = True
        assert b"".join([block async for block in body])
        assert body.arrival is None


async def test_tls_refuses_an_unknown_ca(tls_server: CorpusServer) -> None:
    async with httpx.AsyncClient(transport=HttpTransport()) as client:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.get(tls_server.url("content-length", host="localhost"))


async def test_tls_checks_the_hostname(authority: trustme.CA) -> None:
    """A certificate for another name fails even from a trusted CA: the hostname check is on."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("other.example").configure_cert(context)
    async with trio.open_nursery() as nursery:
        server = await nursery.start(CorpusServer(ssl_context=context).serve)
        async with httpx.AsyncClient(transport=HttpTransport(ssl_context=_trusting(authority))) as client:
            with pytest.raises(httpx.ConnectError, match=r"match|mismatch"):
                await client.get(server.url("content-length", host="localhost"))
        nursery.cancel_scope.cancel()


@ABANDONED  # httpcore stops iterating the request body at the failed write
@pytest.mark.parametrize("make", [HttpTransport, httpx.AsyncHTTPTransport], ids=["runner", "httpx"])
async def test_an_answer_before_the_whole_request_is_read_is_the_outcome(make: type) -> None:
    """A server refusing a large body with 413, closing it unread: the 413 is the answer, not a WriteError."""

    async def refuse(stream: trio.SocketStream) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            head += await stream.receive_some(65536)
        await stream.send_all(
            b"HTTP/1.1 413 Too Large\r\ncontent-length: 8\r\nconnection: close\r\n\r\ntoo big!"
        )
        await trio.sleep(0.05)
        await stream.aclose()  # the unread body makes the close a reset: the client's write fails

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(partial(trio.serve_tcp, refuse, 0, host="127.0.0.1"))
            port = listeners[0].socket.getsockname()[1]
            async with httpx.AsyncClient(transport=make()) as client:
                response = await client.post(f"http://127.0.0.1:{port}/", content=b"x" * (8 << 20))
            nursery.cancel_scope.cancel()
    assert (response.status_code, response.content) == (413, b"too big!")


async def test_a_write_cut_without_an_answer_is_still_a_write_error() -> None:
    """Reset mid-body, no answer: a WriteError caused by the failed write (httpcore raises a read error)."""

    async def reset(stream: trio.SocketStream) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            head += await stream.receive_some(65536)
        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await stream.aclose()

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(partial(trio.serve_tcp, reset, 0, host="127.0.0.1"))
            port = listeners[0].socket.getsockname()[1]
            async with httpx.AsyncClient(transport=HttpTransport()) as client:
                with pytest.raises(httpx.WriteError) as caught:
                    await client.post(f"http://127.0.0.1:{port}/", content=b"x" * (8 << 20))
            nursery.cancel_scope.cancel()
    assert isinstance(caught.value.__cause__, trio.BrokenResourceError)  # the write's, kept
