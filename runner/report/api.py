"""Entry points of the reports: the one place they read the database (through the repository), then
build a context and render it. ``runner run`` calls :func:`write_run_report` when a run ends; the
``report``, ``diff``, ``trend`` and ``cost`` commands call one function each."""

from __future__ import annotations

import contextlib
import gc
from pathlib import Path
from typing import TYPE_CHECKING

from runner.report.common import RunData, WorkerShare, expected_assertions
from runner.report.cost import CostContext, build_cost_context
from runner.report.diff import DiffContext, DiffSide, Thresholds, answer_digest, diff_context, stored_answer
from runner.report.render import make_environment, render, stream_report, write_report
from runner.report.run import ROWS_MAX, RunReportContext, run_context, scan_run
from runner.report.trend import TrendContext, run_figures, trend_context
from runner.store import repository

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from datetime import datetime

    from sqlalchemy.orm import Session

    from runner.store.records import RunInfo


def load_run(session: Session, ref: str) -> RunData:
    """A run (an id, or ``latest``) with all its units, attempts and results.

    Raises:
        StorageError: no such run.
    """
    info = repository.get_run(session, ref)
    units = tuple(repository.iter_units(session, info.id))
    return RunData(
        run=info, units=units, workers=_workers(session, info.id), grading_cost=_grading_cost(session, info)
    )


def _workers(session: Session, run_id: str) -> tuple[WorkerShare, ...]:
    return tuple(
        WorkerShare(owner=owner, finished=counts["ok"] + counts["failed"], in_flight=counts["running"])
        for owner, counts in sorted(repository.counts_by_owner(session, run_id).items())
        if owner  # "": units no process holds (pending, reused)
    )


def _grading_cost(session: Session, info: RunInfo) -> float | None:
    """USD of the run's grading requests; None when no case of its job is judged (no card shown)."""
    judged = any("judge" in keys for keys in expected_assertions(info.job_spec).values())
    return repository.grading_cost(session, info.id) if judged else None


def build_run_report(session: Session, ref: str, *, rows_max: int = ROWS_MAX) -> RunReportContext:
    """The run report's context of run ``ref`` (an id or ``latest``).

    The units stream from the store in batches through one ``RunScan``: memory stays bounded by what
    the report shows (a sample and tallies), not by the run's size.
    """
    info = repository.get_run(session, ref)
    with _cycles_uncollected():
        scan = scan_run(info, repository.stream_units(session, info.id), rows_max=rows_max)
        return run_context(
            scan,
            in_full=lambda ids: repository.units_by_id(session, info.id, ids),
            workers=_workers(session, info.id),
            grading_cost=_grading_cost(session, info),
        )


@contextlib.contextmanager
def _cycles_uncollected() -> Iterator[None]:
    """Pause Python's cycle collector while a run is scanned and its report made; reference counting
    still frees all they drop.

    The scan allocates tracked objects per row (SQLAlchemy's rows, the lean tuples) and holds the
    samples' long lists of floats, and every full collection walks all of them: over a 100,000-unit
    run the collector ran 1,600 times and took a quarter of the report's CPU time
    (``benchmarks/bench_report.py``). What the scan drops forms no cycles, so memory stays flat
    (the same peak RSS at a million units). Left as found when already paused (a nested call).
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def write_run_report(
    session: Session, ref: str, out: Path | None = None, *, rows_max: int = ROWS_MAX
) -> Path:
    """Render run ``ref`` to ``out`` (default ``report-<run id>.html``), streamed; return the path.

    ``rows_max``: rows of the unit table (beyond it, a sample; tests set it low to check the bound).
    """
    with _cycles_uncollected():  # the page of a huge run holds no more than a small one's: bounded
        context = build_run_report(session, ref, rows_max=rows_max)
        return stream_report(make_environment(), context, out or Path(f"report-{context.run.id}.html"))


def build_diff_report(
    session: Session, ref_a: str, ref_b: str, *, thresholds: Thresholds | None = None
) -> DiffContext:
    """Run ``ref_b`` against the baseline ``ref_a``, each read lean with its answers' digests: the texts
    are read again only for the units the diff shows in full."""
    with _cycles_uncollected():
        return diff_context(_diff_side(session, ref_a), _diff_side(session, ref_b), thresholds=thresholds)


def _diff_side(session: Session, ref: str) -> DiffSide:
    info = repository.get_run(session, ref)
    return DiffSide(
        run=info,
        units=list(repository.stream_units(session, info.id)),
        answers={
            unit_id: answer_digest(stored_answer(text, tool_calls))
            for unit_id, text, tool_calls in repository.stream_answers(session, info.id)
        },
        in_full=lambda ids: repository.units_by_id(session, info.id, ids),
    )


def write_diff_report(context: DiffContext, out: Path | None = None) -> Path:
    path = out or Path(f"diff-{context.run_a.id}-{context.run_b.id}.html")
    return write_report(path, render(make_environment(), context))


def build_trend_report(session: Session, job_name: str, *, last: int = 10) -> TrendContext:
    """The last ``last`` runs of ``job_name``."""
    infos = repository.list_runs(session, job_name=job_name, limit=last)
    with _cycles_uncollected():  # the tallies' samples, as in the run report's scan
        runs = [run_figures(info, repository.stream_units(session, info.id)) for info in infos]
    return trend_context(job_name, runs)


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
