"""``runner bench``: one load through runner, bare httpx and the openai SDK, side by side on one simulator.

The simulator runs in its own process pinned to core 0; each client runs in its own process pinned to
core 1, one after another, against that same simulator (runner.bench). This module starts
those processes, collects their JSON reports, takes medians over repeats and formats the table.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from runner.bench.peers import PEER_PACKAGES
from runner.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

CLIENTS: Final = ("runner", "httpx", "httpx2", "openai", "litellm", "inspect_ai")
# The clients that run once per --transport; the others bring their own HTTP stack.
TRANSPORT_CLIENTS: Final = ("runner", "httpx")
TARGET_RATIO: Final = 1.2  # runner's CPU per chunk may be at most 1.2x bare httpx's
_START_TIMEOUT_S: Final = 60.0


@dataclass(frozen=True, slots=True, kw_only=True)
class BenchLoad:
    """What every client is asked to stream."""

    streams: int
    chunks: int  # content chunks per stream
    delay_ms: float  # between two content chunks of a stream
    concurrency: int

    @property
    def ideal_s(self) -> float:
        """Wall time at zero client cost: ceil(N/C) waves of streams, each (M-1) gaps of D long.

        The first content chunk follows the headers at once (zero TTFB and TTFT), so a stream of M
        chunks lasts M-1 gaps. Zero when there is no delay: then any wall time is client cost.
        """
        return math.ceil(self.streams / self.concurrency) * (self.chunks - 1) * self.delay_ms / 1000.0

    def args(self) -> list[str]:
        return [
            f"--streams={self.streams}",
            f"--chunks={self.chunks}",
            f"--delay-ms={self.delay_ms:g}",
            f"--concurrency={self.concurrency}",
        ]


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientRow:
    """One client's line of the table: medians over the repeats, worst stream count."""

    client: str
    streams: int
    streams_ok: int
    chunks: int
    cpu_us_per_chunk: float | None
    wall_s: float
    peak_rss_mib: float
    errors: tuple[str, ...] = ()

    @property
    def all_ok(self) -> bool:
        return self.streams_ok == self.streams


@dataclass(frozen=True, slots=True, kw_only=True)
class BenchReport:
    """The whole result: the load, one row per client that ran, and notes (skipped clients)."""

    load: BenchLoad
    repeat: int
    rows: tuple[ClientRow, ...]
    notes: tuple[str, ...] = ()
    pinned: bool = True

    @property
    def all_ok(self) -> bool:
        return all(row.all_ok for row in self.rows)

    def ratio(self, client: str, baseline: str) -> float | None:
        """``client``'s CPU per chunk over ``baseline``'s, when both ran."""
        by_name = {row.client: row.cpu_us_per_chunk for row in self.rows}
        mine, theirs = by_name.get(client), by_name.get(baseline)
        return mine / theirs if mine is not None and theirs else None


@dataclass(slots=True)
class _Samples:
    """Every run of one client (on one transport), before the medians."""

    client: str
    transport: str | None = None  # for TRANSPORT_CLIENTS: --transport of its process
    reports: list[dict[str, object]] = field(default_factory=list)

    @property
    def label(self) -> str:
        """The row's name: ``runner``, ``runner (httpx)``, ``httpx``, ``httpx (runner)``..."""
        default = "runner" if self.client == "runner" else "httpx"
        if self.transport is None or self.transport == default:
            return self.client
        return f"{self.client} ({self.transport})"


def parse_transports(text: str) -> tuple[str, ...]:
    """``runner,httpx`` -> the transports the runner and httpx clients run on, checked, in order."""
    from runner.bench.candidates import TRANSPORTS

    names = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [name for name in names if name not in TRANSPORTS]
    if unknown or not names:
        raise ConfigError(
            f"unknown transport {', '.join(unknown)}" if unknown else "no transport named",
            key="--transport",
            fix=f"a comma-separated list of {', '.join(TRANSPORTS)}",
        )
    return names


def _plan(clients: Sequence[str], transports: Sequence[str], notes: list[str]) -> list[_Samples]:
    """One entry per client, and per transport for the clients that take one; the unavailable skipped."""
    from runner.bench.candidates import is_available

    plan: list[_Samples] = []
    for client in clients:
        if client not in TRANSPORT_CLIENTS:
            plan.append(_Samples(client))
            continue
        for transport in transports:
            if client == "runner" and transport == "httpcore2":
                notes.append("runner on httpcore2 skipped: runner run takes --transport runner or httpx")
            elif not is_available(transport):
                notes.append(f"{client} on {transport} skipped: {transport} is not installed")
            else:
                plan.append(_Samples(client, transport))
    return plan


def parse_clients(text: str) -> tuple[str, ...]:
    """``runner,httpx,openai`` -> the names, checked, in the order given, duplicates dropped."""
    names = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [name for name in names if name not in CLIENTS]
    if unknown or not names:
        raise ConfigError(
            f"unknown client {', '.join(unknown)}" if unknown else "no client named",
            key="--clients",
            fix=f"a comma-separated list of {', '.join(CLIENTS)}",
        )
    return names


def run_bench(
    load: BenchLoad,
    clients: Sequence[str],
    *,
    repeat: int = 1,
    transports: Sequence[str] = ("runner", "httpx"),
    simulator_workers: int = 1,
    echo: Callable[[str], None] = print,
) -> BenchReport:
    """Start the simulator, run each client ``repeat`` times (interleaved), return the medians."""
    notes: list[str] = []
    for name, package in (("openai", "openai"), ("httpx2", "httpx2")):
        if name in clients and importlib.util.find_spec(package) is None:
            notes.append(f"{name} client skipped: {package} is not installed (pip install 'runner[test]')")
            clients = [client for client in clients if client != name]
    for name, package in PEER_PACKAGES.items():  # peers: never in runner's extras, installed by hand
        if name in clients and importlib.util.find_spec(package) is None:
            notes.append(f"{name} client skipped: {package} is not installed (pip install {package})")
            clients = [client for client in clients if client != name]
    pinned = _cores() >= 2
    if not pinned:
        notes.append("fewer than 2 cores: simulator and clients share the CPU, figures are not comparable")
    if simulator_workers > 1:
        where = "core 0" if _cores() <= 2 else "every core but the clients'"
        notes.append(f"simulator: {simulator_workers} worker processes sharing its port, on {where}")
    plan = _plan(clients, transports, notes)
    # As a context manager, Popen also closes the stdout pipe we read the port from.
    with subprocess.Popen(
        [sys.executable, "-m", "runner.bench", "simulator", *load.args(), f"--workers={simulator_workers}"],
        stdout=subprocess.PIPE,
        text=True,
    ) as simulator:
        try:
            port = _read_port(simulator)
            # Interleaved (runner, httpx, openai, runner, ...): drift on a shared machine hits all alike.
            for round_ in range(repeat):
                for entry in plan:
                    echo(f"[{round_ + 1}/{repeat}] {entry.label}: {load.streams} x {load.chunks} chunks ...")
                    entry.reports.append(_run_client(entry, port, load))
        finally:
            simulator.terminate()  # our own child; it serves until told to stop
            try:
                simulator.wait(timeout=10)
            except subprocess.TimeoutExpired:
                simulator.kill()
                simulator.wait()
    rows = tuple(_row(entry, load) for entry in plan)
    return BenchReport(load=load, repeat=repeat, rows=rows, notes=tuple(notes), pinned=pinned)


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _read_port(simulator: subprocess.Popen[str]) -> int:
    assert simulator.stdout is not None
    line = simulator.stdout.readline()  # the simulator prints {"port": P} as soon as it is bound
    if not line:
        raise RuntimeError(f"the bench simulator exited before binding (code {simulator.wait()})")
    port = json.loads(line)["port"]
    assert isinstance(port, int)
    return port


def _run_client(entry: _Samples, port: int, load: BenchLoad) -> dict[str, object]:
    name = entry.client
    command = [sys.executable, "-m", "runner.bench", name, f"--port={port}", *load.args()]
    if entry.transport is not None:
        command.append(f"--transport={entry.transport}")
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = done.stderr.strip().splitlines()[-3:]
        return {
            "client": name,
            "streams": load.streams,
            "crashed": " | ".join(tail) or f"exit {done.returncode}",
        }
    report: dict[str, object] = json.loads(lines[-1])
    return report


def _num(report: dict[str, object], key: str) -> float:
    value = report.get(key, 0)
    return float(value) if isinstance(value, int | float) else 0.0


def _row(samples: _Samples, load: BenchLoad) -> ClientRow:
    reports = samples.reports
    errors: list[str] = []
    for report in reports:
        if "crashed" in report:
            errors.append(f"client process failed: {report['crashed']}")
        raw = report.get("errors")
        if isinstance(raw, list):
            errors.extend(str(e) for e in raw)
        failures = int(_num(report, "failures"))
        if failures > len(raw if isinstance(raw, list) else []):
            errors.append(f"... {failures} failed streams in all")
    per_chunk = [_num(r, "cpu_s") / _num(r, "chunks") * 1e6 for r in reports if _num(r, "chunks")]
    return ClientRow(
        client=samples.label,
        streams=load.streams,
        streams_ok=min(int(_num(r, "streams_ok")) for r in reports),
        chunks=min(int(_num(r, "chunks")) for r in reports),
        cpu_us_per_chunk=statistics.median(per_chunk) if per_chunk else None,
        wall_s=statistics.median(_num(r, "wall_s") for r in reports),
        peak_rss_mib=statistics.median(_num(r, "peak_rss_mib") for r in reports),
        errors=tuple(dict.fromkeys(errors)),
    )


def format_report(report: BenchReport) -> str:
    """The table, the ideal's definition, the runner/httpx ratio and any notes, as printed."""
    load = report.load
    ideal = load.ideal_s
    header = (
        "client",
        "streams ok",
        "chunks",
        "CPU us/chunk",
        "wall s",
        "ideal s",
        "wall/ideal",
        "peak RSS MiB",
    )
    table = [header]
    for row in report.rows:
        table.append(
            (
                row.client,
                f"{row.streams_ok}/{row.streams}",
                f"{row.chunks}",
                "-" if row.cpu_us_per_chunk is None else f"{row.cpu_us_per_chunk:.1f}",
                f"{row.wall_s:.2f}",
                f"{ideal:.2f}",
                f"{row.wall_s / ideal:.2f}x" if ideal > 0 else "-",
                f"{row.peak_rss_mib:.0f}",
            )
        )
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    lines = [
        f"load: {load.streams} streams x {load.chunks} content chunks, {load.delay_ms:g} ms apart, "
        f"concurrency {load.concurrency}; "
        + (f"median of {report.repeat} runs" if report.repeat > 1 else "1 run"),
        "ideal s = ceil(streams / concurrency) x (chunks - 1) x delay: the wall time at zero client cost",
        "",
    ]
    for i, line in enumerate(table):
        lines.append(
            "  ".join(
                cell.ljust(w) if j == 0 else cell.rjust(w)
                for j, (cell, w) in enumerate(zip(line, widths, strict=True))
            )
        )
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    ratio = report.ratio("runner", "httpx")
    if ratio is not None:
        verdict = "meets" if ratio <= TARGET_RATIO else "misses"
        lines.append("")
        lines.append(f"runner / httpx CPU per chunk: {ratio:.2f}x ({verdict} the {TARGET_RATIO:g}x target)")
    for client, stock in (("runner", "runner (httpx)"), ("httpx (runner)", "httpx")):
        ratio = report.ratio(client, stock)
        if ratio is not None:
            lines.append(f"{client} / {stock} CPU per chunk: {ratio:.2f}x (runner's transport / stock httpx)")
    for row in report.rows:
        for error in row.errors:
            lines.append(f"{row.client}: {error}")
    lines.extend(report.notes)
    return "\n".join(lines)
