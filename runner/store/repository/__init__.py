"""The only SQL: runs, the unit queue, attempts and results, and the reports' cross-run reads.

Every function takes a Session, runs exactly one transaction of its own (the session must have none
open), and returns frozen records from ``runner.store.records``, never ORM objects. SQLAlchemy errors
come out as StorageError. Times default to the local UTC clock; pass ``now`` to decide them (tests).

The queue: ``add_units`` stores a run's units as ``pending``; ``claim_units`` leases a batch
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite) -- units whose lease expired
are claimable again; ``renew_leases`` keeps them; ``write_batch`` stores attempts and ends units, a
unit's result rows and its status change in one transaction, only while its lease is still held.

One module per concern: ``runs``, ``queue``, ``reuse`` (``--reuse``: which earlier sample each unit
copies), ``writes``, ``reads``, ``reports``, ``failures`` (the end-of-run breakdown); ``sql`` holds
what they share.
"""

from __future__ import annotations

from runner.store.records import (
    AttemptCost,
    AttemptWrite,
    BatchOutcome,
    ClaimedUnit,
    RunInfo,
    RunStatus,
    UnitFinish,
    UnitStatus,
    UnitView,
)
from runner.store.repository.failures import ProviderFailures, failure_breakdown
from runner.store.repository.grading import (
    count_grading_pending,
    grading_cost,
    queue_gradings,
    ungraded_units,
)
from runner.store.repository.queue import (
    add_units,
    any_outstanding,
    claim_units,
    count_outstanding,
    live_leases,
    release_units,
    renew_leases,
    resume_run,
)
from runner.store.repository.reads import (
    StoredCapture,
    count_failed_assertions,
    counts_by_owner,
    graded_verdicts,
    iter_units,
    raw_capture,
    reuse_counts,
    spend_so_far,
    stored_capture,
    stream_answers,
    stream_units,
    unit_counts,
    units_by_id,
)
from runner.store.repository.reports import attempt_costs
from runner.store.repository.runs import (
    create_run,
    get_run,
    job_spec_json,
    list_runs,
    mark_run,
    new_run_id,
    prices_json,
)
from runner.store.repository.writes import write_batch

__all__ = [
    "AttemptCost",
    "AttemptWrite",
    "BatchOutcome",
    "ClaimedUnit",
    "ProviderFailures",
    "RunInfo",
    "RunStatus",
    "StoredCapture",
    "UnitFinish",
    "UnitStatus",
    "UnitView",
    "add_units",
    "any_outstanding",
    "attempt_costs",
    "claim_units",
    "count_failed_assertions",
    "count_grading_pending",
    "count_outstanding",
    "counts_by_owner",
    "create_run",
    "failure_breakdown",
    "get_run",
    "graded_verdicts",
    "grading_cost",
    "iter_units",
    "job_spec_json",
    "list_runs",
    "live_leases",
    "mark_run",
    "new_run_id",
    "prices_json",
    "queue_gradings",
    "raw_capture",
    "release_units",
    "renew_leases",
    "resume_run",
    "reuse_counts",
    "spend_so_far",
    "stored_capture",
    "stream_answers",
    "stream_units",
    "ungraded_units",
    "unit_counts",
    "units_by_id",
    "write_batch",
]
