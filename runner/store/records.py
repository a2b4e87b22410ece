"""The records the repository accepts and returns: frozen dataclasses, never ORM objects."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from datetime import datetime

    from runner.model import AttemptError, AttemptRecord, Choice, Completion, CompletionError, Usage

RunStatus = Literal["running", "finished", "interrupted", "failed"]
UnitStatus = Literal["pending", "running", "ok", "failed"]
RawCapturePolicy = Literal["failed", "all", "none"]  # which attempts keep their raw stream bytes


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


@dataclass(frozen=True, slots=True, kw_only=True)
class ClaimedUnit:
    """A unit this process holds the lease of; ``attempts`` is how many it already had."""

    id: int
    run_id: str
    key: str
    provider: str
    case_id: str
    repeat: int
    request_hash: str
    attempts: int
    lease_expires_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptWrite:
    """Store one attempt that did not end its unit (a retry will follow). A writer item.

    ``cost_computed`` is the USD cost of the tokens it consumed at the run's prices (runner.pricing).
    """

    unit_id: int
    attempt: AttemptRecord
    cost_computed: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class UnitFinish:
    """End a unit: its final attempt, its result rows and its status commit in one transaction.

    Applied only while ``owner`` still holds the unit's lease (status ``running``); otherwise the
    attempt is still stored (its tokens were spent) but the unit is left to whoever holds it now.
    ``completion`` defaults to the final attempt's; a failed unit keeps its partial output if any.
    """

    unit_id: int
    owner: str
    status: Literal["ok", "failed"]
    attempt: AttemptRecord | None
    cost_computed: float | None = None
    completion: Completion | None = None
    assertions: tuple[dict[str, Any], ...] | None = None  # outcomes of the case's expect, if any


WriteItem = AttemptWrite | UnitFinish


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchOutcome:
    """What one committed batch did; ``lost`` are finishes dropped because the lease was lost."""

    attempts: int
    finished: tuple[int, ...]
    lost: tuple[int, ...]
    cost_usd: float  # reported-else-computed cost of the batch's attempts


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
    error: AttemptError | None
    stream_error: CompletionError | None
    bytes_received: int
    chunks: int
    heartbeats: int
    model: str | None
    complete: bool | None
    partial_choices: tuple[Choice, ...]
    usage: Usage | None
    cost_reported: float | None
    cost_computed: float | None
    has_raw_capture: bool


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
    assertions: tuple[object, ...] = ()  # per choice, as stored by the reports (None: not checked)
