"""The TTFT an attempt stores stays honest while its trio loop is too busy to read on time (issue 12).

A server on a thread of its own (tests.fakes.timed_http) sends the head, then the first token at an
instant it logs, while a task blocks the client's loop for 250 ms: runner's transport dates the token by
the kernel's receive stamp, stock httpx (and a transport without stamps) by when the loop got to it.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

import httpx
import pytest
import trio

from runner.http import HttpTransport
from runner.run.attempt import run_attempt
from runner.run.stream import within
from runner.spec import CaseSpec, ProviderSpec, Timeouts
from tests.fakes.dialect import FakeDialect
from tests.fakes.scripted_http import chunk
from tests.fakes.timed_http import TimedServer, timed_server

if TYPE_CHECKING:
    from collections.abc import Callable

    from runner.model import AttemptRecord

TIMEOUTS = Timeouts(connect=5, first_byte=10, first_token=20, idle=5, total=60)
CASE = CaseSpec(id="c", messages=({"role": "user", "content": "hi"},))
HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n"
    b"connection: close\r\n\r\n"
)
TOKEN_AFTER_S = 0.08  # from the head to the first token, as the server sends them
BLOCK_S = 0.25  # how long the client's loop is held, from just after it read the head
# The head, the first token while the loop is held, and the rest well after the loop is free again:
# nothing arrives behind the token before it is read (the kernel's stamp is the newest segment's).
SCRIPT: list[bytes | float] = [
    HEAD,
    TOKEN_AFTER_S,
    chunk(b"data: T:Hello\n\n"),
    0.5,
    chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n",
]
pytestmark = pytest.mark.usefixtures("kernel_stamping")
# How close a stored instant must be to the server's log of its send. The server's thread shares the
# GIL with the held loop, so it may note its instant up to one switch interval (5 ms) from its send.
WITHIN_S = 0.01
LINUX_ONLY = pytest.mark.skipif(sys.platform != "linux", reason="kernel receive stamps are Linux's")


async def _attempt_with_a_held_loop(client: httpx.AsyncClient, server: TimedServer) -> AttemptRecord:
    """One attempt against ``server`` while another task blocks the loop once the head is in."""
    dialect = FakeDialect()
    provider = ProviderSpec(name="p", dialect=dialect.name, base_url=server.base_url, model="m")
    request = dialect.build_request(provider, CASE, api_key="k")

    async def hold_the_loop() -> None:
        await trio.to_thread.run_sync(server.first_sent.wait)
        await trio.sleep(0.02)  # the attempt reads the head meanwhile
        # Deliberately blocking, and holding the GIL as a saturated loop does (1,000 streams on 2
        # cores): a spin, not a sleep, which would free the GIL for the pool's watch thread.
        end = time.perf_counter() + BLOCK_S
        while time.perf_counter() < end:
            pass

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(hold_the_loop)
            record = await run_attempt(
                client, dialect, request, unit_key="p/c/0", number=1, timeouts=TIMEOUTS
            )
    assert record.error is None
    return record


def _head_to_token(record: AttemptRecord) -> float:
    t = record.timing
    assert t.headers_s is not None
    assert t.first_answer_s is not None
    assert t.first_byte_s is not None
    assert t.headers_s <= t.first_byte_s <= t.first_answer_s  # one clock, in order
    return t.first_answer_s - t.headers_s


@LINUX_ONLY
async def test_the_first_token_is_dated_when_it_arrived_not_when_a_held_loop_read_it() -> None:
    """On runner's transport the stored head -> first token matches the server's (held loop: 250 ms)."""
    async with httpx.AsyncClient(transport=HttpTransport()) as client:
        with timed_server(SCRIPT) as server:
            record = await _attempt_with_a_held_loop(client, server)
    sent = server.sent[1] - server.sent[0]
    assert _head_to_token(record) == pytest.approx(sent, abs=WITHIN_S)


@LINUX_ONLY
async def test_a_token_read_with_the_next_one_is_still_dated_by_its_own_arrival() -> None:
    """The next token lands 20 ms later, before the held loop reads: the watch's peek keeps it exact.

    TCP merges the two segments and the read's own stamp is the second's (runner.http.stamp); the
    pool's watch peeked at the first before they merged.
    """
    script: list[bytes | float] = [
        HEAD,
        TOKEN_AFTER_S,
        chunk(b"data: T:Hel\n\n"),
        0.02,
        chunk(b"data: T:lo\n\n"),
        0.5,
        chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n",
    ]
    async with httpx.AsyncClient(transport=HttpTransport()) as client:
        with timed_server(script) as server:
            record = await _attempt_with_a_held_loop(client, server)
    assert _head_to_token(record) == pytest.approx(server.sent[1] - server.sent[0], abs=WITHIN_S)


@LINUX_ONLY
@pytest.mark.parametrize(
    ("before", "reasoning"),
    [
        pytest.param(b": ping\n\n", False, id="a-heartbeat"),
        pytest.param(b"data: R:think\n\n", True, id="a-reasoning-token"),
    ],
)
async def test_a_token_read_after_something_else_is_dated_by_the_reads_newest_bytes(
    before: bytes, reasoning: bool
) -> None:
    """A read that starts with a heartbeat or an earlier event dates the answer by its newest bytes.

    Its first bytes (which the watch peeked) are the earlier line's: they date the first reasoning
    token when that is what they carry, never the answer.
    """
    script: list[bytes | float] = [
        HEAD,
        0.04,
        chunk(before),
        0.04,
        chunk(b"data: T:Hello\n\n"),
        0.5,
        chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n",
    ]
    async with httpx.AsyncClient(transport=HttpTransport()) as client:
        with timed_server(script) as server:
            record = await _attempt_with_a_held_loop(client, server)
    assert _head_to_token(record) == pytest.approx(server.sent[2] - server.sent[0], abs=WITHIN_S)
    t = record.timing
    assert t.headers_s is not None
    if reasoning:
        assert t.first_reasoning_s is not None
        reasoning_sent = server.sent[1] - server.sent[0]
        assert t.first_reasoning_s - t.headers_s == pytest.approx(reasoning_sent, abs=WITHIN_S)


def _stock_httpx() -> httpx.AsyncClient:
    return httpx.AsyncClient()


def _no_kernel_stamps() -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=HttpTransport(kernel_timestamps=False))


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(_stock_httpx, id="stock-httpx"),
        # As on a system without SO_TIMESTAMPNS: runner's transport with its stamps off.
        pytest.param(_no_kernel_stamps, id="no-kernel-stamps"),
    ],
)
async def test_without_kernel_stamps_the_loop_dates_the_token_when_it_read_it(
    make: Callable[[], httpx.AsyncClient],
) -> None:
    """Without stamps the token is dated when the held loop got to it: late by about the hold."""
    async with make() as client:
        with timed_server(SCRIPT) as server:
            record = await _attempt_with_a_held_loop(client, server)
    sent = server.sent[1] - server.sent[0]
    assert _head_to_token(record) > sent + BLOCK_S / 2


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        pytest.param(None, 3.0, id="no-stamp-the-loop-read-time"),
        pytest.param(2.5, 2.5, id="between"),
        pytest.param(0.5, 1.0, id="before-the-earliest"),
        pytest.param(4.0, 3.0, id="after-the-read"),
    ],
)
def test_a_stamp_is_kept_between_the_earliest_and_the_read(at: float | None, expected: float) -> None:
    """A stamp a realtime clock step moved outside [earliest, read] is clamped, never stored as is."""
    assert within(at, 1.0, 3.0) == expected
