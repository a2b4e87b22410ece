"""The end of ``runner run``: the failure breakdown lines, and the summary as one JSON object (``--json``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from runner.run.summary import RunSummary
    from runner.spec import Subset
    from runner.store.db import Database
    from runner.store.repository import ProviderFailures


def read_failures(database: Database, run_id: str) -> tuple[ProviderFailures, ...]:
    """The run's failures per provider, for the breakdown (the whole run's, every process's)."""
    from runner.store import repository

    with database.session() as session:
        return repository.failure_breakdown(session, run_id)


def breakdown_lines(failures: Sequence[ProviderFailures]) -> list[str]:
    """The failure breakdown, one line per provider and kind of failure (none when nothing failed)::

    failures:
      flaky: failed (no result) 4: server_error 3, timeout 1; e.g. flaky/a/1, flaky/b/1, flaky/c/1
      steady: failed assertions 2: contains 2; e.g. steady/a/1, steady/d/1
    """
    lines = []
    for provider in failures:
        if provider.failed:
            lines.append(
                _line(
                    provider.provider,
                    "failed (no result)",
                    provider.failed,
                    provider.error_kinds,
                    provider.failed_units,
                )
            )
        if provider.failed_assertions:
            lines.append(
                _line(
                    provider.provider,
                    "failed assertions",
                    provider.failed_assertions,
                    provider.assertions,
                    provider.assertion_units,
                )
            )
    return ["failures:", *lines] if lines else []


def _line(provider: str, verdict: str, units: int, by_name: Mapping[str, int], keys: Sequence[str]) -> str:
    counts = ", ".join(f"{name} {count}" for name, count in by_name.items())
    more = ", ..." if units > len(keys) else ""
    return f"  {provider}: {verdict} {units}: {counts}; e.g. {', '.join(keys)}{more}"


def summary_json(
    summary: RunSummary,
    *,
    job_name: str,
    report: Path | None,
    failures: Sequence[ProviderFailures],
    subset: Subset | None,
    budget_reached: bool,
) -> dict[str, Any]:
    """``runner run --json``'s object (its keys are documented in the README, "The end of a run")."""
    from runner.report.jsonout import failures_json  # here: the report package loads SQLAlchemy

    verdicts = summary.verdicts
    return {
        "run_id": summary.run_id,
        "job": job_name,
        "status": summary.status,
        "exit_code": summary.exit_code,
        "units": {
            "total": sum(summary.counts.values()),
            "passed": verdicts["passed"],
            "failed_assertions": verdicts["failed assertions"],
            "failed": verdicts["failed"],
            "not_done": verdicts["not done"],
            "reused": summary.reused,
            "sent": summary.sent,
        },
        "spent_usd": summary.spent_usd,
        "budget_reached": budget_reached,
        "subset": None
        if subset is None
        else {
            "providers": None if subset.providers is None else list(subset.providers),
            "cases": subset.cases,
            "limit": subset.limit,
        },
        "report": None if report is None else str(report),
        "failures": failures_json(failures),
        "loop_lag": None if summary.loop_lag is None else summary.loop_lag.to_json(),
    }
