"""Kernel receive stamps: read from recvmsg's ancillary data, and what the transport does with them."""

from __future__ import annotations

import socket
import struct
import sys
import time

import httpx
import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from runner.http import HttpTransport, body_of, stamp
from tests.fakes.scripted_http import chunk
from tests.fakes.timed_http import timed_server

pytestmark = pytest.mark.usefixtures("kernel_stamping")
LINUX_ONLY = pytest.mark.skipif(sys.platform != "linux", reason="kernel receive stamps are Linux's")
HEAD = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
NOW_NS = 1_800_000_000_000_000_000  # a realtime clock in 2027


def _ancillary(stamp_ns: int) -> list[tuple[int, int, bytes]]:
    seconds, nanoseconds = divmod(stamp_ns, 1_000_000_000)
    return [(socket.SOL_SOCKET, stamp.SO_TIMESTAMPNS, struct.pack("@ll", seconds, nanoseconds))]


@given(age_ns=st.integers(min_value=0, max_value=10**12), now=st.floats(min_value=0, max_value=1e6))
def test_a_stamp_is_placed_its_age_before_now(age_ns: int, now: float) -> None:
    """A stamp ``age`` old on the realtime clock is dated ``age`` before the loop's now."""
    at_ns = stamp.stamp_ns(_ancillary(NOW_NS - age_ns))
    assert at_ns == NOW_NS - age_ns
    at = stamp.place(at_ns, now, NOW_NS)
    assert at == pytest.approx(now - age_ns / 1e9, abs=1e-6)
    assert at <= now


@given(ahead_ns=st.integers(min_value=1, max_value=10**12))
def test_a_stamp_from_the_future_is_dated_now(ahead_ns: int) -> None:
    """A realtime clock stepped back between the stamp and the read cannot date a read after it."""
    at_ns = stamp.stamp_ns(_ancillary(NOW_NS + ahead_ns))
    assert at_ns == NOW_NS + ahead_ns
    assert stamp.place(at_ns, 5.0, NOW_NS) == 5.0


@pytest.mark.parametrize(
    "ancdata",
    [
        pytest.param([], id="none"),
        pytest.param([(socket.SOL_SOCKET, 29, b"\0" * 16)], id="another-kind"),
        pytest.param([(socket.IPPROTO_IP, stamp.SO_TIMESTAMPNS, b"\0" * 16)], id="another-level"),
        pytest.param([(socket.SOL_SOCKET, stamp.SO_TIMESTAMPNS, b"\0" * 4)], id="truncated"),
    ],
)
def test_a_read_without_a_stamp_is_not_dated(ancdata: list[tuple[int, int, bytes]]) -> None:
    """Ancillary data that is not a whole SO_TIMESTAMPNS timespec dates nothing."""
    assert stamp.stamp_ns(ancdata) is None


async def test_a_mock_clock_is_not_the_machines(autojump_clock: trio.abc.Clock) -> None:
    """Under a mock clock the transport must not place kernel stamps on the loop's clock."""
    assert not stamp.loop_clock_is_real()


async def test_trios_own_clock_is_the_machines() -> None:
    """Under trio's default clock, stamps can be placed."""
    assert stamp.loop_clock_is_real()


@LINUX_ONLY
async def test_the_head_is_dated_between_the_send_and_the_read() -> None:
    """A plain TCP response's head and the body bytes read with it carry the kernel's arrival."""
    before = trio.current_time()
    async with httpx.AsyncClient(transport=HttpTransport()) as client:
        with timed_server([HEAD + chunk(b"data: x\n\n") + b"0\r\n\r\n"]) as server:
            async with client.stream("GET", server.base_url) as response:
                read = trio.current_time()
                body = body_of(response)
                assert body is not None
                head = body.arrival
                assert head is not None
                assert before <= head <= read
                body.dating = True
                assert [block async for block in body] == [b"data: x\n\n"]
                assert body.arrival == head  # the block came with the head
    assert len(server.sent) == 1


@LINUX_ONLY
async def test_a_read_of_coalesced_segments_is_dated_by_the_newest() -> None:
    """Segments that waited unread together carry the newest one's stamp: an upper bound, never later.

    TCP merges a segment into the unread one before it (runner.http.stamp), so the body's two writes,
    100 ms apart and read in one go after both arrived, are dated at the second.
    """
    script: list[bytes | float] = [HEAD, 0.05, chunk(b"a"), 0.1, chunk(b"b"), 0.3, b"0\r\n\r\n"]
    offset = trio.current_time() - time.monotonic()  # the loop's clock against the server's
    async with httpx.AsyncClient(transport=HttpTransport()) as client:
        with timed_server(script) as server:
            async with client.stream("GET", server.base_url) as response:
                body = body_of(response)
                assert body is not None
                body.dating = True
                await trio.sleep(0.25)  # both body writes arrive, unread
                block = await body.__anext__()
                read = trio.current_time()
                assert block == b"ab"
                assert body.arrival is not None
                assert body.arrival == pytest.approx(server.sent[2] + offset, abs=0.005)
                assert body.arrival <= read
                await response.aread()


@LINUX_ONLY
async def test_reads_are_dated_only_while_asked() -> None:
    """With dating off (the default, and after the first token) a read leaves ``arrival`` as it was."""
    script: list[bytes | float] = [HEAD, 0.05, chunk(b"a"), 0.05, b"0\r\n\r\n"]
    async with httpx.AsyncClient(transport=HttpTransport()) as client:
        with timed_server(script) as server:
            async with client.stream("GET", server.base_url) as response:
                body = body_of(response)
                assert body is not None
                head = body.arrival
                assert [block async for block in body] == [b"a"]
                assert body.arrival == head
    assert len(server.sent) == 3
