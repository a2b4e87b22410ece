"""Benchmark of ``runner runs`` / ``runner show`` on a large database: one big run plus many small ones.

The reads aggregate in SQL, so their time grows with the index ranges scanned, not with objects built.
Prints the figures; not a test.

    .venv/bin/python benchmarks/bench_inspect.py [--units 100000] [--runs 200] [--db sqlite:///x.db]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runner.report.inspect import list_runs, run_summary, unit_detail
from runner.store.db import open_database
from tests.report.dbfixture import store_run
from tests.report.factories import make_run


def _timed(label: str, fn: object, *args: object, **kwargs: object) -> object:
    started = time.perf_counter()
    result = fn(*args, **kwargs)  # type: ignore[operator]
    print(f"{label}: {time.perf_counter() - started:.3f} s")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--units", type=int, default=100_000)
    parser.add_argument(
        "--runs", type=int, default=200, help="small runs (50 units each) besides the big one"
    )
    parser.add_argument("--db", help="database URL (default: a new SQLite file)")
    args = parser.parse_args()
    url = args.db or f"sqlite:///{Path(tempfile.mkdtemp(prefix='bench-inspect-')) / 'bench.db'}"
    with open_database(url) as db, db.session() as session:
        t0 = time.perf_counter()
        for i in range(args.runs):
            store_run(session, make_run(50, seed=i, run_id=f"s{i}", answer_chars=40))
        big = store_run(session, make_run(args.units, answer_chars=100, run_id="big"))
        took = time.perf_counter() - t0
        print(f"stored {args.runs} runs of 50 units and one of {args.units:,} in {took:.0f} s")
        _timed("list_runs (last 20)", list_runs, session, last=20)
        _timed(f"list_runs (last {args.runs + 1})", list_runs, session, last=args.runs + 1)
        summary = _timed(f"run_summary ({args.units:,} units)", run_summary, session, big)
        key = summary.failures[0].failed_units[0] if summary.failures else None  # type: ignore[attr-defined]
        if key:
            _timed("unit_detail", unit_detail, session, big, key)
    for argv in (["runs"], ["show", big]):
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "runner", *argv, "--db", url], capture_output=True, text=True, check=False
        )
        took = time.perf_counter() - started
        print(f"runner {' '.join(argv)} (process): {took:.2f} s, exit {done.returncode}")


if __name__ == "__main__":
    main()
