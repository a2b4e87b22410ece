"""Fault scripts produce exactly the statuses, headers and bytes specified, read off a raw socket."""

from __future__ import annotations

import email.utils
import re
import time
from typing import Any

import orjson
import pytest
import trio

from runner.simulator import SimulatorConfig, expected_output, parse_faults
from runner.simulator.config import parse_latency
from runner.simulator.server import SimulatorHandle
from runner.wire.sse import decode_all
from tests.conftest import RawResponse, StartSimulator, http_request, parse_raw, raw_exchange

MESSAGES = [{"role": "user", "content": "Tell me a joke"}]
OPENAI = ("/v1/chat/completions", {"model": "m", "messages": MESSAGES, "stream": True})
ANTHROPIC = ("/v1/messages", {"model": "c", "max_tokens": 256, "messages": MESSAGES, "stream": True})
RUNWARE = (
    "/v1",
    [
        {
            "taskType": "textInference",
            "taskUUID": "u-1",
            "model": "r",
            "deliveryMethod": "stream",
            "messages": MESSAGES,
        }
    ],
)
DIALECTS = [
    pytest.param("openai-chat", OPENAI, id="openai-chat"),
    pytest.param("anthropic-messages", ANTHROPIC, id="anthropic"),
    pytest.param("runware", RUNWARE, id="runware"),
]


async def send(handle: SimulatorHandle, target: tuple[str, Any], fault: str, **kw: Any) -> RawResponse:
    """POST ``target`` with an ``x-sim-faults`` script of one fault for the first attempt."""
    path, body = target
    return await raw_exchange(handle.port, http_request(path, body, {"x-sim-faults": f"1={fault}"}), **kw)


def token_events(dialect: str, response: RawResponse) -> list[Any]:
    """The decoded JSON payloads of the events that carry content tokens."""
    out = []
    for event in decode_all(response.body):
        if event.data == "[DONE]":
            continue
        data = orjson.loads(event.data)
        if dialect == "anthropic-messages":
            if data["type"] == "content_block_delta":
                out.append(data)
        elif dialect == "runware":
            if data.get("delta"):
                out.append(data)
        elif data["choices"] and any(v for k, v in data["choices"][0]["delta"].items() if k != "role"):
            out.append(data)
    return out


@pytest.mark.parametrize(
    ("fault", "header", "value"),
    [
        pytest.param("http_429", "retry-after", "1", id="default"),
        pytest.param("http_429:ra=2", "retry-after", "2", id="seconds"),
        pytest.param("http_429:ms=1500", "retry-after-ms", "1500", id="ms"),
        pytest.param("http_503:ra=3", "retry-after", "3", id="503"),
    ],
)
async def test_retry_hints(simulator: SimulatorHandle, fault: str, header: str, value: str) -> None:
    """A 429/503 fault carries the Retry-After or retry-after-ms header its script names."""
    with trio.fail_after(10):
        response = await send(simulator, OPENAI, fault)
    assert response.status == int(fault[5:8])
    assert response.headers[header] == value
    assert response.json()["error"]["type"] in ("requests", "server_error")


async def test_retry_after_http_date(simulator: SimulatorHandle) -> None:
    """``date=S`` sends Retry-After as an HTTP date about S seconds ahead."""
    with trio.fail_after(10):
        response = await send(simulator, OPENAI, "http_429:date=30")
    when = email.utils.parsedate_to_datetime(response.headers["retry-after"]).timestamp()
    assert 25 < when - time.time() <= 31


@pytest.mark.parametrize(("dialect", "target"), DIALECTS)
@pytest.mark.parametrize("status", [400, 401, 402, 404, 500, 502, 503, 529])
async def test_error_status_in_dialect_shape(
    simulator: SimulatorHandle, dialect: str, target: tuple[str, Any], status: int
) -> None:
    """Every status fault answers with that status and the dialect's own JSON error shape."""
    with trio.fail_after(10):
        response = await send(simulator, target, f"http_{status}")
    assert response.status == status
    assert response.complete
    body = response.json()
    if dialect == "openai-chat":
        assert set(body["error"]) == {"message", "type", "param", "code"}
    elif dialect == "anthropic-messages":
        assert body["type"] == "error"
        assert (body["error"]["type"] == "overloaded_error") == (status == 529)
    else:
        assert body["errors"][0]["taskUUID"] == "u-1"


@pytest.mark.parametrize(("dialect", "target"), DIALECTS)
async def test_quota_429(simulator: SimulatorHandle, dialect: str, target: tuple[str, Any]) -> None:
    """The quota fault is a 429 without a retry hint whose body says insufficient_quota."""
    with trio.fail_after(10):
        response = await send(simulator, target, "quota")
    assert response.status == 429
    assert "retry-after" not in response.headers
    assert b"insufficient_quota" in response.body


async def test_reset_before_response(simulator: SimulatorHandle) -> None:
    """``reset`` drops the connection with RST before any response byte."""
    with trio.fail_after(10):
        response = await send(simulator, OPENAI, "reset")
    assert response.raw == b""
    assert response.reset


@pytest.mark.parametrize(("dialect", "target"), DIALECTS)
async def test_close_clean(simulator: SimulatorHandle, dialect: str, target: tuple[str, Any]) -> None:
    """``close_clean:2`` ends the chunked body properly after 2 token events, with no terminal signal."""
    with trio.fail_after(10):
        response = await send(simulator, target, "close_clean:2")
    assert response.status == 200
    assert response.complete
    assert len(token_events(dialect, response)) == 2
    assert b"[DONE]" not in response.body
    assert b"message_stop" not in response.body


@pytest.mark.parametrize(("dialect", "target"), DIALECTS)
async def test_close_abrupt(simulator: SimulatorHandle, dialect: str, target: tuple[str, Any]) -> None:
    """``close_abrupt:3`` sends 3 token events, then half of an HTTP chunk, then closes the socket."""
    with trio.fail_after(10):
        response = await send(simulator, target, "close_abrupt:3")
    assert response.status == 200
    assert not response.complete
    assert len(token_events(dialect, response)) == 3
    tail = response.raw[response.raw.rindex(response.chunks[-1]) + len(response.chunks[-1]) + 2 :]
    size, _, partial = tail.partition(b"\r\n")
    assert 0 < len(partial) < int(size, 16)


async def test_stall_sends_nothing(simulator: SimulatorHandle) -> None:
    """``stall`` never sends a byte, not even the status line."""
    with trio.fail_after(10):
        response = await send(simulator, OPENAI, "stall", read_for=0.3)
    assert response.raw == b""
    assert simulator.log[0].fault == "stall"


async def test_stall_mid_stream(simulator: SimulatorHandle) -> None:
    """``stall:2`` sends the headers and 2 token events, then silence."""
    with trio.fail_after(10):
        response = await send(simulator, OPENAI, "stall:2", read_for=0.3)
    assert response.status == 200
    assert not response.complete
    assert len(token_events("openai-chat", response)) == 2


@pytest.mark.parametrize(
    ("dialect", "target", "beat"),
    [
        pytest.param("openai-chat", OPENAI, b": heartbeat\n\n", id="openai-chat"),
        pytest.param(
            "anthropic-messages", ANTHROPIC, b'event: ping\ndata: {"type":"ping"}\n\n', id="anthropic"
        ),
        pytest.param("runware", RUNWARE, b": ping\n\n", id="runware"),
    ],
)
async def test_heartbeat_stall(
    start_simulator: StartSimulator, dialect: str, target: tuple[str, Any], beat: bytes
) -> None:
    """``heartbeat_stall:1`` keeps sending the dialect's heartbeat but never another token."""
    handle = await start_simulator(SimulatorConfig(latency=parse_latency("heartbeat=0.05")))
    with trio.fail_after(10):
        response = await send(handle, target, "heartbeat_stall:1", read_for=0.5)
    assert len(token_events(dialect, response)) == 1
    assert response.chunks[-3:] == [beat] * 3


@pytest.mark.parametrize(
    ("dialect", "target", "fault", "check"),
    [
        pytest.param(
            "openai-chat", OPENAI, "stream_error", lambda d: d["error"]["code"] == "stream_error", id="openai"
        ),
        pytest.param(
            "openai-chat",
            OPENAI,
            "finish_error",
            lambda d: d["choices"][0]["finish_reason"] == "error" and "message" in d["error"],
            id="miromind",
        ),
        pytest.param(
            "anthropic-messages",
            ANTHROPIC,
            "stream_error",
            lambda d: d == {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
            id="anthropic",
        ),
        pytest.param(
            "runware",
            RUNWARE,
            "stream_error",
            lambda d: d["errors"][0]["code"] == "timeoutProvider",
            id="runware",
        ),
    ],
)
async def test_mid_stream_error_shapes(
    simulator: SimulatorHandle, dialect: str, target: tuple[str, Any], fault: str, check: Any
) -> None:
    """A mid-stream error arrives after K token events in the dialect's own shape, then the body ends."""
    with trio.fail_after(10):
        response = await send(simulator, target, f"{fault}:2")
    assert response.complete
    events = [e for e in decode_all(response.body) if e.data != "[DONE]"]
    assert check(orjson.loads(events[-1].data))
    if dialect == "anthropic-messages":
        assert events[-1].event == "error"
    assert len(token_events(dialect, parse_raw(response.raw.replace(events[-1].data.encode(), b"{}")))) <= 2


@pytest.mark.parametrize(("dialect", "target"), DIALECTS)
async def test_malformed_chunk(simulator: SimulatorHandle, dialect: str, target: tuple[str, Any]) -> None:
    """``malformed:1`` makes exactly one event invalid JSON; the stream then completes normally."""
    with trio.fail_after(10):
        response = await send(simulator, target, "malformed:1")
    assert response.complete
    bad = []
    for event in decode_all(response.body):
        if event.data == "[DONE]":
            continue
        try:
            orjson.loads(event.data)
        except orjson.JSONDecodeError:
            bad.append(event.data)
    assert len(bad) == 1
    assert (b"[DONE]" in response.body) or (b"message_stop" in response.body)


@pytest.mark.parametrize(("dialect", "target"), DIALECTS)
async def test_dribble_is_byte_exact(
    simulator: SimulatorHandle, dialect: str, target: tuple[str, Any]
) -> None:
    """``dribble`` delivers the same stream, written one byte per send, UTF-8 split across reads."""
    path, body = target
    with trio.fail_after(20):
        normal = await raw_exchange(simulator.port, http_request(path, body, {"x-sim-key": "a"}))
        dribbled = await raw_exchange(
            simulator.port, http_request(path, body, {"x-sim-key": "b", "x-sim-faults": "1=dribble"})
        )
    assert dribbled.complete
    volatile = re.compile(rb'"(id|created)":("[^"]*"|\d+)')  # the response id names the request key
    assert volatile.sub(b"", dribbled.body) == volatile.sub(b"", normal.body)
    assert dribbled.reads > len(dribbled.raw) // 4  # nearly every byte arrives in its own read
    assert any(ord(ch) > 127 for ch in dribbled.body.decode())


async def test_script_by_attempt_and_log(start_simulator: StartSimulator) -> None:
    """A configured script serves attempt 1 a 429 and attempt 2 the stream, and the log says so."""
    handle = await start_simulator(SimulatorConfig(faults=parse_faults("1=http_429:ra=1,2=ok")))
    path, body = OPENAI
    with trio.fail_after(10):
        first = await raw_exchange(handle.port, http_request(path, body))
        second = await raw_exchange(handle.port, http_request(path, body))
    assert (first.status, second.status) == (429, 200)
    assert [(e.attempt, e.fault) for e in handle.log] == [(1, "http_429:ra=1"), (2, "ok")]
    assert handle.log[0].fingerprint == handle.log[1].fingerprint
    assert handle.log[0].body == body
    assert handle.log[0].time <= handle.log[1].time
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in token_events("openai-chat", second))
    assert text == expected_output("openai-chat", body, handle.config).choices[0].text


@pytest.mark.parametrize(
    ("rate", "expected_faults"),
    [pytest.param(0.0, 0, id="never"), pytest.param(1.0, 4, id="always")],
)
async def test_fault_rates(start_simulator: StartSimulator, rate: float, expected_faults: int) -> None:
    """Probability faults fire per attempt at the configured rate, drawn from the seed."""
    handle = await start_simulator(SimulatorConfig.from_dict({"faults": {"http_500": rate}}))
    with trio.fail_after(10):
        for i in range(4):
            body = {"model": "m", "messages": [{"role": "user", "content": str(i)}], "stream": True}
            await raw_exchange(handle.port, http_request("/v1/chat/completions", body))
    assert sum(e.fault == "http_500" for e in handle.log) == expected_faults


async def test_keep_alive_serves_several_requests(simulator: SimulatorHandle) -> None:
    """One connection carries several requests (keep-alive), each answered in full."""
    path, body = OPENAI
    one = http_request(path, body).replace(b"connection: close", b"connection: keep-alive")
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream("127.0.0.1", simulator.port)
        async with stream:
            data = bytearray()
            await stream.send_all(one + one)
            while data.count(b"0\r\n\r\n") < 2 or not data.endswith(b"0\r\n\r\n"):
                data += await stream.receive_some(65536)
    assert data.count(b"HTTP/1.1 200 OK") == 2
    assert len(simulator.log) == 2


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        pytest.param(b"GARBAGE\r\n\r\n", 400, id="bad_request_line"),
        pytest.param(
            b"POST /v2/nothing HTTP/1.1\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}", 404, id="404"
        ),
        pytest.param(
            b"POST /v1/messages HTTP/1.1\r\ncontent-length: 3\r\nconnection: close\r\n\r\n{x}",
            400,
            id="bad_json",
        ),
    ],
)
async def test_bad_requests(simulator: SimulatorHandle, request_bytes: bytes, status: int) -> None:
    """Unparseable requests, unknown paths and bad JSON get a JSON error, never a crash."""
    with trio.fail_after(10):
        response = await raw_exchange(simulator.port, request_bytes)
    assert response.status == status
    assert response.complete


async def test_latency_ttft_and_heartbeats(start_simulator: StartSimulator) -> None:
    """A time to first token longer than the heartbeat interval is filled with heartbeat comments."""
    handle = await start_simulator(SimulatorConfig(latency=parse_latency("ttft=0.25,heartbeat=0.1")))
    path, body = OPENAI
    with trio.fail_after(10):
        start = trio.current_time()
        response = await raw_exchange(handle.port, http_request(path, body))
        elapsed = trio.current_time() - start
    assert elapsed >= 0.25
    assert response.chunks.count(b": heartbeat\n\n") == 2
