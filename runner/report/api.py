"""Entry points of the reports: the one place they read the database (through the repository), then
build a context and render it. ``runner run`` calls :func:`write_run_report` when a run ends; the
``report``, ``diff``, ``trend`` and ``cost`` commands call one function each."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from runner.report.common import RunData, WorkerShare
from runner.report.cost import CostContext, build_cost_context
from runner.report.diff import DiffContext, Thresholds, build_diff_context
from runner.report.render import make_environment, render, write_report
from runner.report.run import RunReportContext, build_run_context
from runner.report.trend import TrendContext, build_trend_context
from runner.store import repository

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from sqlalchemy.orm import Session


def load_run(session: Session, ref: str) -> RunData:
    """A run (an id, or ``latest``) with all its units, attempts and results.

    Raises:
        StorageError: no such run.
    """
    info = repository.get_run(session, ref)
    units = tuple(repository.iter_units(session, info.id))
    workers = tuple(
        WorkerShare(owner=owner, finished=counts["ok"] + counts["failed"], in_flight=counts["running"])
        for owner, counts in sorted(repository.counts_by_owner(session, info.id).items())
        if owner  # "": units no process holds (pending, reused)
    )
    graded = any(o.name == "judge" for u in units for o in u.assertions)
    grading = repository.grading_cost(session, info.id) if graded else None
    return RunData(run=info, units=units, workers=workers, grading_cost=grading)


def build_run_report(session: Session, ref: str) -> RunReportContext:
    """The run report's context of run ``ref`` (an id or ``latest``)."""
    return build_run_context(load_run(session, ref))


def write_run_report(session: Session, ref: str, out: Path | None = None) -> Path:
    """Render run ``ref`` to ``out`` (default ``report-<run id>.html``) and return the path."""
    context = build_run_report(session, ref)
    return write_report(out or Path(f"report-{context.run.id}.html"), render(make_environment(), context))


def build_diff_report(
    session: Session, ref_a: str, ref_b: str, *, thresholds: Thresholds | None = None
) -> DiffContext:
    """Run ``ref_b`` against the baseline ``ref_a``."""
    return build_diff_context(load_run(session, ref_a), load_run(session, ref_b), thresholds=thresholds)


def write_diff_report(context: DiffContext, out: Path | None = None) -> Path:
    path = out or Path(f"diff-{context.run_a.id}-{context.run_b.id}.html")
    return write_report(path, render(make_environment(), context))


def build_trend_report(session: Session, job_name: str, *, last: int = 10) -> TrendContext:
    """The last ``last`` runs of ``job_name``."""
    infos = repository.list_runs(session, job_name=job_name, limit=last)
    runs = [load_run(session, info.id) for info in reversed(infos)]
    return build_trend_context(job_name, runs)


def write_trend_report(context: TrendContext, out: Path | None = None) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in context.job_name)
    return write_report(out or Path(f"trend-{safe}.html"), render(make_environment(), context))


def build_cost_report(
    session: Session,
    *,
    by: Sequence[str] = ("provider",),
    since: datetime | None = None,
    until: datetime | None = None,
) -> CostContext:
    """Tokens and cost of the attempts started in ``[since, until)``, grouped by ``by``."""
    costs = repository.attempt_costs(session, since=since, until=until)
    return build_cost_context(costs, by=by, since=since, until=until)


def write_cost_report(context: CostContext, out: Path) -> Path:
    return write_report(out, render(make_environment(), context))
