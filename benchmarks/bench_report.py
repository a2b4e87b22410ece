"""Benchmark of the run report at scale: a 20,000-unit run, from records and from a SQLite database.

Targets: renders in under 20 s into a file under 25 MB. Prints the figures; not a test.

    .venv/bin/python benchmarks/bench_report.py [--units 20000] [--answer-chars 600] [--no-db] [--browser]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runner.report.api import write_run_report
from runner.report.render import make_environment, render, write_report
from runner.report.run import build_run_context
from runner.store.db import open_database
from tests.report.dbfixture import store_run
from tests.report.factories import make_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--units", type=int, default=20_000)
    parser.add_argument("--answer-chars", type=int, default=600)
    parser.add_argument("--no-db", action="store_true", help="skip the database round trip")
    parser.add_argument("--browser", action="store_true", help="also time a headless Chromium load")
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="bench-report-"))
    data = make_run(args.units, answer_chars=args.answer_chars)
    attempts = sum(len(u.attempts) for u in data.units)
    print(f"run: {args.units:,} units, {attempts:,} attempts, answers ~{args.answer_chars} chars")

    started = time.perf_counter()
    context = build_run_context(data)
    built = time.perf_counter()
    path = write_report(out / "from-records.html", render(make_environment(), context))
    rendered = time.perf_counter()
    size = path.stat().st_size
    print(
        f"from records: context {built - started:.2f} s + render {rendered - built:.2f} s = "
        f"{rendered - started:.2f} s; file {size / 1e6:.1f} MB"
    )

    if not args.no_db:
        url = f"sqlite:///{out / 'bench.db'}"
        with open_database(url) as db, db.session() as session:
            t0 = time.perf_counter()
            run_id = store_run(session, data)
            t1 = time.perf_counter()
            db_path = write_run_report(session, run_id, out / "from-db.html")
            t2 = time.perf_counter()
        print(
            f"from SQLite (what `runner report` does): read + context + render {t2 - t1:.2f} s; "
            f"file {db_path.stat().st_size / 1e6:.1f} MB  (fixture write {t1 - t0:.1f} s, not counted)"
        )
        path = db_path

    if args.browser:
        from tests.report.browser import Browser

        profile = out / "profile"
        profile.mkdir()
        browser = Browser(profile)
        t0 = time.perf_counter()
        record, session_id = browser.load(path.as_uri(), settle_s=0)
        print(f"chromium: loaded in {time.perf_counter() - t0:.2f} s, {len(record.errors)} console errors")
        browser.close_tab(session_id)
        browser.close()
    print(f"files in {out}")


if __name__ == "__main__":
    main()
