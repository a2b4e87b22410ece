"""``runner simulate``, ``bench`` and ``db``: the provider simulator, the client benchmark, the schema."""

from __future__ import annotations

import functools
import sys

import click

from runner.cli.options import db_option, fail, fail_storage
from runner.errors import ConfigError, StorageError
from runner.simulator.config import FLAVORS
from runner.simulator.emitters import names as simulated_dialects


@click.command("simulate")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (keep it loopback).")
@click.option(
    "--port",
    "-p",
    type=click.IntRange(0, 65535),  # a plain int wraps modulo 65536 at bind time: 65537 serves on 1
    default=8765,
    show_default=True,
    help="Port to bind; 0 picks one.",
)
@click.option(
    "--dialect",
    "dialects",
    multiple=True,
    type=click.Choice(simulated_dialects()),
    help="Print the base URL of this dialect only (repeatable); every dialect is served anyway.",
)
@click.option("--faults", default="", help="FAULT SPEC, e.g. '1=http_429:ra=1,http_500@0.02' (see below).")
@click.option("--latency", default="", help="LATENCY SPEC, e.g. 'ttft=0.3,gap=0.02' (see below).")
@click.option(
    "--output-tokens",
    type=click.IntRange(min=1),
    default=None,
    help="Tokens in every answer, one per content event (default: 12 to 40, drawn from the seed).",
)
@click.option(
    "--ttft",
    type=click.FloatRange(min=0),
    default=None,
    help="Seconds from the headers to the first token (same as --latency ttft=S).",
)
@click.option(
    "--gap",
    type=click.FloatRange(min=0),
    default=None,
    help="Seconds between two token events (same as --latency gap=S).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of answers and faults.")
@click.option(
    "--flavor", type=click.Choice(FLAVORS), default="openai", show_default=True, help="openai-chat flavor."
)
@click.option("--reasoning/--no-reasoning", default=False, help="Reason even when the request does not ask.")
@click.option("--cost/--no-cost", default=False, help="Report usage.cost on openai-chat streams.")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Processes serving the port (SO_REUSEPORT), for loads one cannot pace; faults by attempt "
    "number then count per worker.",
)
def simulate(
    host: str,
    port: int,
    dialects: tuple[str, ...],
    faults: str,
    latency: str,
    output_tokens: int | None,
    ttft: float | None,
    gap: float | None,
    seed: int,
    flavor: str,
    reasoning: bool,
    cost: bool,
    workers: int,
) -> None:
    """Serve the built-in provider simulator until Ctrl-C.

    One port speaks openai-chat (POST /v1/chat/completions), anthropic-messages (POST /v1/messages),
    runware (POST /v1 with a JSON array) and openai-responses (POST /v1/responses). Point any client at
    the printed base URLs.

    \b
    LATENCY SPEC: comma-separated KEY=DIST; keys ttfb, ttft, gap (seconds), chunk (tokens per event),
    heartbeat (seconds between keep-alive comments in long pauses). DIST: X, fixed:X, uniform:LO:HI,
    lognormal:MEDIAN:SIGMA, exp:MEAN.

    \b
    FAULT SPEC: comma-separated N=FAULT (attempt N of a request) or FAULT@P (probability P).
    FAULT: ok, http_STATUS[:ra=S|date=S|ms=MS], quota, reset, stall[:K], heartbeat_stall[:K],
    close_clean[:K], close_abrupt[:K], stream_error[:K], finish_error[:K], malformed[:K], dribble
    (K: after K token events). A request header x-sim-faults: SPEC overrides it per request.

    \b
    A known ideal for benchmarking any client: --output-tokens 50 --ttft 0 --gap 0.02 streams 50 content
    events 20 ms apart, so a stream lasts 0.98 s plus what the client itself costs.

    \b
    Example: runner simulate --port 8765 --latency 'ttft=0.3,gap=0.02' --faults 'http_429@0.05'
    """
    import trio

    from runner.simulator import SimulatorConfig
    from runner.simulator.cli import run_simulator, start_workers, stop_workers

    raw: dict[str, object] = {"seed": seed, "flavor": flavor, "reasoning": reasoning, "cost": cost}
    if faults:
        raw["faults"] = faults
    if output_tokens is not None:
        raw["output_tokens"] = str(output_tokens)
    latency = _with_fixed_latency(latency, ttft=ttft, gap=gap)
    if latency:
        raw["latency"] = latency
    try:
        config = SimulatorConfig.from_dict(raw, prefix="simulate")
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from None
    sock, stop = None, None
    if workers > 1:
        try:
            sock, stop = start_workers(config, host, port, workers)
        except (OSError, ValueError) as exc:
            fail(
                f"cannot serve on {host} with {workers} workers: {exc}; pick another --port (0: any free one)"
            )
    try:
        trio.run(run_simulator, config, host, port, dialects or simulated_dialects(), click.echo, sock)
    except* OSError as group:  # binding failed (the port is taken, or the host is not ours)
        reason = _first_leaf(group)
        text = reason.strerror if isinstance(reason, OSError) and reason.strerror else str(reason)
        fail(f"cannot serve on {host}:{port}: {text}; pick another --port (0: any free one)")
    finally:
        if stop is not None:
            stop_workers(stop, workers)
    click.echo("simulator stopped")


def _first_leaf(error: BaseException) -> BaseException:
    # trio delivers a failure inside the nursery wrapped in (possibly nested) exception groups.
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


def _with_fixed_latency(spec: str, **fixed: float | None) -> str:
    """The LATENCY SPEC with ``--ttft`` / ``--gap`` added; a key given both ways is a usage error."""
    given = {item.partition("=")[0].strip() for item in spec.split(",") if item.strip()}
    items = [spec] if spec.strip() else []
    for key, seconds in fixed.items():
        if seconds is None:
            continue
        if key in given:
            raise click.UsageError(f"--{key} and --latency {key}=... both set {key}: give it once")
        items.append(f"{key}={seconds!r}")
    return ",".join(items)


@click.command("bench")
@click.option("--streams", type=click.IntRange(min=1), default=200, show_default=True, help="Streams (N).")
@click.option(
    "--chunks", type=click.IntRange(min=1), default=100, show_default=True, help="Content chunks per stream."
)
@click.option(
    "--delay-ms", type=click.FloatRange(min=0), default=0.0, show_default=True, help="Gap between chunks."
)
@click.option(
    "--concurrency", type=click.IntRange(min=1), default=50, show_default=True, help="Streams in flight."
)
@click.option(
    "--clients", default="runner,httpx,openai", show_default=True, help="Which clients, in this order."
)
@click.option(
    "--transport",
    "transports",
    default="runner,httpx",
    show_default=True,
    help="Transports under the runner and httpx clients, a row each: runner, httpx (stock), httpcore2.",
)
@click.option("--repeat", type=click.IntRange(min=1), default=1, show_default=True, help="Median of K runs.")
@click.option(
    "--simulator-workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Simulator processes sharing its port (more than 2 cores: on all but the clients' core).",
)
def bench_command(
    streams: int,
    chunks: int,
    delay_ms: float,
    concurrency: int,
    clients: str,
    transports: str,
    repeat: int,
    simulator_workers: int,
) -> None:
    """Stream one load through runner, bare httpx and the openai SDK on one simulator; compare their cost.

    The simulator runs pinned to core 0, each client in turn pinned to core 1. Prints CPU per
    content chunk, wall time against the ideal and peak RSS per client, and runner/httpx CPU.
    Exit code 1 when any stream failed its check.

    Example: runner bench --streams 1000 --chunks 200 --concurrency 100 --transport runner,httpx
    """
    from runner.bench.compare import BenchLoad, format_report, parse_clients, parse_transports, run_bench

    try:
        names = parse_clients(clients)
        under = parse_transports(transports)
    except ConfigError as exc:
        fail(str(exc))
    load = BenchLoad(streams=streams, chunks=chunks, delay_ms=delay_ms, concurrency=concurrency)
    echo = functools.partial(click.echo, err=True)
    report = run_bench(
        load, names, repeat=repeat, transports=under, simulator_workers=simulator_workers, echo=echo
    )
    click.echo(format_report(report))
    sys.exit(0 if report.all_ok else 1)


@click.group("db")
def db_group() -> None:
    """Manage the results database.

    Example: runner db upgrade --db postgresql+psycopg://postgres@127.0.0.1/test
    """


@db_group.command("upgrade")
@db_option
def db_upgrade(db_url: str | None) -> None:
    """Create the database or migrate it to the current schema.

    Example: runner db upgrade --db sqlite:///runner.db
    """
    from runner.store.db import display_url, open_database

    try:
        with open_database(db_url) as database:
            click.echo(f"{display_url(database.url)} is at the current schema")
    except StorageError as exc:
        fail_storage(exc, db_url)
