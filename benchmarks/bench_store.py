"""Storage benchmark: 100,000 synthetic results through the real writer into SQLite and PostgreSQL.

Run: .venv/bin/python -m benchmarks.bench_store [--results N] [--backend sqlite|postgresql|both]
Prints results per second and the writer's share of the process CPU (writer worker-thread CPU time
over the whole process's CPU time while results flowed). Target: >= 5,000 results/s into SQLite.
"""

from __future__ import annotations

import argparse
import secrets
import tempfile
import time
from pathlib import Path

import psycopg
import trio

from runner.store import repository
from runner.store.db import open_database
from runner.store.records import AttemptWrite, UnitFinish, WriteItem
from runner.store.writer import Writer, db_limiter
from tests.store.factories import failed_attempt, make_job, make_units, ok_attempt

PG_CONNINFO = "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=3"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
RETRY_EVERY = 20  # one unit in 20 has a failed attempt before its result, as a real run would


async def produce(send: trio.MemorySendChannel[WriteItem], units: list[repository.ClaimedUnit]) -> None:
    """Send one finish per unit (and a failed attempt for some), like the engine's workers would."""
    async with send:
        for unit in units:
            if unit.id % RETRY_EVERY == 0:
                await send.send(
                    AttemptWrite(unit_id=unit.id, attempt=failed_attempt(unit.key), cost_computed=0.00001)
                )
            attempt = ok_attempt(unit.key, 2 if unit.id % RETRY_EVERY == 0 else 1)
            await send.send(
                UnitFinish(unit_id=unit.id, owner="bench", status="ok", attempt=attempt, cost_computed=0.0002)
            )


def bench(url: str, label: str, count: int) -> None:
    """Write ``count`` results into the database at ``url`` and print the figures."""
    with open_database(url) as database, database.session() as session:
        run = repository.create_run(session, make_job(), host="bench", version="0")
        repository.add_units(session, run.id, make_units(count))
        units = repository.claim_units(session, run.id, "bench", limit=count, lease_seconds=3600)
        writer = Writer(database, limiter=db_limiter(database))

        async def main() -> None:
            send, receive = trio.open_memory_channel[WriteItem](1000)
            async with trio.open_nursery() as nursery:
                await nursery.start(writer.run, receive)
                nursery.start_soon(produce, send, units)

        cpu0, wall0 = time.process_time(), time.perf_counter()
        trio.run(main)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        counts = repository.unit_counts(session, run.id)
    assert counts["ok"] == count, counts
    stats = writer.stats
    print(
        f"{label:<11} {count:>7} results in {wall:6.2f} s = {count / wall:8.0f} results/s;"
        f" {stats.batches} batches, {stats.attempts} attempts;"
        f" process CPU {cpu:.2f} s, writer thread CPU {stats.thread_cpu_s:.2f} s"
        f" ({100 * stats.thread_cpu_s / cpu:.0f}% of the process)"
    )


def main() -> None:
    """Parse arguments and run the chosen backends."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results", type=int, default=100_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            bench(f"sqlite:///{Path(tmp) / 'bench.db'}", "sqlite", args.results)
    if args.backend in ("postgresql", "both"):
        schema = f"bench_{secrets.token_hex(4)}"
        with psycopg.connect(PG_CONNINFO, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        try:
            bench(PG_URL.format(schema=schema), "postgresql", args.results)
        finally:
            with psycopg.connect(PG_CONNINFO, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


if __name__ == "__main__":
    main()
