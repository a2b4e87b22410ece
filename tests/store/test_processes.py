"""Several OS processes on one run: exactly-once completion, and a SIGKILLed worker's units come back."""

from __future__ import annotations

import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import text

from runner.store import repository

from .factories import make_job, make_units

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from runner.store.db import Database

# Slow (left out by `-m "not slow"`; CI runs them): OS processes draining one run, and SIGKILL.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def spawn(url: str, run_id: str, owner: str, mode: str) -> subprocess.Popen[str]:
    """Start a worker process on the run."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.store.worker_proc", url, run_id, owner, mode],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )


def per_unit_counts(db: Database, run_id: str) -> list[tuple[str, int, int]]:
    """(status, attempts rows, results rows) of every unit of the run."""
    with db.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT u.status,"
                " (SELECT count(*) FROM attempts a WHERE a.unit_id = u.id),"
                " (SELECT count(*) FROM results r WHERE r.unit_id = u.id)"
                " FROM units u WHERE u.run_id = :run ORDER BY u.id"
            ),
            {"run": run_id},
        )
        return [(status, attempts, results) for status, attempts, results in rows]


def test_two_processes_finish_every_unit_exactly_once(db: Database, session: Session) -> None:
    """Two processes draining one run concurrently finish every unit exactly once between them."""
    run = repository.create_run(session, make_job(), host="h", version="v")
    repository.add_units(session, run.id, make_units(300))
    workers = [spawn(db.url, run.id, f"proc-{i}", "drain") for i in range(2)]
    outputs = [worker.communicate(timeout=60)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0]
    assert sum(int(output) for output in outputs) == 300
    assert per_unit_counts(db, run.id) == [("ok", 1, 1)] * 300


def test_sigkilled_worker_leaves_consistent_db_and_its_units_return(db: Database, session: Session) -> None:
    """After a SIGKILL the DB is consistent and, once leases expire, exactly the unfinished units return."""
    run = repository.create_run(session, make_job(), host="h", version="v")
    repository.add_units(session, run.id, make_units(10))
    worker = spawn(db.url, run.id, "doomed", "stall")
    try:
        assert worker.stdout is not None
        assert worker.stdout.readline().strip() == "ready"
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.communicate(timeout=30)
    assert worker.returncode == -signal.SIGKILL
    counts = per_unit_counts(db, run.id)
    assert counts == [("ok", 1, 1)] * 2 + [("running", 0, 0)] * 2 + [("pending", 0, 0)] * 6
    early = repository.claim_units(session, run.id, "early", limit=100, lease_seconds=60)
    assert [unit.key for unit in early] == [unit.key for unit in make_units(10)[4:]]  # not the killed leases
    repository.release_units(session, run.id, "early")
    after_expiry = datetime.now(UTC) + timedelta(seconds=61)
    again = repository.claim_units(session, run.id, "heir", limit=100, lease_seconds=60, now=after_expiry)
    assert [unit.key for unit in again] == [unit.key for unit in make_units(10)[2:]]
