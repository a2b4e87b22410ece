"""The baselines of ``runner bench``: bare httpx on trio, the openai SDK on asyncio; and the simulator.

``python -m runner.bench ROLE`` starts one of them; runner's own client is ``engine_client``.
"""

from __future__ import annotations

import functools
import json
import sys
from typing import Any

import httpx
import orjson
import trio

from runner.bench.candidates import build_transport
from runner.bench.load import (
    MESSAGES,
    MODEL,
    TIMEOUT_S,
    ClientReport,
    Meter,
    expected_text,
    read_chat_chunks,
    request_body,
    simulator_config,
)

# --- bare httpx + an SSE line decoder, on trio ---------------------------------------------------------


async def _httpx_one(
    client: Any, url: str, body: bytes, report: ClientReport, want_text: str, want: int
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


def run_httpx(
    port: int, streams: int, chunks: int, concurrency: int, *, transport: str = "httpx", http: Any = httpx
) -> ClientReport:
    """N streams through one ``httpx.AsyncClient`` on trio, at most ``concurrency`` at a time.

    ``transport`` names the candidate under it (runner.bench.candidates); ``http`` is the httpx module
    itself, or httpx2 (the reference: its own client and pool, same API).
    """
    name = "httpx2" if http is not httpx else "httpx" if transport == "httpx" else f"httpx ({transport})"
    report = ClientReport(client=name, streams=streams)
    body = request_body()
    want_text = expected_text(body, chunks)
    raw = orjson.dumps(body)
    url = f"http://127.0.0.1:{port}/v1/chat/completions"

    async def main() -> None:
        limits = http.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        timeout = http.Timeout(TIMEOUT_S, pool=None)
        limiter = trio.CapacityLimiter(concurrency)
        if http is httpx and transport != "httpx":
            pool = build_transport(transport, concurrency)
            client = httpx.AsyncClient(transport=pool, timeout=timeout)
        else:
            client = http.AsyncClient(limits=limits, timeout=timeout)
        async with client:

            async def one() -> None:
                async with limiter:
                    try:
                        await _httpx_one(client, url, raw, report, want_text, chunks)
                    except http.HTTPError as exc:
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
            try:
                stream = await client.chat.completions.create(
                    model=MODEL,
                    messages=[{"role": "user", "content": MESSAGES[0]["content"]}],
                    stream=True,
                    stream_options={"include_usage": True},
                )
                text, count, finished = await read_chat_chunks(stream)
            except (openai.OpenAIError, sdk_http.HTTPError) as exc:
                report.fail(f"{type(exc).__name__}: {exc}")
                return
            report.check(text, count, complete=finished, want_text=want_text, want=chunks)

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


def run_simulator(chunks: int, delay_ms: float, workers: int = 1) -> None:
    """Serve the bench load on an ephemeral loopback port; print ``{"port": P}`` once bound.

    ``workers`` > 1: that many processes share the port (``runner.simulator.workers``), forked here
    before any loop starts; they stop when this process ends (``runner bench`` terminates it).
    """
    from runner.simulator.server import serve_simulator
    from runner.simulator.workers import fork_workers, listen_sockets

    config = simulator_config(chunks, delay_ms)
    bound = listen_sockets("127.0.0.1", [0], workers)
    fork_workers([config], bound[1:])
    sock = bound[0][0]

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            handle = await nursery.start(functools.partial(serve_simulator, config, sock=sock))
            print(json.dumps({"port": handle.port}), flush=True)

    trio.run(main)
