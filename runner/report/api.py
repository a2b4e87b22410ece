"""Entry points of the reports: a Session and a few options in, an HTML file (and a verdict) out.

``runner run`` calls :func:`write_run_report` when a run ends; the ``report``, ``diff``, ``trend``
and ``cost`` commands call one function each.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from runner.report.context import RunReportContext, build_run_context
from runner.report.cost import CostContext, build_cost_context
from runner.report.diff import DiffContext, Thresholds, build_diff_context
from runner.report.queries import load_cost_facts, load_job_runs, load_run
from runner.report.render import make_environment, render, write_report
from runner.report.trend import TrendContext, build_trend_context

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from sqlalchemy.orm import Session

    from runner.grading.assertions import AssertionOutcome


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
    return build_trend_context(job_name, load_job_runs(session, job_name, last=last))


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
    facts = load_cost_facts(session, since=since, until=until)
    return build_cost_context(facts, by=by, since=since, until=until)


def write_cost_report(context: CostContext, out: Path) -> Path:
    return write_report(out, render(make_environment(), context))


def outcomes_json(outcomes: Sequence[AssertionOutcome]) -> list[dict[str, object]]:
    """The stored form of a result's assertion outcomes (``results.assertions`` of its first choice)."""
    return [outcome.to_dict() for outcome in outcomes]
