"""How honest is the TTFT runner stores? Stored TTFT against the simulator's script and its own send log.

Runs N streams through the whole engine (``open_run`` + ``execute_job``, SQLite, as ``runner run``) against
a simulator with a fixed TTFT, then reports per stream:

- the simulator's TTFT as delivered: from reading a request to sending its first token
  (``ServedLog.first_token_delay``), p50 / p99, against the configured TTFT: the simulator's own
  honesty, which runner's load must not move;
- the TTFT runner stored (``attempts.first_answer_s``): p50 / p99, against the configured TTFT (it
  also holds runner's own time to get a connection and send the request);
- head -> token: ``first_answer_s - headers_s``, the script's TTFT plus how late the simulator woke
  plus how much later runner read the token than the head;
- fidelity: |runner's first-token instant - the simulator's send instant of that token| p50 / p99 / max,
  both on this machine's monotonic clock. The simulator logs its send instant per response id
  (``ServedLog.first_token_at``), which runner stores as ``results.completion_id``. runner stores an
  attempt's start as wall time (``attempts.started_at``) and its TTFT as a monotonic offset from that
  start, so the start is brought onto the monotonic clock with ``time.time() - time.monotonic()``,
  read before and after the run (their drift is printed: it bounds the error of that step);
- the loop lag runner measured during the run (``runner.run.lag``).

How runner dates the first token (``runner.run.stream``): over plain TCP on Linux, by when the kernel
received its bytes, not when the busy loop read them. The transport reads the head and each body read up
to the first answer token with recvmsg and ``SO_TIMESTAMPNS`` (``runner.http.stamp``), and a thread of its
own (``runner.http.watch``) peeks at the first unread segment as it arrives, because TCP merges segments
queued unread and keeps the newest stamp. That thread needs the GIL for each peek: ``runner run`` (and
this bench) shorten CPython's switch interval to 1 ms (``runner.run.process.SWITCH_INTERVAL_S``), or it
waited 5-29 ms behind the busy loop, past a 20 ms token gap. What is left of the fidelity error is a
stall longer than a token gap: a long garbage collection, or no core for the thread (other load).
Figures of one sitting (2 cores shared with the simulator and other work, load 0.4-2.4; ``--streams
1000``; "before" is this bench on main, alternated with "after" per row), p50 / p99 / max in ms::

    C     before                   after
    32     0.29 /   3.29 /   9.69   0.01 /   0.06 /   0.33
    250    2.71 /  39.32 /  39.35   0.01 /   0.07 /  22.44
    1000  54.00 /  94.54 / 195.15   0.01 /   0.04 /   0.21
    1000  21.33 / 412.61 / 412.76   0.01 /   0.09 /  21.68
    1000  69.14 / 255.30 / 278.95   0.01 / 329.06 / 332.97  (the load rose to 2.4 here)

``--simulator loop`` serves the simulator from runner's own trio loop (how ``runner run`` served
``[providers.simulator]`` before), ``process`` from a process of its own (how it is served now:
``runner.simulator.process``; here a multiprocessing child of the bench's own, which can hand the
send log back), ``thread`` from a trio loop of its own in a worker thread (tried and dropped: it
shares runner's GIL). Figures move a lot with the machine's load: compare rows of one run.

    python benchmarks/bench_timing.py --streams 1000 --concurrency 32 250 1000 --simulator process
"""

from __future__ import annotations

import argparse
import functools
import gc
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from runner.bench.engine_client import bench_job
from runner.bench.load import raise_open_files
from runner.run.planning import open_run
from runner.run.process import SWITCH_INTERVAL_S
from runner.run.service import RunOptions, execute_job
from runner.simulator.config import Dist, Latency, SimulatorConfig
from runner.simulator.server import serve_simulator
from runner.store import repository
from runner.store.db import Database, open_database

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from runner.run.summary import RunSummary
    from runner.simulator.log import ServedLog

# response id -> (first token's send instant, seconds from reading the request to that send)
SendTimes = Callable[[list[str]], Awaitable[dict[str, tuple[float, float]]]]


def _send_log(log: ServedLog, ids: list[str]) -> dict[str, tuple[float, float]]:
    found = {}
    for i in ids:
        at, delay = log.first_token_at(i), log.first_token_delay(i)
        if at is not None and delay is not None:
            found[i] = (at, delay)
    return found


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _wall_minus_monotonic() -> float:
    return time.time() - time.monotonic()


async def _serve_in_loop(
    config: SimulatorConfig, *, task_status: trio.TaskStatus[tuple[int, SendTimes]] = trio.TASK_STATUS_IGNORED
) -> None:
    """The old way: the simulator's tasks on runner's own trio loop."""
    async with trio.open_nursery() as nursery:
        handle = await nursery.start(serve_simulator, config)

        async def times(ids: list[str]) -> dict[str, tuple[float, float]]:
            return _send_log(handle.log, ids)

        task_status.started((handle.port, times))


async def _serve_in_thread(
    config: SimulatorConfig, *, task_status: trio.TaskStatus[tuple[int, SendTimes]] = trio.TASK_STATUS_IGNORED
) -> None:
    """Tried and dropped: a trio loop of its own in a worker thread (it shares runner's GIL)."""
    parent = trio.lowlevel.current_trio_token()
    ready = trio.Event()
    box: dict[str, Any] = {}

    async def child() -> None:
        async with trio.open_nursery() as nursery:
            box["handle"] = await nursery.start(serve_simulator, config)
            box["token"] = trio.lowlevel.current_trio_token()
            box["scope"] = nursery.cancel_scope
            parent.run_sync_soon(ready.set)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            functools.partial(trio.to_thread.run_sync, trio.run, child, limiter=trio.CapacityLimiter(1))
        )
        await ready.wait()
        handle = box["handle"]

        async def times(ids: list[str]) -> dict[str, tuple[float, float]]:
            return _send_log(handle.log, ids)

        task_status.started((handle.port, times))
        try:
            await trio.sleep_forever()
        finally:
            box["token"].run_sync_soon(box["scope"].cancel)


def _simulator_process(config: SimulatorConfig, conn: Connection) -> None:
    """A child process: serve, send the port, answer one list of response ids with their send times."""

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            handle = await nursery.start(serve_simulator, config)
            conn.send(handle.port)
            ids = await trio.to_thread.run_sync(conn.recv)
            conn.send(_send_log(handle.log, ids))
            nursery.cancel_scope.cancel()

    trio.run(main)


async def _serve_in_process(
    config: SimulatorConfig, *, task_status: trio.TaskStatus[tuple[int, SendTimes]] = trio.TASK_STATUS_IGNORED
) -> None:
    """The new way (as runner.simulator.process serves a job's simulator): a process of its own."""
    parent, child = mp.get_context("spawn").Pipe()
    process = mp.get_context("spawn").Process(target=_simulator_process, args=(config, child), daemon=True)
    process.start()
    try:
        port = await trio.to_thread.run_sync(parent.recv)

        async def times(ids: list[str]) -> dict[str, tuple[float, float]]:
            parent.send(ids)
            answer: dict[str, tuple[float, float]] = await trio.to_thread.run_sync(parent.recv)
            return answer

        task_status.started((port, times))
        await trio.sleep_forever()
    finally:
        process.terminate()
        process.join(5)


SERVE = {"loop": _serve_in_loop, "thread": _serve_in_thread, "process": _serve_in_process}


async def _run(args: argparse.Namespace, database: Database) -> dict[str, Any]:
    config = SimulatorConfig(
        latency=Latency(ttft=Dist(a=args.ttft), gap=Dist(a=args.gap)),
        output_tokens=Dist(a=float(args.tokens)),
    )
    async with trio.open_nursery() as nursery:
        port, send_times = await nursery.start(SERVE[args.simulator], config)
        job = bench_job(port, args.streams, args.concurrency)
        options = RunOptions(display="quiet", concurrency=args.concurrency)
        run, job = await trio.to_thread.run_sync(open_run, database, job, options)
        before = _wall_minus_monotonic()
        summary: RunSummary = await execute_job(database, run, job, options, api_keys={})
        after = _wall_minus_monotonic()
        units = await trio.to_thread.run_sync(_read_units, database, run.id)
        sent = await send_times([u.completion_id for u in units if u.completion_id is not None])
        nursery.cancel_scope.cancel()
    return _measure(units, sent, summary, (before + after) / 2, after - before)


@dataclass(frozen=True, slots=True)
class _Stored:
    """What runner stored of one unit's (last) attempt, with its start on the wall clock."""

    started: float
    headers_s: float | None
    ttft_s: float | None
    completion_id: str | None


def _read_units(database: Database, run_id: str) -> list[_Stored]:
    out: list[_Stored] = []
    with database.session() as session:
        for unit in repository.iter_units(session, run_id):
            if not unit.attempts:
                continue
            attempt = unit.attempts[-1]
            started = attempt.started_at
            if started.tzinfo is None:  # SQLite hands back UTC without its zone
                started = started.replace(tzinfo=UTC)
            completion_id = unit.completion.id if unit.completion is not None else None
            out.append(_Stored(started.timestamp(), attempt.headers_s, attempt.first_answer_s, completion_id))
    return out


def _measure(
    units: list[_Stored],
    sent: dict[str, tuple[float, float]],
    summary: RunSummary,
    offset: float,
    drift: float,
) -> dict[str, Any]:
    stored = [u.ttft_s for u in units if u.ttft_s is not None]
    # From the response head to the first token as runner saw them: the script's TTFT, plus how late
    # the simulator woke, plus how much later runner read the token than the head.
    after_head = [u.ttft_s - u.headers_s for u in units if u.ttft_s is not None and u.headers_s is not None]
    fidelity = [
        u.started - offset + u.ttft_s - sent[u.completion_id][0]
        for u in units
        if u.ttft_s is not None and u.completion_id in sent
    ]
    lag = summary.loop_lag
    return {
        "streams": len(stored),
        "unmatched": len(units) - len(fidelity),
        "ttft_p50": _quantile(stored, 0.5),
        "ttft_p99": _quantile(stored, 0.99),
        "sim_p50": _quantile([delay for _, delay in sent.values()], 0.5),
        "sim_p99": _quantile([delay for _, delay in sent.values()], 0.99),
        "head_p50": _quantile(after_head, 0.5),
        "head_p99": _quantile(after_head, 0.99),
        "fid_p50": _quantile([abs(d) for d in fidelity], 0.5),
        "fid_p99": _quantile([abs(d) for d in fidelity], 0.99),
        "fid_max": max(abs(d) for d in fidelity),
        "fid_signed_median": statistics.median(fidelity),
        "drift": drift,
        "lag": lag.describe() if lag is not None else "not measured",
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1000], help="one run per value")
    parser.add_argument("--ttft", type=float, default=0.06, help="the simulator's TTFT, seconds")
    parser.add_argument("--gap", type=float, default=0.02, help="between tokens, seconds")
    parser.add_argument("--tokens", type=int, default=20, help="content chunks per stream")
    parser.add_argument("--simulator", choices=tuple(SERVE), nargs="+", default=["loop", "process"])
    args = parser.parse_args()
    raise_open_files()
    gc.freeze()  # as `runner run` does (runner.run.process.run_until_signalled)
    sys.setswitchinterval(SWITCH_INTERVAL_S)  # likewise: the arrival watch's GIL waits
    print(
        f"{args.streams} streams, TTFT {args.ttft * 1000:g} ms, {args.tokens} chunks "
        f"{args.gap * 1000:g} ms apart; all figures in ms"
    )
    print(
        "simulator  C     simulator's TTFT p50/p99   stored TTFT p50/p99   head->token p50/p99"
        "   |runner - simulator| p50/p99/max  (median signed)  loop lag"
    )
    for concurrency in args.concurrency:
        for simulator in args.simulator:
            one = argparse.Namespace(**{**vars(args), "concurrency": concurrency, "simulator": simulator})
            with (
                tempfile.TemporaryDirectory(prefix="bench-timing-") as tmp,
                open_database(f"sqlite:///{Path(tmp) / 'timing.db'}") as database,
            ):
                r = trio.run(functools.partial(_run, one, database))
            ms = {k: v * 1000 for k, v in r.items() if isinstance(v, float)}
            note = f"  ({r['unmatched']} unmatched)" if r["unmatched"] else ""
            note += f"  clock drift {ms['drift']:.3f}" if abs(r["drift"]) > 1e-4 else ""
            print(
                f"{simulator:<9}  {concurrency:<5} {ms['sim_p50']:7.1f} / {ms['sim_p99']:7.1f}            "
                f"{ms['ttft_p50']:7.1f} / {ms['ttft_p99']:7.1f}       "
                f"{ms['head_p50']:6.1f} / {ms['head_p99']:6.1f}      "
                f"{ms['fid_p50']:6.2f} / {ms['fid_p99']:6.2f} / {ms['fid_max']:6.2f}"
                f"      ({ms['fid_signed_median']:+.2f})      {r['lag']}{note}"
            )


if __name__ == "__main__":
    main()
