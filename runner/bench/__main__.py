"""``python -m runner.bench ROLE ...``: one process of ``runner bench`` (the simulator, or one client).

Clients report one JSON line on stdout. This and the CLI are the only places in runner that call
``trio.run`` (and, for the openai SDK baseline, ``asyncio.run``): each role is its own process.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from runner.bench.candidates import TRANSPORTS
from runner.bench.clients import run_httpx, run_openai, run_simulator
from runner.bench.compare import CLIENTS
from runner.bench.load import CLIENT_CORE, peak_rss_mib, pin, pin_simulator, raise_open_files

if TYPE_CHECKING:
    from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the role and the load, pin to the role's core, run it, print the client's report."""
    parser = argparse.ArgumentParser(prog="python -m runner.bench", description=__doc__)
    parser.add_argument("role", choices=("simulator", *CLIENTS))
    parser.add_argument("--transport", choices=TRANSPORTS, default="runner")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--streams", type=int, default=1)
    parser.add_argument("--chunks", type=int, default=1)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1, help="simulator processes sharing its port")
    args = parser.parse_args(argv)
    raise_open_files()
    if args.role == "simulator":
        pin_simulator(args.workers)
        run_simulator(args.chunks, args.delay_ms, args.workers)
        return
    pin(CLIENT_CORE)
    load = (args.port, args.streams, args.chunks, args.concurrency)
    if args.role == "runner":
        from runner.bench.engine_client import run_runner  # imported before the meter starts

        if args.transport == "httpcore2":
            parser.error("the runner client runs on --transport runner or httpx")
        report = run_runner(*load, transport=args.transport)
    elif args.role == "httpx":
        report = run_httpx(*load, transport=args.transport)
    elif args.role == "httpx2":
        import httpx2  # the reference: httpx's successor, its own pool (httpcore2)

        report = run_httpx(*load, http=httpx2)
    elif args.role == "litellm":
        from runner.bench.peers import run_litellm

        report = run_litellm(*load)
    elif args.role == "inspect_ai":
        from runner.bench.peers import run_inspect_ai

        report = run_inspect_ai(*load)
    else:
        report = run_openai(*load)
    report.peak_rss_mib = peak_rss_mib()
    sys.stdout.write(report.to_json() + "\n")


if __name__ == "__main__":
    main()
