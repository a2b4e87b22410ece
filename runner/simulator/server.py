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
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import orjson
import trio

from runner.errors import ConfigError
from runner.simulator.config import Fault, SimulatorConfig, parse_faults
from runner.simulator.emitters import EMITTERS, FALLBACK, InvalidRequestError
from runner.simulator.emitters.gemini import GeminiEmitter
from runner.simulator.faults import retry_headers, with_message
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
from runner.simulator.log import AttemptCounter, ServedLog
from runner.simulator.models import models_body
from runner.simulator.pacer import Pacer
from runner.simulator.pacing import Cut, Write, plan_stream
from runner.simulator.script import answer, content_seed

if TYPE_CHECKING:
    from runner.simulator.emitters import Emitter, Task
    from runner.simulator.script import Expected

_READ: Final = 64 * 1024
# Answers kept by request: a load test sends one body thousands of times, and building its answer
# (seeded draws, ~40 us) is a tenth of what a simulated stream costs the simulator.
_ANSWERS: Final = 256
_HIDDEN_HEADERS: Final = ("authorization", "x-api-key", "api-key", "x-goog-api-key")


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
        return self.origin + base_path(dialect)


def base_path(dialect: str) -> str:
    """What the dialect's official SDK adds to the origin in its base URL (anthropic: nothing)."""
    emitter = EMITTERS.get(dialect)
    return emitter.base_path if emitter is not None else "/v1"


async def serve_simulator(
    config: SimulatorConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    sock: socket.socket | None = None,
    task_status: trio.TaskStatus[SimulatorHandle] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve every dialect on ``host:port`` (0: an ephemeral port) until cancelled; or on ``sock``, a
    listening socket bound already (``runner.simulator.workers``: one of several on the port)."""
    if sock is None:
        listeners = await trio.open_tcp_listeners(port, host=host)
    else:
        listeners = [trio.SocketListener(trio.socket.from_stdlib_socket(sock))]
        host = sock.getsockname()[0]
    bound = listeners[0].socket.getsockname()[1]
    async with trio.open_nursery() as nursery:
        pacer = Pacer()
        nursery.start_soon(pacer.run)
        simulator = _Simulator(config, ServedLog(), pacer)
        task_status.started(SimulatorHandle(host=host, port=bound, config=config, log=simulator.log))
        await trio.serve_listeners(simulator.connection, listeners)


class _Simulator:
    def __init__(self, config: SimulatorConfig, log: ServedLog, pacer: Pacer) -> None:
        self.config = config
        self.log = log
        self.pacer = pacer  # sends every stream's paced writes from one task
        self.attempts = AttemptCounter()
        self.routes = {emitter.route: emitter for emitter in EMITTERS.values()}
        self.fallback = EMITTERS[FALLBACK]
        # Gemini names the model and the streaming choice in the path: matched, not looked up.
        self.gemini = GeminiEmitter()
        self.answers: OrderedDict[tuple[str, str, bytes], Expected] = OrderedDict()

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
                body = self.fallback.error_body(exc.status)
                await stream.send_all(json_response(exc.status, body, keep_alive=False))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return  # the client went away: normal for timeouts and cancellations

    async def respond(self, stream: trio.SocketStream, request: Request) -> bool:
        """Answer one request; False when the connection must close afterwards."""
        path = request.path.split("?", 1)[0].rstrip("/") or "/"
        if request.method == "GET" and path == "/health":
            await stream.send_all(json_response(200, b'{"status":"ok"}'))
            return request.keep_alive
        if request.method == "GET" and path == "/v1/models":
            listing = models_body(anthropic="anthropic-version" in request.headers)
            await stream.send_all(json_response(200, listing))
            return request.keep_alive
        emitter: Emitter | None = self.routes.get(path)
        route = self.gemini.match(path) if emitter is None else None
        if route is not None:
            emitter = self.gemini
        if emitter is None or request.method != "POST":
            status = 404 if emitter is None else 405
            await stream.send_all(json_response(status, self.fallback.error_body(status)))
            return request.keep_alive
        body = _json(request.body)
        try:
            if route is None:
                task = emitter.read(body)
            else:
                task = self.gemini.read_for(body, model=route[0], stream=route[1])
        except InvalidRequestError as exc:  # the dialect's body, refused as the real API refuses it
            refused = with_message(emitter.error_body(400), str(exc))
            await stream.send_all(json_response(400, refused))
            return request.keep_alive
        if task is None:
            await stream.send_all(json_response(400, emitter.error_body(400)))
            return request.keep_alive
        fingerprint = request.headers.get("x-sim-key") or _fingerprint(emitter.name, task)
        attempt = self.attempts.next(fingerprint)
        plan = self.config.faults
        if "x-sim-faults" in request.headers:
            try:
                plan = parse_faults(request.headers["x-sim-faults"], key="x-sim-faults")
            except ConfigError as exc:
                await stream.send_all(json_response(400, orjson.dumps({"error": {"message": str(exc)}})))
                return request.keep_alive
        fault = plan.choose(attempt, random.Random(f"{self.config.seed}:{fingerprint}:{attempt}:fault"))
        received = time.monotonic()
        self.log.record(
            method=request.method,
            path=path,
            dialect=emitter.name,
            headers={k: v for k, v in request.headers.items() if k not in _HIDDEN_HEADERS},
            body=body,
            fingerprint=fingerprint,
            attempt=attempt,
            fault=str(fault),
            time=trio.current_time(),
        )
        rng = random.Random(f"{self.config.seed}:{fingerprint}:{attempt}:time")
        response_id = f"{emitter.response_id_prefix}{fingerprint}{attempt:04d}"
        self.log.response_started()
        # The answer is a pure function of the task (so of the route and body) and the config.
        key = (emitter.name, path, hashlib.sha1(request.body, usedforsecurity=False).digest())
        try:
            alive = await self.reply(stream, emitter, task, fault, rng, response_id, received, key)
        finally:
            self.log.response_ended()
        return alive and request.keep_alive

    async def reply(
        self,
        stream: trio.SocketStream,
        emitter: Emitter,
        task: Task,
        fault: Fault,
        rng: random.Random,
        response_id: str,
        received: float,
        key: tuple[str, str, bytes],
    ) -> bool:
        """Send the answer as ``fault`` shapes it; False when the connection must close afterwards."""
        if fault.name == "reset":
            # SO_LINGER 0: close() sends RST instead of FIN, a "connection reset by peer".
            stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        if fault.name == "stall" and fault.arg is None:
            await _wait_for_eof(stream)
            return False
        latency = self.config.latency
        if not latency.ttfb.is_zero:
            await trio.sleep(latency.ttfb.sample(rng))
        if fault.status is not None:
            error = emitter.error_body(fault.status, quota=fault.name == "quota", task=task)
            await stream.send_all(json_response(fault.status, error, extra=retry_headers(fault)))
            return True
        expected = self.answer(key, emitter, task)
        ctx = EmitContext(
            rng=rng, chunk=latency.chunk, response_id=response_id, created=int(time.time()), received=received
        )
        if not expected.stream:
            return await _send_whole(
                stream, json_response(200, emitter.response_body(expected, task, ctx)), fault
            )
        frames = emitter.stream_frames(expected, task, self.config, ctx)
        if fault.name == "dribble":
            await _dribble(stream, SSE_HEAD + b"".join(chunk(f.wire) for f in frames) + LAST_CHUNK)
            return True
        return await self.stream(stream, frames, fault, rng, emitter, expected, task, ctx)

    def answer(self, key: tuple[str, str, bytes], emitter: Emitter, task: Task) -> Expected:
        """``script.answer`` for the task, remembered for the latest ``_ANSWERS`` requests."""
        expected = self.answers.pop(key, None)
        if expected is None:
            expected = answer(emitter, task, self.config)
        self.answers[key] = expected  # (re)inserted last: the most recently used
        if len(self.answers) > _ANSWERS:
            self.answers.popitem(last=False)
        return expected

    async def stream(
        self,
        stream: trio.SocketStream,
        frames: list[Frame],
        fault: Fault,
        rng: random.Random,
        emitter: Emitter,
        expected: Expected,
        task: Task,
        ctx: EmitContext,
    ) -> bool:
        """Send the frames paced by the latency model; inject a mid-stream fault at its frame."""
        writes, cut = plan_stream(
            frames,
            fault,
            latency=self.config.latency,
            rng=rng,
            coalesce=self.config.coalesce,
            heartbeat=chunk(emitter.heartbeat),
        )
        if cut is not None:
            writes.append(self.cut_write(cut, fault, emitter, expected, task, ctx))

        def first_token_sent() -> None:
            # Taken just before the write: its syscall runs at once, while a send_all yields before
            # returning and a client on the same loop may read the bytes in between.
            self.log.first_token_sent(ctx.response_id, time.monotonic(), received=ctx.received)

        await self.pacer.play(stream, writes, first_token_sent)
        if cut is None:
            return True
        name = fault.name
        if name == "stall":
            await _wait_for_eof(stream)
            return False
        if name == "heartbeat_stall":  # alive but never another token
            heartbeat = chunk(emitter.heartbeat)
            while True:
                await trio.sleep(self.config.latency.heartbeat)
                await stream.send_all(heartbeat)
        return name != "close_abrupt"

    def cut_write(
        self, cut: Cut, fault: Fault, emitter: Emitter, expected: Expected, task: Task, ctx: EmitContext
    ) -> Write:
        """The write a mid-stream fault makes in place of ``cut.frame``: the unsent frames, then its own
        bytes (none for the stalls, which then wait)."""
        name = fault.name
        tail = b""
        if name == "close_clean":
            tail = LAST_CHUNK
        elif name == "close_abrupt":
            whole = chunk(cut.frame.wire)
            tail = whole[: len(whole) // 2]
        elif name in ("stream_error", "finish_error"):
            miromind = name == "finish_error" or self.config.flavor == "miromind"
            errors = emitter.stream_error(
                miromind=miromind, response_id=ctx.response_id, model=expected.model, task=task
            )
            tail = b"".join(chunk(f.wire) for f in errors) + LAST_CHUNK
        return Write(cut.delay, cut.pending + tail, cut.first_token)


async def _wait_for_eof(stream: trio.SocketStream) -> None:
    while await stream.receive_some(_READ):
        pass


async def _dribble(stream: trio.SocketStream, data: bytes) -> None:
    for i in range(len(data)):
        await stream.send_all(data[i : i + 1])


async def _send_whole(stream: trio.SocketStream, data: bytes, fault: Fault) -> bool:
    """Send a non-streamed response as ``fault`` shapes it; False when the connection must close."""
    if fault.name == "dribble":
        await _dribble(stream, data)
    elif fault.name == "close_abrupt":
        await stream.send_all(data[: len(data) - len(data) // 4])
        return False
    else:
        await stream.send_all(data)
    return True


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def _fingerprint(dialect: str, task: Task) -> str:
    return hashlib.sha256(content_seed(dialect, task.body, 0).encode()).hexdigest()[:16]
