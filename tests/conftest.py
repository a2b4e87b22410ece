"""Shared fixtures: the built-in simulator started in the test's own nursery, and a raw HTTP client."""

from __future__ import annotations

import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio

from runner.http import stamp
from runner.simulator import SimulatorConfig
from runner.simulator.server import SimulatorHandle, serve_simulator
from runner.store.db import open_database

StartSimulator = Callable[..., Awaitable[SimulatorHandle]]


@pytest.fixture
def start_simulator(nursery: trio.Nursery) -> StartSimulator:
    """Return ``start(config=None, **fields)``: serve a simulator until the test ends."""

    async def start(config: SimulatorConfig | None = None, **fields: Any) -> SimulatorHandle:
        handle: SimulatorHandle = await nursery.start(serve_simulator, config or SimulatorConfig(**fields))
        return handle

    return start


@pytest.fixture
async def simulator(start_simulator: StartSimulator) -> SimulatorHandle:
    """A simulator with the default configuration (no latency, no faults)."""
    return await start_simulator()


@dataclass
class RawResponse:
    """A response as read off the socket: the head parsed, the chunked body kept chunk by chunk."""

    status: int
    headers: dict[str, str]
    raw: bytes  # every byte received, head included
    chunks: list[bytes]  # the chunked body's chunks (or the whole body with Content-Length)
    complete: bool  # the body ended properly (last-chunk seen, or Content-Length reached)
    reset: bool  # the read ended in ECONNRESET
    reads: int  # how many receive_some calls returned data

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    def json(self) -> Any:
        return orjson.loads(self.body)


def http_request(path: str, body: Any, headers: dict[str, str] | None = None) -> bytes:
    """A Connection: close POST with a JSON body, so the server closes after answering."""
    data = orjson.dumps(body)
    lines = [f"POST {path} HTTP/1.1", "host: 127.0.0.1", "content-type: application/json"]
    lines += [f"content-length: {len(data)}", "connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


async def raw_exchange(port: int, request: bytes, *, read_for: float = 10.0) -> RawResponse:
    """Send ``request`` on a fresh socket and read until EOF, a reset, or ``read_for`` seconds."""
    data = bytearray()
    reset = False
    reads = 0
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(request)
        with trio.move_on_after(read_for):
            while True:
                try:
                    piece = await stream.receive_some(65536)
                except trio.BrokenResourceError:
                    reset = True
                    break
                if not piece:
                    break
                reads += 1
                data += piece
    return parse_raw(bytes(data), reset=reset, reads=reads)


def parse_raw(data: bytes, *, reset: bool = False, reads: int = 0) -> RawResponse:
    """Parse what a raw client read: status line, headers, and a chunked or sized body."""
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1]) if lines[0] else 0
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.lower()] = value.strip()
    chunks: list[bytes] = []
    complete = False
    if headers.get("transfer-encoding") == "chunked":
        while True:
            size_line, crlf, after = rest.partition(b"\r\n")
            if not crlf:
                break
            size = int(size_line, 16)
            if size == 0:
                complete = after == b"\r\n"
                break
            if len(after) < size + 2:
                break  # cut inside a chunk
            chunks.append(after[:size])
            rest = after[size + 2 :]
    elif "content-length" in headers:
        chunks = [rest]
        complete = len(rest) == int(headers["content-length"])
    return RawResponse(status, headers, data, chunks, complete, reset, reads)


@pytest.fixture
def sqlite_file(tmp_path: Path) -> Path:
    """A migrated SQLite file in tmp_path, closed again: a test can lock, poll or delete it while a
    `runner` process writes to it."""
    path = tmp_path / "runner.db"
    with open_database(f"sqlite:///{path}"):
        pass
    return path


@pytest.fixture(scope="session")
def kernel_stamping() -> Iterator[None]:
    """Linux receive stamps on from the start of each test that times with them.

    The kernel turns stamping on from a workqueue when the first socket asks, so a test's first
    response could come unstamped (runner.http.watch.ArrivalWatch.keep_stamping); one socket holding it
    on for the session takes that start-up out of the tests.
    """
    keeper = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if stamp.SUPPORTED:
        keeper.setsockopt(socket.SOL_SOCKET, stamp.SO_TIMESTAMPNS, 1)
        time.sleep(0.1)  # the workqueue's turn (not in a trio loop: a session fixture is sync)
    yield
    keeper.close()
