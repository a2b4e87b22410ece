"""Benchmark of the run report at scale: a run written straight into a database through the repository
(no provider is called), then rendered by `runner report` in a child process whose time and peak RSS
are measured.

Targets: 100,000 units render in under 10 s into a file under 10 MB; 1,000,000 units (``--million``)
in bounded memory. Prints the figures; not a test.

    .venv/bin/python benchmarks/bench_report.py [--units 100000] [--million] [--answer-chars 600]
        [--copies N] [--db URL] [--keep DIR] [--browser]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runner.store import repository
from runner.store.db import open_database
from tests.report.dbfixture import create_fixture_run, store_units
from tests.report.factories import START, make_run

SLICE = 10_000  # units made and written per transaction: the fixture never holds the whole run


def build_database(url: str, units: int, answer_chars: int) -> str:
    """Write a finished run of ``units`` units into ``url`` slice by slice; return its id.

    Each slice is a ``make_run`` of its own seed whose repeats are shifted past the earlier slices', so
    keys stay unique and the cases (about SLICE / 6 of them) repeat across the run.
    """
    slices = max(1, -(-units // SLICE))
    first = make_run(min(units, SLICE), answer_chars=answer_chars)
    cases = sorted({u.case_id for u in first.units})
    with open_database(url) as db, db.session() as session:
        run_id = create_fixture_run(session, first, cases)
        finished = first.run.finished_at
        for index in range(slices):
            size = min(SLICE, units - index * SLICE)
            data = make_run(
                size,
                seed=index,
                answer_chars=answer_chars,
                start=START + timedelta(seconds=3600 * index / slices),
            )
            shift = 3 * index  # make_run gives a (provider, case) pair at most three repeats per slice
            shifted = [
                replace(u, repeat=u.repeat + shift, key=f"{u.provider}/{u.case_id}/{u.repeat + shift}")
                for u in data.units
            ]
            store_units(session, run_id, shifted, now=data.run.finished_at)
            finished = max(finished or data.run.finished_at, data.run.finished_at or finished)
            print(f"\r  stored {index * SLICE + size:,} units", end="", flush=True)
        repository.mark_run(session, run_id, "finished", now=finished)
    print()
    return run_id


def replicate_sqlite(source: Path, target: Path, copies: int) -> str:
    """A SQLite database whose one run is ``copies`` copies of the run in ``source`` (keys suffixed
    ``#k``): a million-unit run in a minute, where writing it through the repository on a shared
    2-core machine takes an hour. The source run itself was written through the repository."""
    shutil.copyfile(source, target)
    db = sqlite3.connect(target)
    with db:
        run_id, units, attempts, results = db.execute(
            "SELECT (SELECT id FROM runs), (SELECT max(id) FROM units), (SELECT max(id) FROM attempts), "
            "(SELECT max(id) FROM results)"
        ).fetchone()
        columns = {
            t: [r[1] for r in db.execute(f"PRAGMA table_info({t})")] for t in ("units", "attempts", "results")
        }
        shifted = {
            "units": {"id": f"id + :k * {units}", "key": "key || '#' || :k"},
            "attempts": {"id": f"id + :k * {attempts}", "unit_id": f"unit_id + :k * {units}"},
            "results": {
                "id": f"id + :k * {results}",
                "unit_id": f"unit_id + :k * {units}",
                "attempt_id": f"attempt_id + :k * {attempts}",
            },
        }
        for k in range(1, copies):
            for table in ("units", "attempts", "results"):
                names = columns[table]
                values = ", ".join(shifted[table].get(name, name) for name in names)
                db.execute(
                    f"INSERT INTO {table} ({', '.join(names)}) SELECT {values} FROM {table} "
                    f"WHERE id <= {dict(units=units, attempts=attempts, results=results)[table]}",
                    {"k": k},
                )
            print(f"\r  copied {(k + 1) * units:,} units", end="", flush=True)
    print()
    db.close()
    return str(run_id)


def render_in_child(url: str, run_id: str, out: Path) -> tuple[float, float, float]:
    """Run `runner report` as its own process: (wall seconds, CPU seconds, peak RSS in MB) of it alone.

    CPU time is quoted too: on a shared machine the wall time is what the other processes leave.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "runner", "report", run_id, "--db", url, "--out", str(out)],
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    # ru_maxrss of children is the largest of any child so far: the report is the only child.
    return elapsed, cpu, after.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--units", type=int, default=100_000)
    parser.add_argument("--million", action="store_true", help="1,000,000 units (minutes; not in CI)")
    parser.add_argument(
        "--copies",
        type=int,
        default=1,
        help="SQLite only: write --units / COPIES units through the repository, then copy them with SQL",
    )
    parser.add_argument("--answer-chars", type=int, default=600)
    parser.add_argument("--db", help="database URL (default: a SQLite file in the work folder)")
    parser.add_argument("--keep", type=Path, help="work folder to keep and reuse (its bench.db is reused)")
    parser.add_argument("--browser", action="store_true", help="also time a headless Chromium load")
    args = parser.parse_args()
    units = 1_000_000 if args.million else args.units
    out = args.keep or Path(tempfile.mkdtemp(prefix="bench-report-"))
    out.mkdir(parents=True, exist_ok=True)
    url = args.db or f"sqlite:///{out / f'bench-{units}.db'}"

    with open_database(url) as db, db.session() as session:
        existing = repository.list_runs(session, job_name="nightly-smoke", limit=50)
        counts = {r.id: sum(repository.unit_counts(session, r.id).values()) for r in existing}
    run_id = next((rid for rid, n in counts.items() if n == units), None)
    if run_id is None and args.copies > 1 and not args.db:
        base = units // args.copies
        source = out / f"bench-{base}.db"
        if not source.exists():
            print(f"writing a run of {base:,} units through the repository...")
            build_database(f"sqlite:///{source}", base, args.answer_chars)
        Path(url.removeprefix("sqlite:///")).unlink(missing_ok=True)
        run_id = replicate_sqlite(source, Path(url.removeprefix("sqlite:///")), args.copies)
    if run_id is None:
        print(f"writing a run of {units:,} units (answers ~{args.answer_chars} chars) into the database...")
        t0 = time.perf_counter()
        run_id = build_database(url, units, args.answer_chars)
        print(f"  fixture written in {time.perf_counter() - t0:.1f} s (not counted)")

    path = out / f"report-{units}.html"
    elapsed, cpu, peak_mb = render_in_child(url, run_id, path)
    size = path.stat().st_size
    print(
        f"runner report, {units:,} units: {elapsed:.1f} s ({cpu:.1f} s CPU), file {size / 1e6:.1f} MB, "
        f"peak RSS {peak_mb:.0f} MB  ({url.partition(':')[0]}; load average {os.getloadavg()[0]:.1f})"
    )

    if args.browser:
        from tests.report.browser import Browser

        profile = out / "profile"
        profile.mkdir(exist_ok=True)
        browser = Browser(profile)
        t0 = time.perf_counter()
        record, session_id = browser.load(path.as_uri(), settle_s=0)
        print(f"chromium: loaded in {time.perf_counter() - t0:.2f} s, {len(record.errors)} console errors")
        browser.close_tab(session_id)
        browser.close()
    print(f"files in {out}")


if __name__ == "__main__":
    main()
