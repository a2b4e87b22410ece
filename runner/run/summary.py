"""How a run stands, as stored: the summary ``runner run`` prints (and its exit code), and the whole
run's totals per process that the progress display shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runner.grading.rates import CaseRate, case_rates, required_rates
from runner.run.progress import RunTotals, WorkerTotals
from runner.store import repository

if TYPE_CHECKING:
    from collections.abc import Mapping

    from sqlalchemy.orm import Session

    from runner.model import LoopLag
    from runner.store.db import Database
    from runner.store.records import RunStatus, UnitStatus, Verdict


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSummary:
    """How a run stands when this process is done with it."""

    run_id: str
    status: RunStatus
    counts: Mapping[UnitStatus, int]
    spent_usd: float
    assertions_failed: int = 0  # units (ok ones) with a failed [cases.expect] assertion: not checks
    # Each (case, provider) of a case with a pass_rate: a rated case is judged over its repeats, so
    # its units' failed assertions count for the exit code only through a rate below its bar.
    rates: tuple[CaseRate, ...] = ()
    reused: int = 0  # units given a copy of an earlier sample (--reuse): nothing sent for them
    sent: int = 0  # units that sent at least one request
    # How late runner's loop woke during this process's part of the run (None: not measured, e.g. a
    # summary read back from the database). Stored as runs.loop_lag, the worst process's.
    loop_lag: LoopLag | None = None
    grading_usd: float = 0.0  # of spent_usd, what judge providers' grading requests cost
    grading_pending: int = 0  # ok units whose judge has not answered (a stopped run): not done yet

    @property
    def verdicts(self) -> Mapping[Verdict, int]:
        """Units per verdict (``records.unit_verdict``), as the run report counts them."""
        counts = self.counts
        return {
            "passed": counts.get("ok", 0) - self.assertions_failed - self.grading_pending,
            "failed assertions": self.assertions_failed,
            "failed": counts.get("failed", 0),
            "not done": counts.get("pending", 0) + counts.get("running", 0) + self.grading_pending,
        }

    @property
    def exit_code(self) -> int:
        """0 no unit failed or failed an assertion, 1 some did (or a case fell below its pass_rate),
        130 interrupted (resume it). A rated case's units fail the run only through the case's rate."""
        if self.status == "interrupted":
            return 130
        verdicts = self.verdicts
        rated_failures = sum(rate.graded - rate.passed for rate in self.rates)
        failed = verdicts["failed"] or verdicts["failed assertions"] > rated_failures
        return 1 if failed or self.cases_below_rate else 0

    @property
    def cases_below_rate(self) -> int:
        """(case, provider) pairs whose repeats passed less often than the case's pass_rate."""
        return sum(rate.is_below for rate in self.rates)

    def describe(self) -> str:
        """One line for the terminal: status, units per verdict, units reused and sent, and spend (every
        count counts units)."""
        v = self.verdicts
        line = (
            f"run {self.run_id}: {self.status}; units passed {v['passed']}, units with failed assertions "
            f"{v['failed assertions']}, failed (no result) {v['failed']}, not done {v['not done']}; "
            f"units reused {self.reused}, sent {self.sent}; spent ${self.spent_usd:.6f}"
        )
        if self.grading_usd:
            line += f" (grading ${self.grading_usd:.6f})"
        if self.rates:
            line += f"; cases below their pass_rate {self.cases_below_rate}"
        return line if self.loop_lag is None else f"{line}; {self.loop_lag.describe()}"


def summarize(database: Database, run_id: str) -> RunSummary:
    """The run as stored (after an interruption, when ``execute_job`` could not return).

    Through ``Database.call``: a summary is never read from a SQLite file deleted meanwhile.
    """
    return database.call(_summarize, database, run_id)


def _summarize(database: Database, run_id: str) -> RunSummary:
    with database.session() as session:
        run = repository.get_run(session, run_id)
        counts = repository.unit_counts(session, run_id)
        spent = repository.spend_so_far(session, run_id)
        failed_assertions = repository.count_failed_assertions(session, run_id)
        rates = _rates(session, run.job_spec, run_id)
        reused, sent = repository.reuse_counts(session, run_id)
        grading = repository.grading_cost(session, run_id)
        grading_pending = repository.count_grading_pending(session, run_id)
    return RunSummary(
        run_id=run.id,
        status=run.status,
        counts=counts,
        spent_usd=spent,
        assertions_failed=failed_assertions,
        rates=rates,
        reused=reused,
        sent=sent,
        grading_usd=grading,
        grading_pending=grading_pending,
    )


def _rates(session: Session, spec: Mapping[str, Any], run_id: str) -> tuple[CaseRate, ...]:
    """The pass rates of the run's cases that set a pass_rate (their bar read from the stored spec)."""
    required = required_rates(spec)
    if not required:
        return ()
    verdicts = (v for v in repository.graded_verdicts(session, run_id) if v[0] in required)
    return case_rates(verdicts, required)


def read_run_totals(database: Database, run_id: str) -> RunTotals:
    """The whole run's units per status and per process, as stored (every process's, not only ours)."""
    with database.session() as session:
        by_owner = repository.counts_by_owner(session, run_id)
    totals: dict[UnitStatus, int] = {"pending": 0, "running": 0, "ok": 0, "failed": 0}
    workers: dict[str, WorkerTotals] = {}
    for owner, counts in by_owner.items():
        for status, count in counts.items():
            totals[status] += count
        if owner:  # "": units no process holds or finished (pending, reused)
            workers[owner] = WorkerTotals(
                in_flight=counts["running"], finished=counts["ok"] + counts["failed"]
            )
    return RunTotals(
        ok=totals["ok"],
        failed=totals["failed"],
        in_flight=totals["running"],
        pending=totals["pending"],
        workers=workers,
    )
