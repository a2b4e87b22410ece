"""False alarms of ``runner diff``: runs the unchanged demo job 2 x PAIRS times into one SQLite database
(offline, the built-in simulator), diffs run 2i against run 2i+1, and counts the pairs that report a
regression. Nothing changed between the runs, so every regression it reports is a false alarm.

Prints one line per pair and significance level (regressions, what regressed, matched units, tests)
and the totals; each level judges the same runs. Not a test.

    .venv/bin/python benchmarks/bench_diff_false_alarm.py [--pairs 10] [--alpha 0.01 --alpha 0.05]
        [--job jobs/demo.toml] [--db URL]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runner.report.api import build_diff_report
from runner.report.diff import Thresholds
from runner.store.db import open_database


def _run_job(job: Path, url: str) -> str:
    """One ``runner run`` of ``job`` into ``url`` (a subprocess, as a user runs it); its run id."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNNER_")}
    done = subprocess.run(
        [sys.executable, "-m", "runner", "run", str(job), "--db", url, "--quiet", "--report", "-"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if done.returncode not in (0, 1):
        raise SystemExit(f"runner run failed (exit {done.returncode}):\n{done.stderr}")
    return done.stderr.split("run ", 1)[1].split(" ", 1)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--job", type=Path, default=ROOT / "jobs" / "demo.toml")
    parser.add_argument("--db", help="default: a new SQLite file in a temporary directory")
    parser.add_argument("--alpha", type=float, action="append", help="default: 0.01 and 0.05")
    args = parser.parse_args()
    alphas = args.alpha or [0.01, 0.05]
    url = args.db or f"sqlite:///{Path(tempfile.mkdtemp(prefix='bench-diff-')) / 'runs.db'}"
    print(f"{args.pairs * 2} runs of {args.job.name} into {url}")
    runs = [_run_job(args.job, url) for _ in range(args.pairs * 2)]
    alarms = dict.fromkeys(alphas, 0)
    with open_database(url) as db, db.session() as session:
        for a, b in zip(runs[::2], runs[1::2], strict=True):
            for alpha in alphas:
                context = build_diff_report(session, a, b, thresholds=Thresholds(alpha=alpha))
                what = [f"{m.provider} {m.metric}" for m in context.metrics if m.verdict == "regressed"]
                what += [f"missing {key}" for key in context.only_in_a]
                alarms[alpha] += context.regressions > 0
                print(
                    f"{a} -> {b} alpha {alpha:g}: {context.regressions} regressions, {context.matched} "
                    f"units matched, {context.tests} tests{': ' + ', '.join(what) if what else ''}"
                )
    for alpha, count in alarms.items():
        print(f"alpha {alpha:g}: pairs reporting a regression: {count} of {args.pairs}")


if __name__ == "__main__":
    main()
