"""What the reports read: plain frozen records of runs, units and attempts, free of SQL and ORM.

The store's read queries fill these (``runner.report.queries``); everything after them is pure, so
contexts, charts and templates are tested from records made in Python as well as from a database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datetime import datetime

    from runner.grading.assertions import AssertionOutcome
    from runner.model import AttemptError, Completion, Usage


@dataclass(frozen=True, slots=True, kw_only=True)
class RunFacts:
    """One row of ``runs``: ``prices`` is the snapshot frozen at run start, per provider."""

    id: str
    job_name: str
    status: str
    started_at: datetime
    finished_at: datetime | None = None
    host: str = ""
    runner_version: str = ""
    tags: tuple[str, ...] = ()
    prices: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptFacts:
    """One HTTP attempt; offsets are seconds after ``started_at`` on one monotonic clock."""

    number: int
    started_at: datetime
    headers_s: float | None = None
    first_reasoning_s: float | None = None
    first_answer_s: float | None = None
    end_s: float | None = None
    gap_p50_s: float | None = None
    gap_p90_s: float | None = None
    http_status: int | None = None
    error: AttemptError | None = None
    usage: Usage | None = None
    cost_reported: float | None = None  # USD, as the provider reported it
    cost_computed: float | None = None  # USD, from the run's frozen prices

    @property
    def ttft_s(self) -> float | None:
        """Time to first token: the first answer token (AttemptTiming.ttft_s; reasoning is separate)."""
        return self.first_answer_s

    @property
    def cost_usd(self) -> float | None:
        """What this attempt cost: the provider's figure when it sent one, else the computed one."""
        return self.cost_reported if self.cost_reported is not None else self.cost_computed


@dataclass(frozen=True, slots=True, kw_only=True)
class UnitFacts:
    """One provider x case x repeat with its attempts in order and its final completion."""

    key: str
    provider: str
    case_id: str
    repeat: int
    status: str  # pending | running | ok | failed
    attempts: tuple[AttemptFacts, ...] = ()
    completion: Completion | None = None
    assertions: tuple[AssertionOutcome, ...] = ()
    model: str | None = None

    @property
    def final(self) -> AttemptFacts | None:
        return self.attempts[-1] if self.attempts else None


@dataclass(frozen=True, slots=True, kw_only=True)
class RunData:
    """A run and all its units: the input of the run report, the diff and the trend."""

    run: RunFacts
    units: tuple[UnitFacts, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class CostFact:
    """Tokens and cost of one attempt with everything ``runner cost`` groups by."""

    run_id: str
    job_name: str
    tags: tuple[str, ...]
    provider: str
    model: str | None
    started_at: datetime
    ok: bool
    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cached_input_tokens: int = 0
    cost_reported: float | None = None
    cost_computed: float | None = None
