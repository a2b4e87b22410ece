"""What every ``runner bench`` process shares: the load's request, its expected text, and the meters.

Each client process pins itself to its core, streams the load from the simulator, checks every stream's
rebuilt text against what the simulator was asked to send, and reports CPU (getrusage over the run
itself, imports excluded), wall time and peak RSS as one ``ClientReport``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from runner.simulator.config import Dist, Latency, SimulatorConfig
from runner.simulator.script import expected_output

if TYPE_CHECKING:
    from collections.abc import AsyncIterable

SIMULATOR_CORE: Final = 0
CLIENT_CORE: Final = 1
MODEL: Final = "bench-model"
MESSAGES: Final = ({"role": "user", "content": "Say something."},)
# The events of an openai-chat stream besides its content chunks: the role chunk, the finish chunk,
# the include_usage chunk and [DONE] (the openai-chat emitter in runner/simulator/emitters/openai_chat.py).
EXTRA_EVENTS: Final = 4
# Generous on purpose: a client that falls behind should show up as wall time, not as failures.
TIMEOUT_S: Final = 600.0
_MAX_ERRORS: Final = 5  # error messages carried back per client; the count says the rest


def pin_simulator(workers: int) -> None:
    """One simulator process: core 0. Several: every core but the clients' (on two cores, that is
    still core 0 alone: more workers then add no CPU, only processes)."""
    cores = os.cpu_count() or 1
    if workers == 1 or cores <= 2 or not hasattr(os, "sched_setaffinity"):
        pin(SIMULATOR_CORE)
        return
    os.sched_setaffinity(0, set(range(cores)) - {CLIENT_CORE})


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


async def read_chat_chunks(chunks: AsyncIterable[Any]) -> tuple[str, int, bool]:
    """(text, content chunks, finished) from OpenAI-shaped chat chunks, read the way an SDK user's loop does.

    The peers hide ``[DONE]``: a ``finish_reason`` is their "complete".
    """
    parts: list[str] = []
    finished = False
    async for chunk in chunks:
        for choice in chunk.choices:
            if choice.delta.content:
                parts.append(choice.delta.content)
            if choice.finish_reason is not None:
                finished = True
    return "".join(parts), len(parts), finished


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
