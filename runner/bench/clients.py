"""The processes of ``runner bench``: the simulator, and one process per client that prints one JSON line.

Run as ``python -m runner.bench.clients ROLE ...``. Each client pins itself to its core, streams the
load from the simulator, checks every stream's rebuilt text against what the simulator was asked to
send, and reports CPU (getrusage over the run itself, imports excluded), wall time and peak RSS.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import httpx
import orjson
import trio

from runner.simulator.config import Dist, Latency, SimulatorConfig
from runner.simulator.script import expected_output

if TYPE_CHECKING:
    from collections.abc import Sequence

SIMULATOR_CORE: Final = 0
CLIENT_CORE: Final = 1
MODEL: Final = "bench-model"
MESSAGES: Final = ({"role": "user", "content": "Say something."},)
# The events of an openai-chat stream besides its content chunks: the role chunk, the finish chunk,
# the include_usage chunk and [DONE] (runner.simulator.openai_chat.stream_frames).
EXTRA_EVENTS: Final = 4
# Generous on purpose: a client that falls behind should show up as wall time, not as failures.
TIMEOUT_S: Final = 600.0
_MAX_ERRORS: Final = 5  # error messages carried back per client; the count says the rest


def pin(core: int) -> bool:
    """Pin this process to ``core``; False when the machine has no such core (then nothing is pinned)."""
    if not hasattr(os, "sched_setaffinity") or core >= (os.cpu_count() or 1):
        return False
    os.sched_setaffinity(0, {core})
    return True


def raise_open_files() -> int:
    """Raise the soft limit of open files to the hard limit: 5,000 streams need 5,000 sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def simulator_config(chunks: int, delay_ms: float) -> SimulatorConfig:
    """Exactly ``chunks`` content chunks per stream (one token each), ``delay_ms`` between them."""
    return SimulatorConfig(
        output_tokens=Dist(a=float(chunks)),
        latency=Latency(gap=Dist(a=delay_ms / 1000.0), chunk=Dist(a=1.0)),
    )


def request_body() -> dict[str, Any]:
    """The body every client sends: what the openai-chat dialect builds for the bench case."""
    return {
        "model": MODEL,
        "messages": [dict(message) for message in MESSAGES],
        "stream_options": {"include_usage": True},
        "stream": True,
    }


def expected_text(body: dict[str, Any], chunks: int) -> str:
    """The text the simulator sends for ``body`` (its answer is a pure function of the request)."""
    expected = expected_output("openai-chat", body, simulator_config(chunks, 0.0))
    return expected.choices[0].text


def peak_rss_mib() -> float:
    """This process's peak resident set size (Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass(slots=True)
class Meter:
    """CPU (user + system, every thread of the process) and wall time from ``start()`` on."""

    cpu: float = 0.0
    wall: float = 0.0

    @staticmethod
    def _cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    @classmethod
    def start(cls) -> Meter:
        return cls(cpu=cls._cpu(), wall=time.perf_counter())

    def stop(self) -> tuple[float, float]:
        """(CPU seconds, wall seconds) since ``start()``."""
        return self._cpu() - self.cpu, time.perf_counter() - self.wall


@dataclass(slots=True, kw_only=True)
class ClientReport:
    """What one client process prints: one JSON object on its last stdout line."""

    client: str
    streams: int
    streams_ok: int = 0
    chunks: int = 0  # content chunks of the streams that passed every check
    cpu_s: float = 0.0
    wall_s: float = 0.0
    peak_rss_mib: float = 0.0
    failures: int = 0
    errors: list[str] = field(default_factory=list)

    def fail(self, message: str) -> None:
        self.failures += 1
        if len(self.errors) < _MAX_ERRORS:
            self.errors.append(message)

    def check(self, text: str, content_chunks: int, *, complete: bool, want_text: str, want: int) -> None:
        """Count a stream as ok only if it ended properly with exactly the text and chunks it should."""
        if not complete:
            self.fail(f"stream incomplete after {content_chunks} content chunks")
        elif content_chunks != want:
            self.fail(f"{content_chunks} content chunks, expected {want}")
        elif text != want_text:
            self.fail(f"rebuilt text differs ({len(text)} chars, expected {len(want_text)})")
        else:
            self.streams_ok += 1
            self.chunks += content_chunks

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))


# --- bare httpx + an SSE line decoder, on trio ---------------------------------------------------------


async def _httpx_one(
    client: httpx.AsyncClient, url: str, body: bytes, report: ClientReport, want_text: str, want: int
) -> None:
    # The leanest reasonable httpx client: raw body reads (no decoder stack), lines split on bytes,
    # ``data:`` fields gathered until the blank line that ends an event. The floor runner is held to.
    parts: list[str] = []
    data: list[bytes] = []
    tail = b""
    count = 0
    done = False
    headers = {"content-type": "application/json", "accept": "text/event-stream"}
    async with client.stream("POST", url, content=body, headers=headers) as response:
        if response.status_code != 200:
            report.fail(f"HTTP {response.status_code}")
            return
        async for raw in response.aiter_raw():
            *lines, tail = (tail + raw).split(b"\n")
            for line in lines:
                if line.endswith(b"\r"):
                    line = line[:-1]
                if line.startswith(b"data:"):
                    value = line[5:]
                    data.append(value[1:] if value.startswith(b" ") else value)
                elif not line and data:
                    payload = b"\n".join(data)
                    data = []
                    if payload == b"[DONE]":
                        done = True
                        continue
                    for choice in orjson.loads(payload)["choices"]:
                        content = choice["delta"].get("content")
                        if content:
                            parts.append(content)
                            count += 1
    report.check("".join(parts), count, complete=done, want_text=want_text, want=want)


def run_httpx(port: int, streams: int, chunks: int, concurrency: int) -> ClientReport:
    """N streams through one ``httpx.AsyncClient`` on trio, at most ``concurrency`` at a time."""
    report = ClientReport(client="httpx", streams=streams)
    body = request_body()
    want_text = expected_text(body, chunks)
    raw = orjson.dumps(body)
    url = f"http://127.0.0.1:{port}/v1/chat/completions"

    async def main() -> None:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        timeout = httpx.Timeout(TIMEOUT_S, pool=None)
        limiter = trio.CapacityLimiter(concurrency)
        async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:

            async def one() -> None:
                async with limiter:
                    try:
                        await _httpx_one(client, url, raw, report, want_text, chunks)
                    except httpx.HTTPError as exc:
                        report.fail(f"{type(exc).__name__}: {exc}")

            async with trio.open_nursery() as nursery:
                for _ in range(streams):
                    nursery.start_soon(one)

    meter = Meter.start()
    trio.run(main)
    report.cpu_s, report.wall_s = meter.stop()
    return report


# --- the openai SDK, the way its README shows it ------------------------------------------------------


def run_openai(port: int, streams: int, chunks: int, concurrency: int) -> ClientReport:
    """N streams through ``AsyncOpenAI`` on asyncio, at most ``concurrency`` at a time (a semaphore).

    The only asyncio in the project: this is the baseline users would otherwise write.
    """
    import asyncio

    import openai

    # openai 3.x runs on httpx2, earlier majors on httpx: use whichever its own client is built on.
    sdk_http: Any = sys.modules[openai.DefaultAsyncHttpxClient.__mro__[1].__module__.partition(".")[0]]
    report = ClientReport(client="openai", streams=streams)
    body = request_body()
    want_text = expected_text(body, chunks)

    async def one(client: openai.AsyncOpenAI, semaphore: asyncio.Semaphore) -> None:
        async with semaphore:
            parts: list[str] = []
            count = 0
            finished = False
            try:
                stream = await client.chat.completions.create(
                    model=MODEL,
                    messages=[{"role": "user", "content": MESSAGES[0]["content"]}],
                    stream=True,
                    stream_options={"include_usage": True},
                )
                async for chunk in stream:
                    for choice in chunk.choices:
                        if choice.delta.content:
                            parts.append(choice.delta.content)
                            count += 1
                        if choice.finish_reason is not None:
                            finished = True
            except (openai.OpenAIError, sdk_http.HTTPError) as exc:
                report.fail(f"{type(exc).__name__}: {exc}")
                return
            # The SDK ends the iteration at [DONE] and hides it: a finish_reason is its "complete".
            report.check("".join(parts), count, complete=finished, want_text=want_text, want=chunks)

    async def main() -> None:
        # The SDK's default pool holds 1,000 connections; give it as many as the load asks for.
        limits = sdk_http.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        http_client = openai.DefaultAsyncHttpxClient(limits=limits, timeout=TIMEOUT_S)
        async with openai.AsyncOpenAI(
            base_url=f"http://127.0.0.1:{port}/v1",
            api_key="bench",
            max_retries=0,
            timeout=TIMEOUT_S,
            http_client=http_client,
        ) as client:
            semaphore = asyncio.Semaphore(concurrency)
            await asyncio.gather(*(one(client, semaphore) for _ in range(streams)))

    meter = Meter.start()
    asyncio.run(main())
    report.cpu_s, report.wall_s = meter.stop()
    return report


# --- the simulator ------------------------------------------------------------------------------------


def run_simulator(chunks: int, delay_ms: float) -> None:
    """Serve the bench load on an ephemeral loopback port; print ``{"port": P}`` once bound."""
    from runner.simulator import serve_simulator

    config = simulator_config(chunks, delay_ms)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            handle = await nursery.start(serve_simulator, config)
            print(json.dumps({"port": handle.port}), flush=True)

    trio.run(main)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m runner.bench.clients {simulator|runner|httpx|openai} ...``"""
    parser = argparse.ArgumentParser(prog="python -m runner.bench.clients", description=__doc__)
    parser.add_argument("role", choices=("simulator", "runner", "httpx", "openai"))
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--streams", type=int, default=1)
    parser.add_argument("--chunks", type=int, default=1)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args(argv)
    raise_open_files()
    if args.role == "simulator":
        pin(SIMULATOR_CORE)
        run_simulator(args.chunks, args.delay_ms)
        return
    pin(CLIENT_CORE)
    load = (args.port, args.streams, args.chunks, args.concurrency)
    if args.role == "runner":
        from runner.bench.engine_client import run_runner  # imported before the meter starts

        report = run_runner(*load)
    elif args.role == "httpx":
        report = run_httpx(*load)
    else:
        report = run_openai(*load)
    report.peak_rss_mib = peak_rss_mib()
    sys.stdout.write(report.to_json() + "\n")


if __name__ == "__main__":
    main()
