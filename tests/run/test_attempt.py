"""Tests of one HTTP attempt over a real loopback socket: timing, timeouts, cut streams, errors."""

from __future__ import annotations

import socket

import httpx
import orjson
import pytest
import trio

from runner import errors
from runner.model import AttemptError, AttemptRecord
from runner.run.attempt import map_exceptions, run_attempt
from runner.run.deadlines import DEADLINE_SLACK, DEADLINE_SLACK_MAX, Deadlines
from runner.run.stream import Received
from runner.spec import CaseSpec, ProviderSpec, Timeouts
from runner.wire.dialects.base import Dialect
from runner.wire.dialects.registry import get_dialect
from tests.fakes.dialect import FakeDialect
from tests.fakes.scripted_http import (
    CLOSE,
    ScriptedServer,
    Step,
    bad_gzip_response,
    chunk,
    json_response,
    sse_response,
)
from tests.streams import FIXTURES

pytestmark = pytest.mark.usefixtures("transport")  # on both transports (tests/run/conftest.py)

TIMEOUTS = Timeouts(connect=5, first_byte=10, first_token=20, idle=5, total=60)
# httpx's aiter_bytes raises DecodingError without closing the aiter_raw/httpcore generators under
# it; trio closes them in a system task, and warns (ResourceWarning, ignored outside tests).
HTTPX_ABANDONED_GENERATORS = pytest.mark.filterwarnings("ignore:Async generator 'http:ResourceWarning")
CASE = CaseSpec(id="c", messages=({"role": "user", "content": "hi"},))


async def attempt(
    client: httpx.AsyncClient,
    scripts: list[list[Step]],
    *,
    timeouts: Timeouts = TIMEOUTS,
    capture: bool = False,
    dialect: Dialect | None = None,
) -> tuple[AttemptRecord, ScriptedServer]:
    """Serve ``scripts`` on loopback and run one attempt against them (the fake dialect by default)."""
    async with trio.open_nursery() as nursery:
        server = await nursery.start(ScriptedServer(scripts).serve)
        dialect = dialect or FakeDialect()
        provider = ProviderSpec(name="p", dialect=dialect.name, base_url=server.base_url, model="m")
        request = dialect.build_request(provider, CASE, api_key="sk-test")
        record = await run_attempt(
            client,
            dialect,
            request,
            unit_key="p/c/0",
            number=1,
            timeouts=timeouts,
            capture=capture,
        )
        nursery.cancel_scope.cancel()
    return record, server


async def test_timing_marks_each_phase(client: httpx.AsyncClient, autojump_clock: trio.abc.Clock) -> None:
    """Headers, first byte, first reasoning and first answer token are timed where they happened."""
    body = sse_response(
        0.5,
        b": ping\n\n",
        1.0,
        b"data: R:think\n\n",
        2.0,
        b"data: T:Hel",
        b"lo\n\n",
        0.25,
        b"data: [DONE]\n\n",
    )
    # 0.25 s until the headers, then the scripted pauses separate each body chunk.
    record, server = await attempt(client, [[0.25, *body]])
    t = record.timing
    assert record.error is None
    assert record.completion is not None
    assert record.completion.choices[0].text == "Hello"
    assert t.headers_s == pytest.approx(0.25, abs=0.01)
    assert t.first_byte_s == pytest.approx(0.75, abs=0.01)
    assert t.first_reasoning_s == pytest.approx(1.75, abs=0.01)
    assert t.first_answer_s == pytest.approx(3.75, abs=0.01)
    assert t.gap_max_s == pytest.approx(2.0, abs=0.01)
    assert record.heartbeats == 1
    assert record.chunks == 3
    assert b"authorization: Bearer sk-test" in server.requests[0]


async def test_typed_events_read_together_count_one_chunk_each(client: httpx.AsyncClient) -> None:
    """A Responses stream's typed events arrive several to a read (one TypedRun): each still counts as
    one of the attempt's chunks (it counted one per read)."""
    # Without its comment line: the whole body is then one run of typed events (one TypedRun).
    body = (FIXTURES / "openai_responses_text.sse").read_bytes().replace(b": keep-alive\n\n", b"")
    events = body.count(b"\n\nevent: ") + 1
    record, _ = await attempt(client, [sse_response(body)], dialect=get_dialect("openai-responses"))
    assert record.error is None
    assert record.completion is not None
    assert record.completion.complete
    assert events > 3
    assert record.chunks == events


async def test_gemini_retry_info_in_a_429_body_sets_the_wait(client: httpx.AsyncClient) -> None:
    """Gemini says how long to wait in the error body (RetryInfo.retryDelay), not in a header."""
    details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2.5s"}]
    body = orjson.dumps(
        {"error": {"code": 429, "message": "slow down", "status": "RESOURCE_EXHAUSTED", "details": details}}
    )
    record, _ = await attempt(client, [json_response(429, body)], dialect=get_dialect("gemini"))
    assert record.error is not None
    assert (record.error.kind, record.error.retry_after) == ("rate_limited", 2.5)


async def test_clean_close_without_terminal_is_early_close(client: httpx.AsyncClient) -> None:
    """A chunked body that ends without [DONE] is an early close, and the partial text is kept."""
    record, _ = await attempt(client, [sse_response(b"data: T:part\n\n")])
    assert record.error is not None
    assert record.error.kind == "early_close"
    assert record.completion is not None
    assert record.completion.choices[0].text == "part"


async def test_socket_dropped_inside_a_chunk_is_early_close(client: httpx.AsyncClient) -> None:
    """A connection dropped in the middle of a chunk is an early close with the partial output."""
    head = sse_response()[0]
    script = [head, chunk(b"data: T:abc\n\n"), b"40\r\ndata: T:cut", CLOSE]
    record, _ = await attempt(client, [script])
    assert record.error is not None
    assert record.error.kind == "early_close"
    assert record.completion is not None
    assert record.completion.choices[0].text == "abc"


async def test_http_error_goes_to_the_classifier(client: httpx.AsyncClient) -> None:
    """A 429 body is read (bounded), parsed by the dialect and classified by the given function."""
    script = json_response(429, b'{"error":"slow down"}', {"retry-after": "3"})
    record, _ = await attempt(client, [script], capture=True)
    assert record.error == AttemptError(
        kind="rate_limited",
        message='HTTP 429 http_error: {"error":"slow down"}',
        http_status=429,
        retry_after=3.0,
        retryable=True,
    )
    assert record.raw_capture == b'{"error":"slow down"}'
    assert record.completion is None


async def test_an_error_body_after_the_first_byte_limit_is_still_the_error(
    client: httpx.AsyncClient, autojump_clock: trio.abc.Clock
) -> None:
    """A 429 head just inside first_byte, its body 2 s later: the 429 is the outcome, not a timeout."""
    body = b'{"error":"slow down"}'
    head = b"HTTP/1.1 429 X\r\nretry-after: 3\r\ncontent-length: %d\r\n\r\n" % len(body)
    record, _ = await attempt(client, [[TIMEOUTS.first_byte - 1.0, head, 2.0, body]])
    assert record.error is not None
    assert (record.error.kind, record.error.http_status, record.error.retry_after) == (
        "rate_limited",
        429,
        3.0,
    )


async def test_a_stalled_error_body_times_out_after_idle(
    client: httpx.AsyncClient, autojump_clock: trio.abc.Clock
) -> None:
    """A 500 head, then silence: the attempt ends ``idle`` seconds after the head, saying so."""
    head = b"HTTP/1.1 500 X\r\ncontent-length: 10\r\n\r\n"
    record, _ = await attempt(client, [[head, 100.0]])
    assert record.error is not None
    assert (record.error.kind, record.error.http_status) == ("timeout", 500)
    assert "error body" in record.error.message
    assert record.timing.end_s == pytest.approx(TIMEOUTS.idle, abs=0.05)


async def test_no_headers_in_time_is_a_timeout(
    client: httpx.AsyncClient, autojump_clock: trio.abc.Clock
) -> None:
    """A server that never answers times out after first_byte seconds."""
    record, _ = await attempt(client, [[100.0]])
    assert record.error is not None
    assert record.error.kind == "timeout"
    assert "headers" in record.error.message
    assert record.timing.end_s == pytest.approx(TIMEOUTS.first_byte, abs=0.01)


async def test_idle_stream_times_out(client: httpx.AsyncClient, autojump_clock: trio.abc.Clock) -> None:
    """Silence longer than ``idle`` after the first token ends the attempt, keeping what arrived."""
    head, *_ = sse_response()
    record, _ = await attempt(client, [[head, chunk(b"data: T:a\n\n"), 100.0]])
    assert record.error is not None
    assert record.error.kind == "timeout"
    assert record.timing.end_s == pytest.approx(TIMEOUTS.idle, abs=0.01)
    assert record.completion is not None
    assert record.completion.choices[0].text == "a"


async def test_heartbeats_do_not_count_as_tokens(
    client: httpx.AsyncClient, autojump_clock: trio.abc.Clock
) -> None:
    """Heartbeat-only streams stay alive under ``idle`` but still hit ``first_token``."""
    head, *_ = sse_response()
    pings: list[Step] = []
    for _ in range(30):
        pings += [2.0, chunk(b": heartbeat\n\n")]
    record, _ = await attempt(client, [[head, *pings]])
    assert record.error is not None
    assert record.error.kind == "timeout"
    assert record.timing.end_s == pytest.approx(TIMEOUTS.first_token, abs=0.01)
    assert record.heartbeats == 9


async def test_in_stream_error_is_a_stream_error(client: httpx.AsyncClient) -> None:
    """An error event after HTTP 200 is a stream error, with the text before it kept."""
    record, _ = await attempt(client, [sse_response(b"data: T:x\n\ndata: E:overloaded\n\n")])
    assert record.error is not None
    assert record.error.kind == "stream_error"
    assert "overloaded" in record.error.message


async def test_malformed_chunk_is_a_protocol_error(client: httpx.AsyncClient) -> None:
    """A chunk the dialect cannot read is a protocol error, not a crash."""
    record, _ = await attempt(client, [sse_response(b"data: {{{\n\n")])
    assert record.error is not None
    assert record.error.kind == "protocol_error"


async def test_refused_connection_is_a_connect_error(client: httpx.AsyncClient) -> None:
    """Nothing listening on the port is a connect error with no HTTP status."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    provider = ProviderSpec(name="p", dialect="fake", base_url=f"http://127.0.0.1:{port}", model="m")
    dialect = FakeDialect()
    record = await run_attempt(
        client,
        dialect,
        dialect.build_request(provider, CASE, api_key=None),
        unit_key="k",
        number=1,
        timeouts=TIMEOUTS,
    )
    assert record.error is not None
    assert record.error.kind == "connect_error"
    assert record.http_status is None


async def test_capture_keeps_the_exact_body(client: httpx.AsyncClient) -> None:
    """With capture on, the record holds the body bytes exactly as received."""
    record, _ = await attempt(client, [sse_response(b"data: T:a\n", b"\ndata: [DONE]\n\n")], capture=True)
    assert record.raw_capture == b"data: T:a\n\ndata: [DONE]\n\n"
    assert record.bytes_received == len(record.raw_capture)


async def test_capture_dates_each_read(client: httpx.AsyncClient, autojump_clock: trio.abc.Clock) -> None:
    """Each captured read keeps its offset in the capture and when it arrived after the request."""
    body = sse_response(0.5, b"data: T:a\n\n", 1.0, b"data: T:b\n\n", 0.25, b"data: [DONE]\n\n")
    record, _ = await attempt(client, [[0.25, *body]], capture=True)
    assert record.raw_reads is not None
    assert [offset for offset, _ in record.raw_reads] == [0, 11, 22]
    assert [at for _, at in record.raw_reads] == pytest.approx([0.75, 1.75, 2.0], abs=0.01)
    assert record.raw_capture is not None
    assert record.raw_capture[22:] == b"data: [DONE]\n\n"
    plain, _ = await attempt(client, [sse_response(b"data: [DONE]\n\n")])
    assert plain.raw_reads is None  # nothing captured, nothing dated


async def test_anthropic_ping_events_count_as_heartbeats(client: httpx.AsyncClient) -> None:
    """Anthropic ``ping`` events are keep-alives too: they count with SSE comments as heartbeats."""
    events = [
        b"event: message_start\ndata: "
        b'{"type":"message_start","message":{"id":"m","model":"x","usage":{"input_tokens":1}}}\n\n',
        b'event: ping\ndata: {"type": "ping"}\n\n',
        b": keep-alive\n\n",
        b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
        b'"content_block":{"type":"text","text":""}}\n\n',
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"text_delta","text":"Hi"}}\n\n',
        b'event: ping\ndata: {"type": "ping"}\n\n',
        b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n',
        b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},'
        b'"usage":{"output_tokens":1}}\n\n',
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n',
    ]
    record, _ = await attempt(client, [sse_response(*events)], dialect=get_dialect("anthropic-messages"))
    assert record.error is None
    assert record.heartbeats == 3


async def test_http_error_counts_its_bytes_without_capture(client: httpx.AsyncClient) -> None:
    """An HTTP error attempt's body bytes are counted even when raw bodies are not captured."""
    body = b'{"error":"boom"}'
    record, _ = await attempt(client, [json_response(500, body)], capture=False)
    assert record.error is not None
    assert record.error.kind == "server_error"
    assert record.raw_capture is None
    assert record.bytes_received == len(body)


@HTTPX_ABANDONED_GENERATORS
async def test_bad_content_encoding_is_a_protocol_error(client: httpx.AsyncClient) -> None:
    """A body that is not the gzip its header claims is a retryable protocol error, not a crash."""
    record, _ = await attempt(client, [bad_gzip_response()])
    assert record.error is not None
    assert (record.error.kind, record.error.retryable) == ("protocol_error", True)
    assert record.error.message.startswith("DecodingError: ")
    assert record.error.message.endswith("(during body)")
    assert record.http_status == 200


@pytest.mark.parametrize(
    ("raised", "mapped"),
    [
        pytest.param(httpx.ConnectTimeout("slow"), errors.TransportTimeoutError, id="connect-timeout"),
        pytest.param(httpx.ConnectError("refused"), errors.ConnectError, id="connect"),
        pytest.param(httpx.WriteError("broken pipe"), errors.ConnectError, id="write"),
        pytest.param(httpx.ReadError("reset"), errors.TransportError, id="read"),
        pytest.param(httpx.RemoteProtocolError("peer closed"), errors.TransportError, id="remote-protocol"),
        pytest.param(httpx.DecodingError("bad gzip"), errors.StreamProtocolError, id="decoding"),
        pytest.param(httpx.TooManyRedirects("loop"), errors.TransportError, id="any-http-error"),
        pytest.param(trio.BrokenResourceError(), errors.TransportError, id="trio-broken"),
        pytest.param(trio.TooSlowError(), errors.TransportTimeoutError, id="trio-too-slow"),
        pytest.param(ConnectionRefusedError(), errors.ConnectError, id="os-refused"),
        pytest.param(ConnectionResetError(), errors.TransportError, id="os-reset"),
    ],
)
def test_map_exceptions(raised: Exception, mapped: type[errors.ProviderError]) -> None:
    """httpx's, trio's and the OS's errors become runner.errors, with the cause and context kept."""
    received = Received(status=200)
    with pytest.raises(mapped) as caught, map_exceptions(received, unit_key="p/c/0", attempt=2):
        raise raised
    assert type(caught.value) is mapped
    assert caught.value.__cause__ is raised
    assert (caught.value.unit_key, caught.value.attempt, caught.value.status) == ("p/c/0", 2, 200)
    assert str(caught.value).startswith(f"{type(raised).__name__}: ")


def test_map_exceptions_lets_bugs_through() -> None:
    """An error that is not a provider failure (a bug) leaves the boundary unchanged."""
    with pytest.raises(KeyError), map_exceptions(Received(), unit_key="k", attempt=1):
        raise KeyError("bug")


def test_deadlines_follow_the_phases() -> None:
    """First byte, then first token or idle (with slack), never past the total, in plain numbers."""
    timeouts = Timeouts(connect=1, first_byte=10, first_token=20, idle=5, total=30)
    deadlines = Deadlines(timeouts, start=100.0)
    assert (deadlines.phase, deadlines.connect) == ("connect", 110.0)
    assert deadlines.slack == DEADLINE_SLACK  # 0.1% of the 5 s idle limit, raised to the least slack
    assert deadlines.body(102.0) == pytest.approx(107.005)
    assert deadlines.phase == "body"
    assert deadlines.after_read(118.0, has_token=False) == 120.0  # the first-token limit
    assert deadlines.after_read(118.0, has_token=True) == pytest.approx(123.005)
    assert deadlines.after_read(128.0, has_token=True) == 130.0  # the total limit


@pytest.mark.parametrize(
    ("idle", "token_idle", "slack"),
    [
        pytest.param(0.2, None, DEADLINE_SLACK, id="short-idle-least-slack"),
        pytest.param(60.0, None, 0.06, id="a-tenth-of-a-percent"),
        pytest.param(600.0, None, DEADLINE_SLACK_MAX, id="long-idle-capped"),
        pytest.param(60.0, 20.0, 0.02, id="token-idle-is-shorter"),
    ],
)
def test_the_deadline_slack_is_a_bounded_share_of_the_shortest_gap_limit(
    idle: float, token_idle: float | None, slack: float
) -> None:
    """A timeout may fire late by the slack only: 0.1% of idle (or token_idle), from 5 ms to 100 ms."""
    timeouts = Timeouts(connect=1, first_byte=10, first_token=20, idle=idle, token_idle=token_idle, total=900)
    assert Deadlines(timeouts, start=0.0).slack == pytest.approx(slack)


async def test_a_key_h11_refuses_never_reaches_the_error_message(client: httpx.AsyncClient) -> None:
    """h11 quotes a header value it refuses; the attempt's error keeps the kind, never the key."""
    async with trio.open_nursery() as nursery:
        server = await nursery.start(ScriptedServer([sse_response(b"data: T:x\n\n")]).serve)
        provider = ProviderSpec(name="p", dialect="fake", base_url=server.base_url, model="m")
        dialect = FakeDialect()
        request = dialect.build_request(provider, CASE, api_key="sk-live-secret\n")
        record = await run_attempt(
            client, dialect, request, unit_key="p/c/0", number=1, timeouts=TIMEOUTS, capture=False
        )
        nursery.cancel_scope.cancel()
    assert record.error is not None
    assert record.error.kind == "connect_error", record.error
    assert "secret" not in record.error.message
    assert "LocalProtocolError" in record.error.message
