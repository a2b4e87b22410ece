"""What every report shares: a run as read from the store, its header, and an inline chart."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from datetime import datetime

    from markupsafe import Markup

    from runner.store.lean import LeanAttempt, LeanUnit
    from runner.store.records import AttemptView, RunInfo, UnitView


@dataclass(frozen=True, slots=True, kw_only=True)
class RunData:
    """A run and all its units, as the store's records: the input of the run report, diff and trend."""

    run: RunInfo
    units: tuple[UnitView, ...]
    # The processes that worked the run (lease owner ``host:pid:random``) and the units each finished
    # or holds; empty when not read (diff, trend) or for a run stored before finished units kept theirs.
    workers: tuple[WorkerShare, ...] = ()
    # USD of the run's grading units (judges' requests), which ``units`` leave out; None: not read,
    # or no unit was graded by a judge.
    grading_cost: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerShare:
    """One process's part of a run: units it finished, units it holds now."""

    owner: str  # host:pid:random
    finished: int
    in_flight: int = 0

    @property
    def host(self) -> str:
        return self.owner.partition(":")[0]


@dataclass(frozen=True, slots=True, kw_only=True)
class Chart:
    """One inline SVG chart with a caption saying how to read it."""

    id: str
    title: str
    caption: str
    svg: Markup
    empty: str | None = None  # shown instead of the chart when it has nothing to draw (then svg is unused)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunHeader:
    id: str
    job_name: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    wall_s: float | None
    host: str
    runner_version: str
    tags: tuple[str, ...]


def attempt_end(attempt: AttemptView | LeanAttempt) -> datetime:
    return attempt.started_at + timedelta(seconds=attempt.end_s or 0.0)


def run_header(run: RunInfo, units: Iterable[UnitView | LeanUnit]) -> RunHeader:
    """The run's identity and wall time (from the runs row, else from its attempts)."""
    return header_at(run, max((attempt_end(a) for u in units for a in u.attempts), default=None))


def header_at(run: RunInfo, last_end: datetime | None) -> RunHeader:
    """The run's identity and wall time: to ``finished_at``, else to ``last_end`` (its last attempt's end)."""
    finished = run.finished_at or last_end
    wall = (finished - run.started_at).total_seconds() if finished else None
    return RunHeader(
        id=run.id,
        job_name=run.job_name,
        status=run.status,
        started_at=run.started_at,
        finished_at=run.finished_at,
        wall_s=wall,
        host=run.host,
        runner_version=run.runner_version,
        tags=run.tags,
    )


def expected_assertions(job_spec: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """Each case's expect keys, from the job a run stored (``spec.job_to_json``: tables as written).

    Read leniently: a report of an old or odd run shows fewer "not evaluated" checks rather than failing.
    """
    cases = job_spec.get("cases")
    found: dict[str, tuple[str, ...]] = {}
    for case in cases if isinstance(cases, list) else ():
        expect = case.get("expect") if isinstance(case, dict) else None
        if isinstance(expect, dict) and isinstance(case.get("id"), str):
            # pass_rate is no check of a unit: it rates the case over its repeats (the pass matrix).
            found[case["id"]] = tuple(str(key) for key in expect if key != "pass_rate")
    return found


def not_evaluated(unit: UnitView | LeanUnit, expected: Mapping[str, Sequence[str]]) -> tuple[str, ...]:
    """The assertions of a unit without a final result, by name: none were evaluated.

    What an older runner stored for such a unit (graded on partial output) names them; else the job's
    expect keys for the unit's case do.
    """
    if unit.status == "ok":
        return ()
    return tuple(o.name for o in unit.assertions) or tuple(expected.get(unit.case_id, ()))
