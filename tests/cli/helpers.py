"""``runner`` as a user calls it: a real subprocess; its error must be one line, without a traceback."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


def runner(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m runner ARGS`` in ``cwd`` without the caller's RUNNER_* settings (hard time limit).

    RUNNER_TRANSPORT stays: the ``transport`` fixture (tests/run/conftest.py) runs a test on both.
    """
    environ = {k: v for k, v in os.environ.items() if not k.startswith("RUNNER_") or k == "RUNNER_TRANSPORT"}
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "runner", *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def one_error_line(result: subprocess.CompletedProcess[str], code: int = 2) -> str:
    """Assert ``result`` exited ``code`` with exactly one ``error: ...`` line and no traceback; return it."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


def count_runs(db: Path) -> int:
    """How many runs the SQLite file holds (0 when it does not exist)."""
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        return int(conn.execute("select count(*) from runs").fetchone()[0])
