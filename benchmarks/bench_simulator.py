"""Is the simulator ever the bottleneck? Chunks/s to a bare socket reader vs. through the runner path.

One simulator process pinned to core 0 (zero latency, one token per event) serves N streams of M
content chunks; a consumer process pinned to core 1 reads them with (a0) a plain epoll loop without
trio that only counts SSE events (the floor of any Python client: what is left of the wall time is
the simulator's and the kernel's), (a) a raw trio socket that only counts SSE events, then (b)
httpx.AsyncClient on trio + runner.wire.sse.SSEDecoder + orjson.loads per event (+ the openai-chat
accumulator when ``runner.wire.dialects.get_dialect`` exists). Target: a >= 3x.
Also prints the simulator's own CPU per event while it serves the raw reader (Linux: /proc), the
figure that bounds many slow streams (``--delay-ms``: a gap between events, as ``runner bench``).

    python benchmarks/bench_simulator.py --streams 200 --chunks 500 --concurrency 50
    python benchmarks/bench_simulator.py --streams 1000 --chunks 50 --delay-ms 20 --concurrency 500 --raw-only

With ``--delay-ms``, each reader's wall time is also given against the ideal, ceil(N / concurrency) x
(M - 1) x delay, as ``runner bench`` gives it: (a0) shows how close any client can get on this machine.
"""

from __future__ import annotations

import argparse
import importlib
import multiprocessing as mp
import os
import select
import socket
import time
from typing import Any

import orjson
import trio

from runner.bench.compare import BenchLoad

REQUEST = {
    "model": "bench",
    "messages": [{"role": "user", "content": "bench"}],
    "stream": True,
    "stream_options": {"include_usage": True},
}


def _pin(core: int) -> None:
    if hasattr(os, "sched_setaffinity") and core < (os.cpu_count() or 1):
        os.sched_setaffinity(0, {core})


def simulator_process(chunks: int, coalesce: bool, delay_ms: float, conn: Any) -> None:
    """Serve a simulator (``delay_ms`` between events) on core 0 and send its port back through ``conn``."""
    from runner.simulator import SimulatorConfig
    from runner.simulator.config import Dist, Latency
    from runner.simulator.server import serve_simulator

    _pin(0)
    latency = Latency(gap=Dist(a=delay_ms / 1000.0))
    config = SimulatorConfig(output_tokens=Dist(a=float(chunks)), coalesce=coalesce, latency=latency)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            handle = await nursery.start(serve_simulator, config)
            conn.send(handle.port)

    trio.run(main)


async def _fan_out(streams: int, concurrency: int, one: Any) -> int:
    total = 0
    limiter = trio.CapacityLimiter(concurrency)

    async def worker() -> None:
        nonlocal total
        async with limiter:
            count = await one()  # not "total += await one()": that reads total before awaiting
            total += count

    async with trio.open_nursery() as nursery:
        for _ in range(streams):
            nursery.start_soon(worker)
    return total


def _request_bytes() -> bytes:
    body = orjson.dumps(REQUEST)
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


def _count_ends(tail: bytes, data: bytes) -> tuple[int, bytes]:
    """Event ends in ``data``; one LF is kept as the tail so a "\n\n" split across reads counts once."""
    joined = tail + data
    return joined.count(b"\n\n"), (joined[-1:] if joined[-1:] == b"\n" and joined[-2:] != b"\n\n" else b"")


def epoll_consumer(port: int, streams: int, concurrency: int, conn: Any) -> None:
    """(a0) A plain epoll loop, no trio: one connection per stream, count events, nothing else.

    What is left of its wall time over the ideal is not any client's doing: the simulator's core
    (each write a loopback TCP send, whose kernel work it pays) and the kernel's.
    """
    _pin(1)
    request = _request_bytes()
    poller = select.epoll()
    open_streams: dict[int, tuple[socket.socket, list[bytes]]] = {}
    started = total = 0

    def start_one() -> None:
        nonlocal started
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(request)  # (blocking: a few hundred bytes into an empty send buffer)
        sock.setblocking(False)
        open_streams[sock.fileno()] = (sock, [b""])
        poller.register(sock.fileno(), select.EPOLLIN)
        started += 1

    start, cpu = time.perf_counter(), time.process_time()
    while started < min(streams, concurrency):
        start_one()
    while open_streams:
        for fd, _flags in poller.poll():
            sock, tail = open_streams[fd]
            data = sock.recv(1 << 16)
            if data:
                ends, tail[0] = _count_ends(tail[0], data)
                total += ends
                continue
            poller.unregister(fd)
            sock.close()
            del open_streams[fd]
            if started < streams:
                start_one()
    conn.send((total, time.perf_counter() - start, time.process_time() - cpu))


def raw_consumer(port: int, streams: int, concurrency: int, conn: Any) -> None:
    """(a) A bare socket reader: one connection per stream, count events, nothing else."""
    _pin(1)
    request = _request_bytes()

    async def one() -> int:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        count = 0
        tail = b""
        async with stream:
            await stream.send_all(request)
            while data := await stream.receive_some(1 << 16):
                ends, tail = _count_ends(tail, data)
                count += ends
        return count

    async def main() -> tuple[int, float, float]:
        start, cpu = time.perf_counter(), time.process_time()
        events = await _fan_out(streams, concurrency, one)
        return events, time.perf_counter() - start, time.process_time() - cpu

    conn.send(trio.run(main))


def runner_consumer(port: int, streams: int, concurrency: int, conn: Any) -> None:
    """(b) The runner client path: httpx on trio, SSEDecoder, orjson per event, accumulator if any."""
    import httpx

    from runner.wire.sse import SSEDecoder

    _pin(1)
    dialects = importlib.import_module("runner.wire.dialects")
    get_dialect = getattr(dialects, "get_dialect", None)
    dialect = get_dialect("openai-chat") if get_dialect is not None else None

    async def main() -> tuple[int, float, float, bool]:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(limits=limits, timeout=60) as client:

            async def one() -> int:
                decoder = SSEDecoder()
                accumulator = dialect.new_accumulator() if dialect is not None else None
                count = 0
                url = f"http://127.0.0.1:{port}/v1/chat/completions"
                async with client.stream("POST", url, json=REQUEST) as response:
                    async for data in response.aiter_raw():
                        for event in decoder.feed(data):
                            count += 1
                            if event.data != "[DONE]":
                                orjson.loads(event.data)
                            if accumulator is not None:
                                accumulator.feed(event)
                return count

            start, cpu = time.perf_counter(), time.process_time()
            events = await _fan_out(streams, concurrency, one)
            return events, time.perf_counter() - start, time.process_time() - cpu, dialect is not None

    conn.send(trio.run(main))


def _cpu_of(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` so far (Linux /proc; None elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _run(target: Any, *args: Any) -> Any:
    parent, child = mp.Pipe()
    process = mp.get_context("spawn").Process(target=target, args=(*args, child))
    process.start()
    result = parent.recv()
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--chunks", type=int, default=500, help="content chunks per stream")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--delay-ms", type=float, default=0.0, help="gap between two events of a stream")
    parser.add_argument(
        "--per-event-writes", action="store_true", help="one send per SSE event (no coalescing)"
    )
    parser.add_argument("--raw-only", action="store_true", help="skip (b), the runner path")
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    server = ctx.Process(
        target=simulator_process,
        args=(args.chunks, not args.per_event_writes, args.delay_ms, child),
        daemon=True,
    )
    server.start()
    try:
        port = parent.recv()
        _run(raw_consumer, port, 4, 4)  # warm up the server's code paths
        load = BenchLoad(
            streams=args.streams, chunks=args.chunks, delay_ms=args.delay_ms, concurrency=args.concurrency
        )
        ideal = load.ideal_s  # `runner bench`'s own ideal, so the two benchmarks' ratios compare

        def against_ideal(wall: float) -> str:
            return f", {wall / ideal:.2f}x the ideal {ideal:.2f} s" if ideal > 0 else ""

        events, wall, cpu = _run(epoll_consumer, port, args.streams, args.concurrency)
        print(
            f"(a0) plain epoll reader: {events} events in {wall:.2f} s{against_ideal(wall)}"
            f" (client cpu {cpu / events * 1e6:.1f} us/event)"
        )
        assert server.pid is not None
        before = _cpu_of(server.pid)
        events, wall, cpu = _run(raw_consumer, port, args.streams, args.concurrency)
        after = _cpu_of(server.pid)
        raw_rate = events / wall
        print(
            f"(a) raw socket reader: {events} events in {wall:.2f} s -> {raw_rate:,.0f} chunks/s"
            f" (client cpu {cpu:.2f} s){against_ideal(wall)}"
        )
        if before is not None and after is not None:
            used = after - before
            print(
                f"simulator: {events / wall:,.0f} events/s to {args.concurrency} streams at a time,"
                f" {used / events * 1e6:.1f} us cpu/event ({used:.2f} s cpu in {wall:.2f} s)"
            )
        if args.raw_only:
            return
        events, wall, cpu, with_dialect = _run(runner_consumer, port, args.streams, args.concurrency)
        runner_rate = events / wall
        path = "httpx + SSEDecoder + orjson" + (" + openai-chat accumulator" if with_dialect else "")
        print(
            f"(b) runner path ({path}): {events} events in {wall:.2f} s -> {runner_rate:,.0f} chunks/s"
            f" ({cpu / events * 1e6:.1f} us cpu/chunk){against_ideal(wall)}"
        )
        print(f"ratio simulator/runner: {raw_rate / runner_rate:.1f}x (target >= 3x)")
    finally:
        server.terminate()  # the simulator serves until killed; it is our own child process
        server.join()


if __name__ == "__main__":
    main()
