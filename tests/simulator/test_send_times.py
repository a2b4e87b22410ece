"""The simulator logs when each stream's first token went out, on the machine's monotonic clock, bounded."""

from __future__ import annotations

import time

import orjson
import pytest
import trio

from runner.simulator import ServedLog
from runner.simulator.config import parse_latency
from tests.conftest import StartSimulator, http_request, parse_raw
from tests.simulator.test_faults import OPENAI, token_events


async def _first_token_arrival(port: int) -> tuple[float, str, float]:
    """Stream one answer; return (request sent, response id, when the first token's bytes arrived)."""
    path, body = OPENAI
    data = bytearray()
    arrived: float | None = None
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        sent = time.monotonic()
        await stream.send_all(http_request(path, body))
        while piece := await stream.receive_some(65536):
            data += piece
            if arrived is None and token_events("openai-chat", parse_raw(bytes(data))):
                arrived = time.monotonic()
    assert arrived is not None
    response = parse_raw(bytes(data))
    first = orjson.loads(response.body.split(b"data: ", 2)[1].split(b"\n", 1)[0])
    return sent, first["id"], arrived


@pytest.mark.parametrize(
    ("latency", "coalesce", "ttft"),
    [
        pytest.param("ttft=0.05", True, 0.05, id="ttft-pause"),
        pytest.param("gap=0.02", True, 0.0, id="flushed-by-the-next-pause"),
        pytest.param("ttft=0.03,gap=0.01", False, 0.03, id="one-write-per-event"),
        pytest.param("", True, 0.0, id="whole-answer-in-one-write"),
    ],
)
async def test_first_token_send_time_is_logged_by_response_id(
    start_simulator: StartSimulator, latency: str, coalesce: bool, ttft: float
) -> None:
    """The logged instant is after the scripted TTFT and just before the client read the token."""
    handle = await start_simulator(latency=parse_latency(latency), coalesce=coalesce)
    with trio.fail_after(10):
        sent, response_id, arrived = await _first_token_arrival(handle.port)
    at = handle.log.first_token_at(response_id)
    delay = handle.log.first_token_delay(response_id)
    assert at is not None
    assert delay is not None
    # One loop serves both sides here: the log is written before the client's read can run.
    assert sent + ttft <= at <= arrived
    assert arrived - at < 0.05
    assert ttft <= delay <= at - sent


async def test_streams_cut_before_any_token_log_no_send_time(start_simulator: StartSimulator) -> None:
    """A fault that ends the stream before its first token leaves no send time behind."""
    handle = await start_simulator()
    path, body = OPENAI
    stream = await trio.open_tcp_stream("127.0.0.1", handle.port)
    with trio.fail_after(10):
        async with stream:
            await stream.send_all(http_request(path, body, {"x-sim-faults": "1=close_clean:0"}))
            while await stream.receive_some(65536):
                pass
    (served,) = handle.log
    assert handle.log.first_token_at(f"chatcmpl-{served.fingerprint}0001") is None


def test_send_times_are_bounded() -> None:
    """Past its bound the log forgets the oldest streams' send times first."""
    log = ServedLog(send_times=2)
    for n in range(3):
        log.first_token_sent(f"r{n}", float(n), received=n - 0.5)
    assert [log.first_token_at(f"r{n}") for n in range(3)] == [None, 1.0, 2.0]
    assert [log.first_token_delay(f"r{n}") for n in range(3)] == [None, 0.5, 0.5]
