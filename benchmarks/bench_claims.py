"""Claim throughput against run size: claiming, renewing and finishing must cost the same at 1k and 1M units.

Run: .venv/bin/python -m benchmarks.bench_claims [--sizes 1000,100000,1000000] [--db URL] [--plan 1000000]
For each size, a run of that many units (one provider) is stored, then units are claimed 50 at a time,
their leases renewed and the units finished (``status = 'ok'`` by id, as the writer does), for
``--sample`` units at the start of the run and ``--sample`` units at its end (everything before them
marked done in one statement), and units/s is printed for both. ``--db`` names a PostgreSQL database
(default: a fresh SQLite file per size). ``--plan N`` then times ``runner run JOB --yes`` planning an
N-unit job (until the run is ``running``: every unit stored), and stops it.
"""

from __future__ import annotations

import argparse
import signal
import tempfile
import time
from pathlib import Path

import trio
from sqlalchemy import update

from runner.job.plan import Unit
from runner.spec import CaseSpec, JobSpec, ProviderSpec
from runner.store import repository
from runner.store.db import Database, open_database
from runner.store.models import Base
from tests.jobfile import repeats_job
from tests.run.processes import RunState, start_runner, wait_for

UNITS = Base.metadata.tables["units"]
BATCH = 50


def _store(database: Database, size: int) -> str:
    job = JobSpec(
        name="bench-claims",
        providers=(ProviderSpec(name="p", dialect="openai-chat", base_url="http://x", model="m"),),
        cases=(CaseSpec(id="c", messages=({"role": "user", "content": "hi"},)),),
    )
    with database.session() as session:
        run_id = repository.create_run(session, job, host="h", version="bench").id
        step = 20_000
        for start in range(0, size, step):
            units = [
                Unit(key=f"p/c/{i}", provider="p", case_id="c", repeat=i, request_hash=f"{i:064d}")
                for i in range(start, min(size, start + step))
            ]
            repository.add_units(session, run_id, units)
    return run_id


def _work(database: Database, run_id: str, count: int) -> float:
    """Claim, renew and finish ``count`` units, ``BATCH`` at a time; units/s."""
    started = time.perf_counter()
    done = 0
    with database.session() as session:
        while done < count:
            claimed = repository.claim_units(
                session, run_id, "bench", limit=BATCH, lease_seconds=60, provider="p"
            )
            if not claimed:
                break
            repository.renew_leases(session, run_id, "bench", lease_seconds=60)
            with database.engine.begin() as conn:
                for unit in claimed:
                    conn.execute(
                        update(UNITS).where(UNITS.c.id == unit.id).values(status="ok", lease_owner=None)
                    )
            repository.any_outstanding(session, run_id, excluding_owner="bench")
            done += len(claimed)
    return done / (time.perf_counter() - started)


def _skip_to_end(database: Database, run_id: str, keep: int) -> None:
    with database.engine.begin() as conn:
        last = conn.execute(
            UNITS.select()
            .with_only_columns(UNITS.c.id)
            .where(UNITS.c.run_id == run_id)
            .order_by(UNITS.c.id.desc())
            .offset(keep - 1)
            .limit(1)
        ).scalar_one()
        conn.execute(update(UNITS).where(UNITS.c.run_id == run_id, UNITS.c.id < last).values(status="ok"))


def measure(url: str, size: int, sample: int) -> None:
    with open_database(url) as database:
        began = time.perf_counter()
        run_id = _store(database, size)
        stored = time.perf_counter() - began
        count = min(sample, size // 2)
        first = _work(database, run_id, count)
        _skip_to_end(database, run_id, count)
        last = _work(database, run_id, count)
    print(
        f"{database.engine.dialect.name:10s} {size:>9,} units (stored in {stored:5.1f} s):"
        f" {first:7.0f} units/s at the start, {last:7.0f} units/s at the end ({last / first:.2f}x)"
    )


async def plan(url: str, workdir: Path, units: int) -> None:
    """Seconds from starting ``runner run --yes`` to the run being ``running`` (all units stored)."""
    job = workdir / "plan.toml"
    job.write_text(repeats_job("bench-plan", units))
    with open_database(url) as database:
        state = RunState(database)
        before = set(state.run_ids())
        started = time.monotonic()
        async with trio.open_nursery() as nursery:
            process = await start_runner(
                nursery, "run", str(job), "--db", url, "--yes", "--report", "-", cwd=workdir
            )

            def planned() -> bool:
                new = set(state.run_ids()) - before
                return bool(new) and state.run_status(next(iter(new))) != "planning"

            await wait_for(planned, within=600, interval=0.2)
            seconds = time.monotonic() - started
            process.send_signal(signal.SIGINT)
            await process.wait(120)
    print(
        f"plan: {units:,} units stored by `runner run --yes` in {seconds:.1f} s"
        f" ({database.engine.dialect.name})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,100000,1000000")
    parser.add_argument("--sample", type=int, default=2000, help="units worked at the start and at the end")
    parser.add_argument("--db", default=None, help="a PostgreSQL URL (default: a fresh SQLite file per size)")
    parser.add_argument("--plan", type=int, default=0, help="also time planning this many units")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for size in (int(s) for s in options.sizes.split(",")):
            measure(options.db or f"sqlite:///{tmp}/claims-{size}.db", size, options.sample)
        if options.plan:
            trio.run(plan, options.db or f"sqlite:///{tmp}/plan.db", Path(tmp), options.plan)


if __name__ == "__main__":
    main()
