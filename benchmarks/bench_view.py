"""Benchmark of ``runner view`` on a large run: the run page of a 100,000-unit run over real HTTP.

The viewer must not load every unit: its run page reads SQL tallies and one page of units. Prints the
time and size of each page (the first load, a filtered page, a deep page, a sort); not a test.

    .venv/bin/python benchmarks/bench_view.py [--units 100000] [--db sqlite:///path (reuse a stored run)]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runner.store.db import open_database, open_database_readonly
from runner.view import ViewServer
from tests.report.dbfixture import store_run
from tests.report.factories import make_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--units", type=int, default=100_000)
    parser.add_argument("--db", help="a database that already holds the run (its latest run is used)")
    args = parser.parse_args()
    url = args.db
    if url is None:
        url = f"sqlite:///{Path(tempfile.mkdtemp(prefix='bench-view-')) / 'bench.db'}"
        data = make_run(args.units, answer_chars=300)
        started = time.perf_counter()
        with open_database(url) as db, db.session() as session:
            store_run(session, data)
        print(f"stored {args.units:,} units in {time.perf_counter() - started:.1f} s (not counted): {url}")
    with open_database_readonly(url, enforced=True) as database:
        server = ViewServer(database, host="127.0.0.1", port=0)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        base = server.url.rstrip("/")
        with httpx.Client(timeout=600) as client:
            run_id = client.get(base + "/").text.split('href="/runs/', 1)[1].split('"', 1)[0]
            pages = {
                "index": "/",
                "run page (first 100 units, failures first)": f"/runs/{run_id}",
                "run page, status=failed": f"/runs/{run_id}?status=failed",
                "run page, offset 99,900": f"/runs/{run_id}?offset=99900",
                "run page, sort=case desc, 500 a page": f"/runs/{run_id}?sort=case&desc=1&limit=500",
                "unit page": f"/runs/{run_id}/units/mini/case-0000/0",
            }
            for label, path in pages.items():
                t0 = time.perf_counter()
                response = client.get(base + path)
                elapsed = time.perf_counter() - t0
                print(
                    f"{label}: HTTP {response.status_code} in {elapsed:.2f} s, "
                    f"{len(response.content) / 1e3:.0f} kB"
                )
        server.shutdown()
        thread.join(10)
        server.close()


if __name__ == "__main__":
    main()
