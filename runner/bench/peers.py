"""Peers of runner as optional ``runner bench`` clients: each runs only where its package is installed.

None is a dependency of runner or of its test extras: ``runner bench`` skips a missing one with a note.
Checked against the package index (``pip download``): guidellm 0.8, litellm 1.110 and inspect_ai 0.3
all download. guidellm's install pulls in torch and CUDA (gigabytes) and it drives its own load
rather than this bench's N streams at concurrency C: not a client here. litellm's
``acompletion(stream=True)`` and inspect_ai's ``Model.generate(on_stream=...)`` stream chunk by chunk as
the other clients do. promptfoo is an npm package (Node), not a Python client.
"""

from __future__ import annotations

import asyncio
import importlib
import os
from typing import TYPE_CHECKING, Any, Final

from runner.bench.load import (
    MESSAGES,
    MODEL,
    TIMEOUT_S,
    ClientReport,
    Meter,
    expected_text,
    read_chat_chunks,
    request_body,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

# Where each peer client's package comes from, for the note when it is missing.
PEER_PACKAGES: Final = {"litellm": "litellm", "inspect_ai": "inspect_ai"}


def run_litellm(port: int, streams: int, chunks: int, concurrency: int) -> ClientReport:
    """N streams through ``litellm.acompletion(stream=True)`` on asyncio, ``concurrency`` at a time."""
    # Its price map is bundled: without this, importing litellm fetches it over the network.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    litellm: Any = importlib.import_module("litellm")  # Any: its types need not be installed
    litellm.telemetry = False
    report = ClientReport(client="litellm", streams=streams)
    want_text = expected_text(request_body(), chunks)

    async def one(semaphore: asyncio.Semaphore) -> None:
        async with semaphore:
            try:
                response = await litellm.acompletion(
                    model=f"openai/{MODEL}",
                    api_base=f"http://127.0.0.1:{port}/v1",
                    api_key="bench",
                    messages=[{"role": "user", "content": MESSAGES[0]["content"]}],
                    stream=True,
                    stream_options={"include_usage": True},
                    timeout=TIMEOUT_S,
                    num_retries=0,
                )
                text, count, finished = await read_chat_chunks(response)
            except Exception as exc:  # litellm maps every failure onto its own exception types
                report.fail(f"{type(exc).__name__}: {exc}")
                return
            report.check(text, count, complete=finished, want_text=want_text, want=chunks)

    return _metered(report, one, concurrency)


def run_inspect_ai(port: int, streams: int, chunks: int, concurrency: int) -> ClientReport:
    """N streams through inspect_ai's ``Model.generate(on_stream=...)`` on asyncio, ``concurrency`` at a time.

    inspect_ai's own way to call one model as a library (an eval would add its task, scorer and log
    around the same call). Its ``openai-api`` provider speaks chat completions to any base URL;
    ``on_stream`` is what makes it stream, and each text event is one content chunk.
    """
    inspect_model: Any = importlib.import_module("inspect_ai.model")  # Any: optional, untyped here
    report = ClientReport(client="inspect_ai", streams=streams)
    want_text = expected_text(request_body(), chunks)
    config = inspect_model.GenerateConfig(max_retries=0, timeout=int(TIMEOUT_S), max_connections=concurrency)
    # inspect_ai reads the key and base URL of an ``openai-api/<service>/<model>`` model from env vars.
    os.environ["BENCH_API_KEY"] = "bench"
    os.environ["BENCH_BASE_URL"] = f"http://127.0.0.1:{port}/v1"
    model = inspect_model.get_model(f"openai-api/bench/{MODEL}", config=config)

    async def one(semaphore: asyncio.Semaphore) -> None:
        async with semaphore:
            count = 0

            async def on_stream(event: Any) -> None:
                nonlocal count
                if event.type == "text" and event.text:
                    count += 1

            try:
                output = await model.generate(MESSAGES[0]["content"], on_stream=on_stream)
            except Exception as exc:  # inspect_ai raises its providers' exception types
                report.fail(f"{type(exc).__name__}: {exc}")
                return
            if output.error:
                report.fail(f"error: {output.error}")
                return
            complete = output.stop_reason == "stop"
            report.check(output.completion, count, complete=complete, want_text=want_text, want=chunks)

    return _metered(report, one, concurrency)


def _metered(
    report: ClientReport, one: Callable[[asyncio.Semaphore], Awaitable[None]], concurrency: int
) -> ClientReport:
    """Run ``one`` for each of the report's streams on asyncio, ``concurrency`` at a time; meter it."""

    async def main() -> None:
        semaphore = asyncio.Semaphore(concurrency)
        await asyncio.gather(*(one(semaphore) for _ in range(report.streams)))

    meter = Meter.start()
    asyncio.run(main())
    report.cpu_s, report.wall_s = meter.stop()
    return report
