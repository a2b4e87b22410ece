"""`runner cost` on a narrow terminal: columns are dropped, never the digits of a number."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from runner.report.api import build_cost_report
from runner.store.db import open_database
from tests.report.dbfixture import store_run
from tests.report.factories import make_run

if TYPE_CHECKING:
    from pathlib import Path

# Slow (left out by `-m "not slow"`): `runner cost` as a subprocess on a pseudo-terminal.
pytestmark = pytest.mark.slow

NUMBER = re.compile(r"\d[\d,.]*")


@pytest.fixture
def cost_db(tmp_path: Path) -> str:
    """A migrated SQLite file with two runs a day apart, so costs have many digits."""
    url = f"sqlite:///{tmp_path / 'cost.db'}"
    later = make_run(1).run.started_at + timedelta(days=1)
    with open_database(url) as db, db.session() as session:
        store_run(session, make_run(40, seed=3, run_id="a"))
        store_run(session, make_run(40, seed=4, run_id="b", start=later))
    return url


def _on_terminal(args: list[str], columns: int) -> str:
    """Run ``python -m runner`` with its stdout on a real pseudo-terminal ``columns`` wide."""
    parent, child = pty.openpty()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("RUNNER_")}
    environ.update(COLUMNS=str(columns), LINES="50", TERM="dumb", NO_COLOR="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "runner", *args], stdout=child, stderr=child, env=environ, close_fds=True
    )
    os.close(child)
    output = bytearray()
    while True:
        try:
            data = os.read(parent, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        output += data
    os.close(parent)
    assert process.wait(timeout=60) == 0, output.decode(errors="replace")
    return output.decode().replace("\r\n", "\n")


def _cells(url: str, by: tuple[str, ...]) -> tuple[set[str], list[str]]:
    """Every number a cost table cell can show, and each row's booked cost as the table prints it."""
    with open_database(url) as db, db.session() as session:
        context = build_cost_report(session, by=by)
    cells: set[str] = set()
    costs: list[str] = []
    for row in (*context.rows, context.total):
        money = [row.cost, row.cost_reported, row.cost_computed, row.cost_wasted]
        cells.update(f"{v:.4f}" for v in money if v is not None)
        counts = [row.runs, row.attempts, row.failed_attempts, row.attributed_attempts]
        counts += [row.tokens.input, row.tokens.cached, row.tokens.output, row.tokens.reasoning]
        cells.update(f"{n:,}" for n in counts)
        costs.append(f"{row.cost:.4f}")
    cells.update(row_key for row in context.rows for row_key in row.keys)
    return cells, costs


@pytest.mark.parametrize("columns", [pytest.param(80, id="80"), pytest.param(60, id="60")])
@pytest.mark.parametrize(
    "by", [pytest.param("provider", id="provider"), pytest.param("model,day", id="model-day")]
)
def test_numbers_stay_whole_on_a_narrow_terminal(cost_db: str, columns: int, by: str) -> None:
    """At 80 and 60 columns every number shown is a whole cell value, and each row's cost is shown."""
    output = _on_terminal(["cost", "--db", cost_db, "--by", by], columns)
    cells, costs = _cells(cost_db, tuple(by.split(",")))
    assert "…" not in output, output
    table = output.split("\n")
    assert max(len(line) for line in table) <= columns, output
    shown = {n for line in table if "│" in line or "┃" in line for n in NUMBER.findall(line)}
    strays = {n for n in shown if n not in cells and not any(n in c for c in cells if "-" in c)}
    assert strays == set(), output
    for cost in costs:
        assert cost in output, output


def test_piped_output_honours_columns(cost_db: str) -> None:
    """With stdout on a pipe, COLUMNS (when set) is the width too, and numbers still stay whole."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("RUNNER_")}
    environ["COLUMNS"] = "80"
    result = subprocess.run(
        [sys.executable, "-m", "runner", "cost", "--db", cost_db],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert max(len(line) for line in result.stdout.splitlines()) <= 80, result.stdout
    assert "…" not in result.stdout
    _, costs = _cells(cost_db, ("provider",))
    for cost in costs:
        assert cost in result.stdout, result.stdout
