"""Soak benchmark: one long `runner run` with injected faults; nothing lost, nothing twice, memory flat.

Run: .venv/bin/python -m benchmarks.bench_soak [--units 100000] [--db URL] [--faults 0.05] [--sample 10000]
The job has two simulated providers (openai-chat and anthropic-messages, no latency, tiny answers) and
``--units`` units in all. Each attempt gets a fault with probability ``--faults`` in all, spread over
the kinds a night brings: 5xx, 429 with a short Retry-After, reset connections, abrupt and clean
early closes, in-stream errors and malformed chunks. `runner run` is a real process on a fresh SQLite
file (or a fresh PostgreSQL database when ``--db`` is a postgresql:// server URL: the benchmark creates
``runner_soak_<pid>`` there and drops it afterwards).

Prints: units/s over the whole run, RSS when ``--sample`` units were done and at the end, and what the
database holds afterwards: units not finished (lost), units with more than one result or more than one
successful attempt (duplicated), attempt numbers repeated within a unit, and units whose
``attempts`` count disagrees with its attempt rows.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING

import trio
from sqlalchemy import create_engine, text

from runner.store.db import open_database
from tests.run.processes import RunState, start_runner, wait_for

if TYPE_CHECKING:
    from collections.abc import Iterator

# One fifth each of the probability: the fault kinds that are retried and must never lose or double.
FAULT_KINDS = ("http_503", "http_429:ra=0", "reset", "close_abrupt", "stream_error")

JOB = """
name = "bench-soak"
[defaults]
repeats = {repeats}
[defaults.retry]
max_attempts = 6
backoff_initial = 0.01
backoff_max = 0.05
[[providers]]
name = "sim-openai"
dialect = "openai-chat"
model = "sim-model"
concurrency = 16
simulator = {{ output_tokens = "4", seed = 1, faults = "{faults}" }}
[[providers]]
name = "sim-anthropic"
dialect = "anthropic-messages"
model = "sim-model"
concurrency = 16
simulator = {{ output_tokens = "4", seed = 2, faults = "{faults}" }}
[[cases]]
id = "c"
prompt = "Hi."
"""

CHECKS = {
    "lost (units not ok or failed)": "SELECT count(*) FROM units WHERE status NOT IN ('ok', 'failed')",
    "failed units": "SELECT count(*) FROM units WHERE status = 'failed'",
    "ok units without a result": (
        "SELECT count(*) FROM units u WHERE u.status = 'ok'"
        " AND NOT EXISTS (SELECT 1 FROM results r WHERE r.unit_id = u.id)"
    ),
    "units with two results": (
        "SELECT count(*) FROM (SELECT unit_id FROM results GROUP BY unit_id"
        " HAVING count(DISTINCT attempt_id) > 1) d"
    ),
    "units with two ok attempts": (
        "SELECT count(*) FROM (SELECT unit_id FROM attempts WHERE error_kind IS NULL AND NOT superseded"
        " GROUP BY unit_id HAVING count(*) > 1) d"
    ),
    "repeated attempt numbers": (
        "SELECT count(*) FROM (SELECT unit_id, number FROM attempts GROUP BY unit_id, number"
        " HAVING count(*) > 1) d"
    ),
    "superseded attempts": "SELECT count(*) FROM attempts WHERE superseded",
    "units.attempts disagreeing with rows": (
        "SELECT count(*) FROM units u WHERE u.attempts <>"
        " (SELECT count(*) FROM attempts a WHERE a.unit_id = u.id AND NOT a.superseded)"
    ),
}


def rss_kib(pid: int) -> int:
    """Resident set size now (VmRSS), in KiB; Linux only."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])


@contextmanager
def database_url(server: str | None, workdir: Path) -> Iterator[str]:
    """A fresh SQLite file, or a fresh database on the PostgreSQL server (dropped afterwards)."""
    if server is None:
        yield f"sqlite:///{workdir / 'soak.db'}"
        return
    name = f"runner_soak_{id(workdir) % 100000}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield server.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


async def soak(url: str, workdir: Path, units: int, faults: float, sample: int) -> None:
    spec = ",".join(f"{kind}@{faults / len(FAULT_KINDS):.4f}" for kind in FAULT_KINDS)
    job = workdir / "soak.toml"
    job.write_text(JOB.format(repeats=units // 2, faults=spec))
    with open_database(url) as database:
        state = RunState(database)
        async with trio.open_nursery() as nursery:
            process = await start_runner(
                nursery,
                "run",
                str(job),
                "--db",
                url,
                "--report",
                "-",
                "--progress-interval",
                "60",
                cwd=workdir,
            )
            started = time.monotonic()
            await wait_for(lambda: state.done() >= min(sample, units), within=24 * 3600, interval=1.0)
            sampled_rss, sampled_at = rss_kib(process.pid), time.monotonic() - started
            last_rss = sampled_rss
            while process.process.poll() is None:
                # A process that just exited has no VmRSS line (or no /proc entry) any more.
                with suppress(OSError, StopIteration):
                    last_rss = rss_kib(process.pid)
                await trio.sleep(1.0)
            code = await process.wait(within=600)
            elapsed = time.monotonic() - started
        with database.engine.connect() as conn:
            figures = {label: conn.execute(text(sql)).scalar_one() for label, sql in CHECKS.items()}
            attempts = conn.execute(text("SELECT count(*) FROM attempts")).scalar_one()
    print(f"database            {url.split('@')[-1]}")
    print(f"units               {units} (faults {faults:.0%}: {spec})")
    print(f"exit code           {code}")
    print(f"wall time           {elapsed:.0f} s, {units / elapsed:.1f} units/s")
    print(f"attempts            {attempts} ({attempts / units:.3f} per unit)")
    print(f"RSS at {sample} done  {sampled_rss / 1024:.0f} MiB (after {sampled_at:.0f} s)")
    print(f"RSS at the end      {last_rss / 1024:.0f} MiB (last sample before exit)")
    for label, value in figures.items():
        print(f"{label:<38} {value}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=100_000)
    parser.add_argument("--db", default=None, help="postgresql://.../test: soak on a fresh database there")
    parser.add_argument("--faults", type=float, default=0.05, help="Probability of a fault per attempt.")
    parser.add_argument("--sample", type=int, default=10_000, help="Units done when RSS is first sampled.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, database_url(args.db, Path(tmp)) as url:
        trio.run(soak, url, Path(tmp), args.units, args.faults, args.sample)


if __name__ == "__main__":
    main()
