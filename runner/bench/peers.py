"""Peers of runner as optional ``runner bench`` clients: each runs only where its package is installed.

None is a dependency of runner or of its test extras: ``runner bench`` skips a missing one with a note.
Checked against the package index (``pip download``): guidellm 0.8, litellm 1.110 and inspect_ai 0.3
all download. guidellm's install pulls in torch and CUDA (gigabytes) and it drives its own load
rather than this bench's N streams at concurrency C; inspect_ai's model calls run inside its eval
framework; neither is a client here yet. litellm's ``acompletion(stream=True)`` streams chunk by
chunk as the other clients do. promptfoo is an npm package, not tried.
"""

from __future__ import annotations

import importlib
import os
from typing import Any, Final

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

# Where each peer client's package comes from, for the note when it is missing.
PEER_PACKAGES: Final = {"litellm": "litellm"}


def run_litellm(port: int, streams: int, chunks: int, concurrency: int) -> ClientReport:
    """N streams through ``litellm.acompletion(stream=True)`` on asyncio, ``concurrency`` at a time."""
    import asyncio

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

    async def main() -> None:
        semaphore = asyncio.Semaphore(concurrency)
        await asyncio.gather(*(one(semaphore) for _ in range(streams)))

    meter = Meter.start()
    asyncio.run(main())
    report.cpu_s, report.wall_s = meter.stop()
    return report
