"""Grading that a run still owes: queue the grading units of finished units of judged cases that have
none (``--resume`` of a run stopped between a result and its grading's queueing, a ``--reuse`` copy).

Called by the run service before the engine starts; the grading units then run like any unit.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from runner.job.judge import judged_cases
from runner.run.finish import grading_request
from runner.store import repository

if TYPE_CHECKING:
    from runner.spec import JobSpec
    from runner.store.db import Database

log = logging.getLogger(__name__)


def queue_missing_gradings(database: Database, run_id: str, job: JobSpec) -> int:
    """Queue the grading of every finished unit of a judged case that has none (a run stopped
    between a unit's result and its grading's queueing, or a ``--reuse`` copy); return how many."""
    judged = judged_cases(job)
    if not judged:
        return 0
    judges = {p.name: p for p in job.providers if p.role == "judge"}
    cases = {case.id: case for case in job.cases}
    with database.session() as session:
        units = repository.ungraded_units(session, run_id, judged)
        gradings = [
            request
            for unit in units
            if (
                request := grading_request(
                    unit, cases[unit.case_id], judges[judged[unit.case_id].provider], unit.completion
                )
            )
            is not None
        ]
        if gradings:
            repository.queue_gradings(session, gradings)
    if gradings:
        log.info("run %s: %d finished units were not graded yet; grading them", run_id, len(gradings))
    return len(gradings)
