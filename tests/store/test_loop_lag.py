"""runs.loop_lag: a run's loop lag is stored when it is marked, read back, and the worst by p99 kept."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runner.model import LoopLag
from runner.store import repository

from .factories import make_job

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

CLEAN = LoopLag(p50_s=0.0002, p99_s=0.001, max_s=0.004, samples=300, interval_s=0.01)
LAGGING = LoopLag(p50_s=0.001, p99_s=0.030, max_s=0.090, samples=120, interval_s=0.01)


def test_the_loop_lag_is_stored_and_read_back(session: Session) -> None:
    """Marking a run with its lag writes the five figures; get_run and list_runs read them back."""
    run = repository.create_run(session, make_job(), host="box", version="0.1.0")
    assert run.loop_lag is None  # not measured yet
    repository.mark_run(session, run.id, "finished", loop_lag=LAGGING)
    assert repository.get_run(session, run.id).loop_lag == LAGGING
    assert repository.list_runs(session)[0].loop_lag == LAGGING


def test_a_joining_process_keeps_the_worst_lag_by_p99(session: Session) -> None:
    """A second process (--join, --resume) never hides the first one's lag, nor its own."""
    run = repository.create_run(session, make_job(), host="box", version="0.1.0")
    repository.mark_run(session, run.id, "interrupted", loop_lag=LAGGING)
    repository.mark_run(session, run.id, "finished", loop_lag=CLEAN)
    assert repository.get_run(session, run.id).loop_lag == LAGGING
    worse = LoopLag(p50_s=0.0001, p99_s=0.2, max_s=0.5, samples=10, interval_s=0.01)
    repository.mark_run(session, run.id, "finished", loop_lag=worse)
    assert repository.get_run(session, run.id).loop_lag == worse


def test_a_mark_without_a_measurement_keeps_the_stored_lag(session: Session) -> None:
    """A status change that measured nothing (a run too short to sample) leaves the stored figures."""
    run = repository.create_run(session, make_job(), host="box", version="0.1.0")
    repository.mark_run(session, run.id, "running", loop_lag=CLEAN)
    repository.mark_run(session, run.id, "finished")
    got = repository.get_run(session, run.id)
    assert (got.status, got.loop_lag) == ("finished", CLEAN)
