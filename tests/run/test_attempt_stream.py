"""Attempt-level stream rules of issue 10: the terminal signal after an error finish, pages that are
not event streams, bounded bodies and token-idle stalls, over a real loopback socket."""

from __future__ import annotations

import functools
import gzip

import httpx
import pytest
import trio

from runner.http.decode import BLOCK_BYTES
from runner.http.pool import RECEIVE_BYTES
from runner.run.deadlines import ERROR_GRACE_SECONDS
from runner.spec import Timeouts, TransportName
from tests.fakes.scripted_http import Step, chunk, sse_response
from tests.run.loopback import attempt_on_script

pytestmark = pytest.mark.usefixtures("transport")  # on both transports (tests/run/conftest.py)

# Failing a read abandons httpx's and httpcore's body generators mid-iteration; trio closes them in a
# system task and warns (ResourceWarning, ignored outside tests), as for a bad Content-Encoding.
ABANDONS_BODY = pytest.mark.filterwarnings("ignore:Async generator 'http:ResourceWarning")

_MIROMIND_ERROR = (
    b'data: {"id":"wf","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{},'
    b'"finish_reason":"error"}],"error":{"message":"workflow failed","type":"workflow_error",'
    b'"code":"search_unavailable"}}\n\n'
)
_TEXT = (
    b'data: {"id":"wf","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"a"}}]}\n\n'
)


attempt = attempt_on_script


async def test_error_finish_then_done_is_complete_with_the_error(client: httpx.AsyncClient) -> None:
    """MiroMind's error finish followed by [DONE]: complete (terminal signal seen), error set."""
    record = await attempt(client, sse_response(_TEXT, _MIROMIND_ERROR, b"data: [DONE]\n\n"))
    assert record.completion is not None
    assert record.completion.complete
    assert record.error is not None
    assert record.error.kind == "stream_error"
    assert "workflow failed" in record.error.message


async def test_a_stall_after_an_error_is_no_timeout(
    client: httpx.AsyncClient, autojump_clock: trio.abc.Clock
) -> None:
    """After an error finish, a stream that stalls is cut after a short grace and keeps its error."""
    head, *_ = sse_response()
    record = await attempt(client, [head, chunk(_TEXT), chunk(_MIROMIND_ERROR), 500.0])
    assert record.error is not None
    assert record.error.kind == "stream_error"
    assert record.completion is not None
    assert not record.completion.complete
    assert record.timing.end_s == pytest.approx(ERROR_GRACE_SECONDS, abs=0.05)


def _html_page(content_type: str) -> list[Step]:
    body = b"<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>"
    head = f"HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {len(body)}\r\n\r\n"
    return [head.encode() + body]


@pytest.mark.parametrize(
    "content_type",
    [
        pytest.param("text/html; charset=utf-8", id="text-html"),
        pytest.param("text/event-stream", id="sse-type"),
    ],
)
@ABANDONS_BODY
async def test_an_html_page_with_200_is_not_an_event_stream(
    client: httpx.AsyncClient, content_type: str
) -> None:
    """A proxy's HTML page served with 200 is not_an_event_stream (retryable), not early_close."""
    record = await attempt(client, _html_page(content_type))
    assert record.error is not None
    assert (record.error.kind, record.error.retryable) == ("not_an_event_stream", True)
    assert "HTML page" in record.error.message
    assert record.http_status == 200


@ABANDONS_BODY
async def test_a_body_past_max_response_bytes_fails_clearly(
    client: httpx.AsyncClient, transport: TransportName
) -> None:
    """A stream that goes past max_response_bytes stops there (one read past it at most): not retried."""
    piece = b'data: {"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"' + (
        b"y" * 4000 + b'"}}]}\n\n'
    )
    record = await attempt(client, sse_response(*[piece] * 100), max_response_bytes=100_000)
    assert record.error is not None
    assert (record.error.kind, record.error.retryable) == ("response_too_large", False)
    assert "max_response_bytes (100000 bytes" in record.error.message
    # A read is one HTTP chunk through httpcore, one socket read (up to RECEIVE_BYTES) through runner's.
    one_read = RECEIVE_BYTES if transport == "runner" else len(piece)
    assert 100_000 < record.bytes_received <= 100_000 + one_read
    assert record.completion is not None
    assert record.completion.choices[0].text  # the partial output is kept


@ABANDONS_BODY
async def test_one_huge_line_past_the_bound_fails_clearly(client: httpx.AsyncClient) -> None:
    """One SSE line that never ends is cut at the bound, not buffered without end."""
    line = [b"data: " + b"z" * 10_000] + [b"z" * 10_000] * 30
    record = await attempt(client, sse_response(*line), max_response_bytes=100_000)
    assert record.error is not None
    assert record.error.kind == "response_too_large"
    assert record.bytes_received <= 110_006


@functools.cache
def _gzip_bomb() -> bytes:
    # 64 MiB of zeros in about 64 KB: what a hostile or broken server can send
    return gzip.compress(b"\0" * (64 << 20), compresslevel=9)


@ABANDONS_BODY
async def test_a_gzip_bomb_stops_at_the_bound(client: httpx.AsyncClient, transport: TransportName) -> None:
    """Decompressed bytes are counted per read: a gzip bomb stops at max_response_bytes, fast."""
    bomb = _gzip_bomb()
    pieces = [bomb[i : i + 8192] for i in range(0, len(bomb), 8192)]
    script = sse_response(*pieces, headers={"content-encoding": "gzip"})
    started = trio.current_time()
    with trio.fail_after(10):
        record = await attempt(client, script, max_response_bytes=1 << 20)
    assert record.error is not None
    assert record.error.kind == "response_too_large"
    # one read of 8 KB inflates to about 8 MB at most (deflate's ratio is about 1:1032)
    assert record.bytes_received < (1 << 20) + 9 * (1 << 20)
    if transport == "runner":  # runner's transport inflates in steps of at most BLOCK_BYTES
        assert record.bytes_received <= (1 << 20) + BLOCK_BYTES
    assert trio.current_time() - started < 5


def _delta(fields: str) -> bytes:
    return (
        b'data: {"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{'
        + fields.encode()
        + b"}}]}\n\n"
    )


def _heartbeats(count: int, every: float, beat: bytes) -> list[Step]:
    steps: list[Step] = []
    for _ in range(count):
        steps += [every, chunk(beat)]
    return steps


@pytest.mark.parametrize(
    "beat",
    [
        pytest.param(b": heartbeat\n\n", id="sse-comment"),
        pytest.param(b"data:\n\n", id="empty-data-keepalive"),
    ],
)
async def test_token_idle_ends_a_stream_of_heartbeats(
    client: httpx.AsyncClient, autojump_clock: trio.abc.Clock, beat: bytes
) -> None:
    """A few tokens, then only heartbeats: token_idle ends the attempt, a retryable timeout."""
    head, *_ = sse_response()
    timeouts = Timeouts(connect=5, first_byte=10, first_token=20, idle=5, total=600, token_idle=10)
    script = [head, 1.0, chunk(_delta('"content":"a"')), 1.0, chunk(_delta('"content":"b"'))]
    record = await attempt(client, [*script, *_heartbeats(100, 2.0, beat)], timeouts=timeouts)
    assert record.error is not None
    assert (record.error.kind, record.error.retryable) == ("timeout", True)
    assert "token_idle" in record.error.message
    assert record.timing.end_s == pytest.approx(2.0 + 10.0, abs=0.05)
    assert record.completion is not None
    assert record.completion.choices[0].text == "ab"


async def test_without_token_idle_heartbeats_keep_the_stream_alive(
    client: httpx.AsyncClient, autojump_clock: trio.abc.Clock
) -> None:
    """token_idle is off by default: the same stream runs on until total."""
    head, *_ = sse_response()
    timeouts = Timeouts(connect=5, first_byte=10, first_token=20, idle=5, total=60)
    script = [head, 1.0, chunk(_delta('"content":"a"'))]
    record = await attempt(client, [*script, *_heartbeats(100, 2.0, b": heartbeat\n\n")], timeouts=timeouts)
    assert record.error is not None
    assert record.error.kind == "timeout"
    assert record.timing.end_s == pytest.approx(60.0, abs=0.05)


async def test_reasoning_and_tool_call_fragments_count_as_tokens(
    client: httpx.AsyncClient, autojump_clock: trio.abc.Clock
) -> None:
    """Reasoning deltas and tool-call argument fragments keep token_idle from firing."""
    head, *_ = sse_response()
    timeouts = Timeouts(connect=5, first_byte=10, first_token=20, idle=5, total=600, token_idle=4)
    steps: list[Step] = [head, 1.0, chunk(_delta('"reasoning_content":"hm"'))]
    steps += [3.0, chunk(b": beat\n\n"), 0.5, chunk(_delta('"reasoning_content":"m"'))]
    tool = '"tool_calls":[{"index":0,"id":"c1","function":{"name":"f","arguments":"%s"}}]'
    for piece in ("{", '\\"a\\"', ":", "1", "}"):
        steps += [2.0, chunk(b": beat\n\n"), 1.5, chunk(_delta(tool % piece))]
    finish = b'data: {"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},'
    steps += [chunk(finish + b'"finish_reason":"tool_calls"}]}\n\n'), chunk(b"data: [DONE]\n\n")]
    record = await attempt(client, [*steps, b"0\r\n\r\n"], timeouts=timeouts)
    assert record.error is None
    assert record.completion is not None
    assert record.completion.choices[0].tool_calls[0].arguments == '{"a":1}'
