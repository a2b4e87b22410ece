"""The records the repository accepts and returns: frozen dataclasses, never ORM objects."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from runner.pricing import booked_cost

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from runner.grading.assertions import AssertionOutcome
    from runner.model import (
        JSON,
        AttemptRecord,
        Choice,
        Completion,
        CompletionError,
        ErrorKind,
        LoopLag,
        Usage,
    )

# planning: created, units still being stored (a run left so is finished planning by --resume / --join)
RunStatus = Literal["planning", "running", "finished", "interrupted", "failed"]
UnitStatus = Literal["pending", "running", "ok", "failed"]
RawCapturePolicy = Literal["failed", "all", "none"]  # which attempts keep their raw stream bytes
# A unit's one outcome as users read it; the report, the CLI summary and the exit code all use it.
Verdict = Literal["passed", "failed assertions", "failed", "not done"]
# The order in which the verdicts are listed and their units shown: the worst news first.
VERDICTS: Final[tuple[Verdict, ...]] = ("failed assertions", "failed", "not done", "passed")


def unit_verdict(status: UnitStatus, assertions: Sequence[AssertionOutcome]) -> Verdict:
    """A unit's verdict: ``passed`` only when it ended ok and every assertion on its result held.

    A unit without a final result (``failed``, or not finished) has its assertions not evaluated:
    whatever an older runner stored for its partial output does not count either way. An ok unit whose
    judge is still grading (and that failed nothing else) is ``not done``.
    """
    if status == "ok":
        if any(not o.passed and not o.pending for o in assertions):
            return "failed assertions"
        # A judge still grading: neither passed nor failed yet.
        return "not done" if any(o.pending for o in assertions) else "passed"
    return "failed" if status == "failed" else "not done"


@dataclass(frozen=True, slots=True, kw_only=True)
class RunInfo:
    """One row of ``runs``."""

    id: str
    job_name: str
    job_spec: dict[str, Any]
    job_sha256: str | None
    prices: dict[str, Any]
    status: RunStatus
    started_at: datetime
    finished_at: datetime | None
    host: str
    runner_version: str
    tags: tuple[str, ...]
    # How late runner's loop woke (the worst process's, for a run several worked); None: not measured.
    loop_lag: LoopLag | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ClaimedUnit:
    """A unit this process holds the lease of; ``attempts`` is how many it already had.

    ``lease_token`` fences this claim: every claim of the unit increments it, and the writes made
    under this claim carry it, so a write that arrives after another process claimed the unit is
    recognised (in the write's own transaction) and stored as superseded.
    """

    id: int
    run_id: str
    key: str
    provider: str
    case_id: str
    repeat: int
    request_hash: str
    attempts: int
    lease_expires_at: datetime
    lease_token: int = 0
    # A grading unit's: the unit it grades and the grading request it sends (None for a job's unit).
    graded_unit_id: int | None = None
    grading_prompt: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptWrite:
    """Store one attempt that did not end its unit (a retry will follow). A writer item.

    ``cost_computed`` is the USD cost of the tokens it consumed at the run's prices (runner.pricing).
    ``lease_token`` is the claim's (``ClaimedUnit.lease_token``): when the unit has been claimed
    again since, the attempt is stored superseded. None: a write made outside any claim (tools,
    tests), never fenced. The stored attempt number is allocated by the write, not taken from
    ``attempt.number``, so numbers stay unique per unit whoever writes.
    """

    unit_id: int
    attempt: AttemptRecord
    cost_computed: float | None = None
    lease_token: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class UnitFinish:
    """End a unit: its final attempt, its result rows and its status commit in one transaction.

    Applied only while ``owner`` still holds the unit's lease (status ``running``) and, with a
    ``lease_token``, while that token is still the unit's (no claim since); otherwise the attempt is
    still stored, as superseded (its tokens were spent), and the unit is left to whoever holds it now.
    ``completion`` defaults to the final attempt's; a failed unit keeps its partial output if any.
    """

    unit_id: int
    owner: str
    status: Literal["ok", "failed"]
    attempt: AttemptRecord | None
    cost_computed: float | None = None
    lease_token: int | None = None  # as in AttemptWrite
    completion: Completion | None = None
    assertions: tuple[AssertionOutcome, ...] | None = None  # outcomes of the case's expect, if any
    # A judged unit's final result: the grading unit to queue with it (same transaction, so a unit
    # is never finished without its grading on the way).
    grading: GradingRequest | None = None
    # A grading unit's end: its verdict becomes the graded unit's ``judge`` outcome.
    graded_unit_id: int | None = None
    verdict: AssertionOutcome | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class GradingRequest:
    """A grading unit to queue: a judge provider's request grading the unit ``graded_unit_id``.

    ``key`` is the graded unit's key with ``#judge`` (unique in its run, never a job unit's key);
    ``case_id`` and ``repeat`` are the graded unit's; ``prompt`` is the rendered grading request.
    """

    graded_unit_id: int
    key: str
    provider: str
    case_id: str
    repeat: int
    request_hash: str
    prompt: str


@dataclass(frozen=True, slots=True, kw_only=True)
class GradedUnit:
    """A finished unit of a judged case that has neither a judge outcome nor a grading unit (a run
    stopped between the two, or a ``--reuse`` copy): ``--resume`` queues its grading."""

    id: int
    key: str
    case_id: str
    repeat: int
    completion: Completion | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Flush:
    """A writer item that stores nothing: ``done`` is called once every item sent before it is
    committed (the engine waits on it before deciding whether grading units are still to come)."""

    done: Callable[[], None]


StoredItem = AttemptWrite | UnitFinish
WriteItem = AttemptWrite | UnitFinish | Flush


@dataclass(frozen=True, slots=True, kw_only=True)
class ReusedSample:
    """An earlier unit's result as ``--reuse`` copies it into a new run's unit, to be graded afresh.

    A copy is never sent, so it has no figures of its own: ``ttft_s`` and ``duration_s`` are what the
    sample's final attempt measured when it was sent, ``cost_usd`` what all its attempts cost.
    """

    case_id: str  # the new unit's case: its expectation, as the current job states it, applies
    completion: Completion | None
    ttft_s: float | None
    duration_s: float | None
    cost_usd: float


# The current job's assertions on a reused result (None: the case expects nothing). The store takes it
# as an argument: grading is the run layer's (run/finish.py), which the store may not import.
ReuseGrader = Callable[[ReusedSample], "tuple[AssertionOutcome, ...] | None"]


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchOutcome:
    """What one committed batch did; ``lost`` are finishes dropped because the lease was lost;
    ``superseded`` counts the attempts stored as superseded (made under a lease since taken over)."""

    attempts: int
    finished: tuple[int, ...]
    lost: tuple[int, ...]
    cost_usd: float  # reported-else-computed cost of the batch's attempts
    superseded: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorView:
    """Why a stored attempt failed, as read back: ``AttemptError`` as stored.

    ``retryable`` is the retry layer's verdict (``attempts.error_retryable``); None for attempts
    stored before the column existed, so an unknown verdict is never read back as ``False``.
    """

    kind: ErrorKind
    message: str
    http_status: int | None = None
    retry_after: float | None = None  # seconds the server asked us to wait
    retryable: bool | None = None

    def to_dict(self) -> dict[str, JSON]:
        """The same shape as ``AttemptError.to_dict()`` (exports show one or the other)."""
        return {
            "kind": self.kind,
            "http_status": self.http_status,
            "message": self.message,
            "retryable": self.retryable,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptView:
    """One stored attempt, read back (raw capture excluded: see ``repository.raw_capture``)."""

    id: int
    number: int
    started_at: datetime
    headers_s: float | None
    first_byte_s: float | None
    first_reasoning_s: float | None
    first_answer_s: float | None
    end_s: float | None
    gap_p50_s: float | None
    gap_p90_s: float | None
    gap_max_s: float | None
    http_status: int | None
    error: ErrorView | None
    stream_error: CompletionError | None
    bytes_received: int
    chunks: int
    heartbeats: int
    model: str | None
    complete: bool | None
    partial_choices: tuple[Choice, ...]
    usage: Usage | None
    cost_reported: float | None
    cost_computed: float | None  # USD, from the run's frozen prices
    has_raw_capture: bool
    superseded: bool = False  # made under a lease another process had taken: waste, never the result

    @property
    def ttft_s(self) -> float | None:
        """Time to first token: the first answer token (``AttemptTiming.ttft_s``; reasoning is apart)."""
        return self.first_answer_s

    @property
    def cost_usd(self) -> float | None:
        """What this attempt cost, by the one cost rule (``runner.pricing.booked_cost``)."""
        return booked_cost(self.cost_reported, self.cost_computed)


@dataclass(frozen=True, slots=True, kw_only=True)
class UnitView:
    """One unit with its attempts (in order) and its stored final completion, for export and reports."""

    id: int
    run_id: str
    key: str
    provider: str
    case_id: str
    repeat: int
    request_hash: str
    status: UnitStatus
    attempt_count: int
    reused_from: int | None
    finished_at: datetime | None
    attempts: tuple[AttemptView, ...] = ()
    completion: Completion | None = None
    cost_reported: float | None = None  # of the stored result (a reused one keeps its original)
    cost_computed: float | None = None
    assertions: tuple[AssertionOutcome, ...] = ()  # of the case's expect (empty: none checked)

    @property
    def verdict(self) -> Verdict:
        """The unit's one outcome (see :func:`unit_verdict`)."""
        return unit_verdict(self.status, self.assertions)

    @property
    def evaluated(self) -> tuple[AssertionOutcome, ...]:
        """The assertion outcomes that count: those on a final result (an ok unit), else none."""
        return self.assertions if self.status == "ok" else ()

    @property
    def final(self) -> AttemptView | None:
        """The attempt the unit's outcome came from: the last one stored that is not superseded."""
        return next((a for a in reversed(self.attempts) if not a.superseded), None)

    @property
    def model(self) -> str | None:
        """The model that answered: the stored result's, else the latest attempt that named one."""
        if self.completion is not None and self.completion.model is not None:
            return self.completion.model
        return next((a.model for a in reversed(self.attempts) if a.model), None)


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptCost:
    """One attempt's tokens and cost with its run's grouping fields (no texts: cheap at any scale)."""

    run_id: str
    job_name: str
    tags: tuple[str, ...]
    provider: str
    model: str | None
    started_at: datetime
    ok: bool  # succeeded and not superseded: a superseded attempt's tokens are waste
    input_tokens: int | None
    output_tokens: int | None
    reasoning_tokens: int | None
    cached_input_tokens: int | None
    cost_reported: float | None
    cost_computed: float | None
    # The model the attempt's request named (the run's stored spec: the provider's model, or a
    # "model" param over it), for attempts whose provider reported none (failed ones, Runware).
    requested_model: str | None = None
    superseded: bool = False  # made under a lease another process had taken (see AttemptView)
    grading: bool = False  # an attempt of a grading unit (a judge's request): grading cost

    @property
    def cost_usd(self) -> float | None:
        """What this attempt cost, by the one cost rule (``runner.pricing.booked_cost``)."""
        return booked_cost(self.cost_reported, self.cost_computed)


@dataclass(frozen=True, slots=True, kw_only=True)
class Take:
    """A take's answer: granted (with the adaptive epoch to group 429s), else how long to wait.
    ``budget_spent``: the run's spend has reached the cap; nothing was granted."""

    granted: bool
    wait_s: float = 0.0
    epoch: int = 0
    budget_spent: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Peers:
    """The other live processes of a run: how many keep their limits in the run's database
    (``shared``) and how many still in memory (``solo``: they have not seen anyone else yet)."""

    shared: int
    solo: int

    @property
    def any(self) -> bool:
        return self.shared + self.solo > 0
