"""The simulator's trio server: routes requests to dialect emitters, paces frames, injects faults.

``serve_simulator`` is a trio service (``handle = await nursery.start(serve_simulator, config)``); the
handle names the bound port, the base URL of each dialect, and the log of every request served.
"""

from __future__ import annotations

import hashlib
import random
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import orjson
import trio

from runner.errors import ConfigError
from runner.simulator.config import Fault, SimulatorConfig, parse_faults
from runner.simulator.emitters import anthropic_messages as anthropic
from runner.simulator.emitters import openai_chat, runware
from runner.simulator.faults import error_body, malformed, retry_headers, stream_error
from runner.simulator.frames import EmitContext, Frame
from runner.simulator.http import (
    LAST_CHUNK,
    SSE_HEAD,
    HttpParseError,
    Request,
    RequestReader,
    chunk,
    json_response,
)
from runner.simulator.script import Expected, content_seed, expected_output

if TYPE_CHECKING:
    from collections.abc import Iterator

ROUTES: Final = {
    "/v1/chat/completions": "openai-chat",
    "/v1/messages": "anthropic-messages",
    "/v1": "runware",
}
_MID_STREAM: Final = (
    "stall",
    "heartbeat_stall",
    "close_clean",
    "close_abrupt",
    "stream_error",
    "finish_error",
)
_FLUSH_AT: Final = 16 * 1024  # back-to-back frames share one send (whole chunks only) up to this size
_READ: Final = 64 * 1024
_HIDDEN_HEADERS: Final = ("authorization", "x-api-key", "api-key")


@dataclass(frozen=True, slots=True, kw_only=True)
class ServedRequest:
    """One request as the simulator saw it (credentials stripped from ``headers``)."""

    seq: int
    method: str
    path: str
    dialect: str | None
    headers: dict[str, str]
    body: Any  # the parsed JSON, or None
    fingerprint: str
    attempt: int  # 1-based, per fingerprint
    fault: str  # "ok", "http_429:ra=2", "close_abrupt:3", ...
    time: float  # trio.current_time() when the request was read


class ServedLog:
    """The in-memory log of requests served, in arrival order."""

    def __init__(self) -> None:
        self.entries: list[ServedRequest] = []

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[ServedRequest]:
        return iter(self.entries)

    def __getitem__(self, index: int) -> ServedRequest:
        return self.entries[index]

    def attempts(self, fingerprint: str) -> list[ServedRequest]:
        return [e for e in self.entries if e.fingerprint == fingerprint]


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulatorHandle:
    """What ``serve_simulator`` hands to ``task_status.started``."""

    host: str
    port: int
    config: SimulatorConfig
    log: ServedLog = field(repr=False)

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    def base_url(self, dialect: str) -> str:
        """The base URL the dialect's official SDK takes (anthropic's has no /v1)."""
        return self.origin if dialect == "anthropic-messages" else f"{self.origin}/v1"


async def serve_simulator(
    config: SimulatorConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    task_status: trio.TaskStatus[SimulatorHandle] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve every dialect on ``host:port`` (0: an ephemeral port) until cancelled."""
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound = listeners[0].socket.getsockname()[1]
    simulator = _Simulator(config, ServedLog())
    task_status.started(SimulatorHandle(host=host, port=bound, config=config, log=simulator.log))
    await trio.serve_listeners(simulator.connection, listeners)


class _Simulator:
    def __init__(self, config: SimulatorConfig, log: ServedLog) -> None:
        self.config = config
        self.log = log
        self.attempts: dict[str, int] = {}

    async def connection(self, stream: trio.SocketStream) -> None:
        async with stream:
            reader = RequestReader()
            try:
                while True:
                    request = reader.next_request()
                    if request is None:
                        data = await stream.receive_some(_READ)
                        if not data:
                            return
                        reader.feed(data)
                        continue
                    if not await self.respond(stream, request):
                        return
            except HttpParseError as exc:
                body = error_body("openai-chat", exc.status)
                await stream.send_all(json_response(exc.status, body, keep_alive=False))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return  # the client went away: normal for timeouts and cancellations

    async def respond(self, stream: trio.SocketStream, request: Request) -> bool:
        """Answer one request; False when the connection must close afterwards."""
        path = request.path.split("?", 1)[0].rstrip("/") or "/"
        dialect = ROUTES.get(path)
        if request.method == "GET" and path == "/health":
            await stream.send_all(json_response(200, b'{"status":"ok"}'))
            return request.keep_alive
        if dialect is None or request.method != "POST":
            status = 404 if dialect is None else 405
            await stream.send_all(json_response(status, error_body("openai-chat", status)))
            return request.keep_alive
        try:
            body: Any = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            body = None
        task = _task(dialect, body)
        if task is None:
            await stream.send_all(json_response(400, error_body(dialect, 400)))
            return request.keep_alive
        fingerprint = request.headers.get("x-sim-key") or _fingerprint(dialect, task)
        attempt = self.attempts[fingerprint] = self.attempts.get(fingerprint, 0) + 1
        plan = self.config.faults
        if "x-sim-faults" in request.headers:
            try:
                plan = parse_faults(request.headers["x-sim-faults"], key="x-sim-faults")
            except ConfigError as exc:
                await stream.send_all(json_response(400, orjson.dumps({"error": {"message": str(exc)}})))
                return request.keep_alive
        seed = self.config.seed
        fault = plan.choose(attempt, random.Random(f"{seed}:{fingerprint}:{attempt}:fault"))
        headers = {k: v for k, v in request.headers.items() if k not in _HIDDEN_HEADERS}
        self.log.entries.append(
            ServedRequest(
                seq=len(self.log.entries),
                method=request.method,
                path=path,
                dialect=dialect,
                headers=headers,
                body=body,
                fingerprint=fingerprint,
                attempt=attempt,
                fault=str(fault),
                time=trio.current_time(),
            )
        )
        if fault.name == "reset":
            # SO_LINGER 0: close() sends RST instead of FIN, a "connection reset by peer".
            stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        if fault.name == "stall" and fault.arg is None:
            await _wait_for_eof(stream)
            return False
        rng = random.Random(f"{seed}:{fingerprint}:{attempt}:time")
        latency = self.config.latency
        if not latency.ttfb.is_zero:
            await trio.sleep(latency.ttfb.sample(rng))
        if fault.status is not None:
            error = error_body(dialect, fault.status, quota=fault.name == "quota", task=_uuid(task))
            await stream.send_all(json_response(fault.status, error, extra=retry_headers(fault)))
            return request.keep_alive
        expected = expected_output(dialect, body, self.config)
        ctx = EmitContext(
            rng=rng,
            chunk=latency.chunk,
            response_id=_response_id(dialect, fingerprint, attempt),
            created=int(time.time()),
        )
        if not expected.stream:
            data = json_response(200, _response_body(dialect, expected, task, ctx))
            if fault.name == "dribble":
                await _dribble(stream, data)
            elif fault.name == "close_abrupt":
                await stream.send_all(data[: len(data) - len(data) // 4])
                return False
            else:
                await stream.send_all(data)
            return request.keep_alive
        frames = _stream_frames(dialect, expected, task, self.config, ctx)
        if fault.name == "dribble":
            await _dribble(stream, SSE_HEAD + b"".join(chunk(f.wire) for f in frames) + LAST_CHUNK)
            return request.keep_alive
        alive = await self.stream(stream, frames, fault, rng, dialect, expected, task, ctx)
        return alive and request.keep_alive

    async def stream(
        self,
        stream: trio.SocketStream,
        frames: list[Frame],
        fault: Fault,
        rng: random.Random,
        dialect: str,
        expected: Expected,
        task: dict[str, Any],
        ctx: EmitContext,
    ) -> bool:
        """Send the frames paced by the latency model; inject a mid-stream fault at its frame."""
        latency = self.config.latency
        heartbeat = chunk(_heartbeat(dialect))
        tokens = [i for i, f in enumerate(frames) if f.token]
        trigger = -1
        if fault.name in (*_MID_STREAM, "malformed"):
            k = fault.after if fault.after is not None else len(tokens) // 2
            trigger = tokens[k] if k < len(tokens) else len(frames) - 1
        pending = bytearray(SSE_HEAD)
        seen = 0
        for i, frame in enumerate(frames):
            if i == trigger:
                if fault.name == "malformed":
                    frame = malformed(frame)
                else:
                    return await self.cut(stream, pending, frame, fault, dialect, expected, task, ctx)
            if frame.token:
                dist = latency.ttft if seen == 0 else latency.gap
                seen += 1
                if not dist.is_zero:
                    delay = dist.sample(rng)
                    if delay > 0:
                        await stream.send_all(pending)
                        pending.clear()
                        await _pause(stream, delay, latency.heartbeat, heartbeat)
            pending += chunk(frame.wire)
            if len(pending) >= _FLUSH_AT or not self.config.coalesce:
                await stream.send_all(pending)
                pending.clear()
        pending += LAST_CHUNK
        await stream.send_all(pending)
        return True

    async def cut(
        self,
        stream: trio.SocketStream,
        pending: bytearray,
        frame: Frame,
        fault: Fault,
        dialect: str,
        expected: Expected,
        task: dict[str, Any],
        ctx: EmitContext,
    ) -> bool:
        """Apply a mid-stream fault in place of ``frame``; False when the connection must close."""
        name = fault.name
        if name == "close_clean":
            await stream.send_all(pending + LAST_CHUNK)
            return True
        if name == "close_abrupt":
            whole = chunk(frame.wire)
            await stream.send_all(pending + whole[: len(whole) // 2])
            return False
        if name in ("stream_error", "finish_error"):
            miromind = name == "finish_error" or self.config.flavor == "miromind"
            errors = stream_error(
                dialect,
                miromind=miromind,
                response_id=ctx.response_id,
                model=expected.model,
                task=_uuid(task),
            )
            await stream.send_all(pending + b"".join(chunk(f.wire) for f in errors) + LAST_CHUNK)
            return True
        await stream.send_all(pending)
        if name == "stall":
            await _wait_for_eof(stream)
            return False
        heartbeat = chunk(_heartbeat(dialect))  # heartbeat_stall: alive but never another token
        while True:
            await trio.sleep(self.config.latency.heartbeat)
            await stream.send_all(heartbeat)


async def _pause(stream: trio.SocketStream, delay: float, interval: float, heartbeat: bytes) -> None:
    # A pause longer than the heartbeat interval is filled the way providers keep proxies awake.
    while delay > interval:
        await trio.sleep(interval)
        await stream.send_all(heartbeat)
        delay -= interval
    await trio.sleep(delay)


async def _wait_for_eof(stream: trio.SocketStream) -> None:
    while await stream.receive_some(_READ):
        pass


async def _dribble(stream: trio.SocketStream, data: bytes) -> None:
    for i in range(len(data)):
        await stream.send_all(data[i : i + 1])


def _task(dialect: str, body: Any) -> dict[str, Any] | None:
    """The request object a dialect answers, or None when the body is not acceptable."""
    if dialect == "runware":
        if not isinstance(body, list) or not body or not isinstance(body[0], dict):
            return None
        task: dict[str, Any] = body[0]
        return task if task.get("taskType") == "textInference" else None
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return None
    return body


def _fingerprint(dialect: str, task: dict[str, Any]) -> str:
    return hashlib.sha256(content_seed(dialect, task, 0).encode()).hexdigest()[:16]


def _uuid(task: dict[str, Any]) -> str:
    return runware.task_uuid(task)


def _response_id(dialect: str, fingerprint: str, attempt: int) -> str:
    prefix = "msg_" if dialect == "anthropic-messages" else "chatcmpl-"
    return f"{prefix}{fingerprint}{attempt:04d}"


def _heartbeat(dialect: str) -> bytes:
    if dialect == "anthropic-messages":
        return anthropic.HEARTBEAT
    return runware.HEARTBEAT if dialect == "runware" else openai_chat.HEARTBEAT


def _stream_frames(
    dialect: str, expected: Expected, task: dict[str, Any], config: SimulatorConfig, ctx: EmitContext
) -> list[Frame]:
    if dialect == "anthropic-messages":
        return anthropic.stream_frames(expected, ctx)
    if dialect == "runware":
        return runware.stream_frames(expected, task, ctx)
    return openai_chat.stream_frames(expected, task, config, ctx)


def _response_body(dialect: str, expected: Expected, task: dict[str, Any], ctx: EmitContext) -> bytes:
    if dialect == "anthropic-messages":
        return anthropic.response_body(expected, ctx)
    if dialect == "runware":
        return runware.response_body(expected, task)
    return openai_chat.response_body(expected, ctx)
