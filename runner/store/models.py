"""The database schema as SQLAlchemy 2 declarative models; Alembic migrations are reviewed copies of it.

Documented for users who query it with plain SQL. Names follow the result model's vocabulary
(``runner.model``). Times are timezone-aware UTC; durations are seconds (``*_s``) after the attempt's
``started_at`` on one monotonic clock. Completion-level figures (usage, cost) of a result are set on
its first choice row only, so ``SUM()`` over ``results`` never counts a completion twice.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from runner.store.escape import escape, escape_json, unescape, unescape_json

if TYPE_CHECKING:
    from sqlalchemy.engine import Dialect

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite stores naive UTC text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: runner stores timezone-aware UTC times only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class _EscapedText(TypeDecorator[str]):
    """Text that may hold any character, U+0000 included (runner.store.escape, on PostgreSQL only).

    PostgreSQL's ``text`` refuses NUL, and one NUL in a model's answer would fail the writer's whole
    batch. The column keeps its SQL type (no migration); only the values are escaped.
    """

    impl: Any
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None or dialect.name != "postgresql":
            return value
        return escape(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None or dialect.name != "postgresql":
            return value
        return unescape(value)


class ProviderText(_EscapedText):
    """A ``text`` column of what a provider sent (answers, error messages)."""

    impl = Text
    cache_ok = True


class ProviderString(_EscapedText):
    """A ``varchar(n)`` column of what a provider sent: ``ProviderString(200)``."""

    impl = String
    cache_ok = True


class ProviderJSON(TypeDecorator[Any]):
    """JSON whose strings may hold U+0000: escaped like ``ProviderText`` on PostgreSQL.

    PostgreSQL's ``json`` stores the escape ``\\u0000`` but then fails every ``->>`` on the value
    ("unsupported Unicode escape sequence"), so plain SQL on the column would break.
    """

    # none_as_null: a Python None is stored as SQL NULL, not the JSON text 'null', so plain SQL
    # (WHERE assertions IS NULL) means what a user expects.
    impl = JSON(none_as_null=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None or dialect.name != "postgresql":
            return value
        return escape_json(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if value is None or dialect.name != "postgresql":
            return value
        return unescape_json(value)


class Base(DeclarativeBase):
    """Declarative base of every table; the metadata Alembic compares against."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: ProviderJSON(),
        list[Any]: ProviderJSON(),
    }


class Run(Base):
    """One execution of a job: its frozen inputs (spec without secrets, prices) and its outcome."""

    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)  # r-7f3k2q
    job_name: Mapped[str] = mapped_column(String(200))
    job_spec: Mapped[dict[str, Any]]  # JobSpec as loaded; never an API key
    job_sha256: Mapped[str | None] = mapped_column(String(64))
    prices: Mapped[dict[str, Any]]  # {provider: pricing.prices_snapshot entry | null}, frozen at start
    # planning (units still being stored) | running | finished | interrupted | failed
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(index=True)
    finished_at: Mapped[datetime | None]
    host: Mapped[str] = mapped_column(String(255))
    runner_version: Mapped[str] = mapped_column(String(40))
    tags: Mapped[list[Any]]
    # {p50_s, p99_s, max_s, samples, interval_s}: how late runner's loop woke (the worst process's,
    # for a run worked by several); NULL: not measured (stored before revision 0003)
    loop_lag: Mapped[dict[str, Any] | None]


class Unit(Base):
    """One provider x case x repeat of a run: a row of the run's work queue."""

    __tablename__ = "units"
    __table_args__ = (
        UniqueConstraint("run_id", "key"),
        # The queue claim and the reports' per-status counts.
        Index(None, "run_id", "status", "id"),
        Index(None, "run_id", "provider", "status", "id"),  # claims go provider by provider
        Index(None, "request_hash", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(500))  # provider/case/repeat, stable across runs
    provider: Mapped[str] = mapped_column(String(200))
    case_id: Mapped[str] = mapped_column(String(300))
    repeat: Mapped[int]
    request_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # pending | running | ok | failed
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None]
    # The fencing token: +1 at every claim. A write carries the token of the claim it worked under and
    # is applied only while it is still current (a paused process's late write is stored superseded).
    lease_token: Mapped[int] = mapped_column(default=0, server_default="0")
    attempts: Mapped[int] = mapped_column(default=0)  # its attempts that are not superseded
    reused_from: Mapped[int | None] = mapped_column(ForeignKey("units.id", ondelete="SET NULL"))
    finished_at: Mapped[datetime | None]
    # A grading unit (a judge provider's request grading another unit's answer) names the unit it
    # grades; NULL for the job's own units. Grading units are claimed and attempted like any unit,
    # but are no unit of the job: exports, counts and diffs leave them out.
    # No foreign key (revision 0005 says why): a grading unit goes with its run, as its graded unit does.
    graded_unit_id: Mapped[int | None] = mapped_column(index=True)
    grading_prompt: Mapped[str | None] = mapped_column(ProviderText)  # the rendered grading request


class Attempt(Base):
    """One HTTP attempt of a unit, failed or not, with its timings and the tokens it consumed."""

    __tablename__ = "attempts"
    __table_args__ = (Index(None, "unit_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"))
    number: Mapped[int]  # 1-based within the unit, across resumes
    started_at: Mapped[datetime] = mapped_column(index=True)
    headers_s: Mapped[float | None] = mapped_column(Float)
    first_byte_s: Mapped[float | None] = mapped_column(Float)
    first_reasoning_s: Mapped[float | None] = mapped_column(Float)
    first_answer_s: Mapped[float | None] = mapped_column(Float)
    end_s: Mapped[float | None] = mapped_column(Float)
    gap_p50_s: Mapped[float | None] = mapped_column(Float)
    gap_p90_s: Mapped[float | None] = mapped_column(Float)
    gap_max_s: Mapped[float | None] = mapped_column(Float)
    http_status: Mapped[int | None]
    error_kind: Mapped[str | None] = mapped_column(String(32))  # runner.model.ERROR_KINDS
    error_message: Mapped[str | None] = mapped_column(ProviderText)
    error_retryable: Mapped[bool | None] = mapped_column(Boolean)  # the retry layer's verdict; NULL: ok
    retry_after_s: Mapped[float | None] = mapped_column(Float)
    stream_error: Mapped[dict[str, Any] | None]  # CompletionError the stream carried
    bytes_received: Mapped[int] = mapped_column(default=0)
    chunks: Mapped[int] = mapped_column(default=0)
    heartbeats: Mapped[int] = mapped_column(default=0)
    model: Mapped[str | None] = mapped_column(ProviderString(200))  # as reported
    complete: Mapped[bool | None] = mapped_column(Boolean)  # None: no body was read
    partial_choices: Mapped[list[Any] | None]  # a failed attempt's output (Choice.to_dict each)
    input_tokens: Mapped[int | None]
    output_tokens: Mapped[int | None]
    total_tokens: Mapped[int | None]
    reasoning_tokens: Mapped[int | None]
    cached_input_tokens: Mapped[int | None]
    cache_write_tokens: Mapped[int | None]
    usage_raw: Mapped[dict[str, Any] | None]
    cost_reported: Mapped[float | None] = mapped_column(Float)  # USD, as the provider reported it
    cost_computed: Mapped[float | None] = mapped_column(Float)  # USD, from the run's frozen prices
    raw_capture: Mapped[bytes | None] = mapped_column(LargeBinary)  # zlib of the body as received
    # zlib of (offset into the capture, ms after the request) per read, as uint32 pairs (rows.encode_reads)
    raw_reads: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Made under a lease that had passed to another process by the time it was written: its tokens
    # were spent (waste), but it is never the unit's result nor counted in ``units.attempts``.
    superseded: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


# A unit's current result: its rows not replaced by a later attempt's (``--retry failed``).
RESULT_IS_CURRENT = "replaced_at IS NULL"


class Result(Base):
    """One choice of a unit's completion from one attempt: its current result (ok, or the partial
    output a failed unit ended with), or one it had before ``--retry failed`` (``replaced_at`` set)."""

    __tablename__ = "results"
    __table_args__ = (
        # One current row per choice; replaced rows are the unit's history, as many as its retries.
        Index(
            None,
            "unit_id",
            "choice_index",
            unique=True,
            sqlite_where=text(RESULT_IS_CURRENT),
            postgresql_where=text(RESULT_IS_CURRENT),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"))
    attempt_id: Mapped[int | None] = mapped_column(ForeignKey("attempts.id", ondelete="SET NULL"), index=True)
    choice_index: Mapped[int]
    text: Mapped[str] = mapped_column(ProviderText)
    reasoning: Mapped[str] = mapped_column(ProviderText)
    reasoning_steps: Mapped[list[Any]]
    refusal: Mapped[str | None] = mapped_column(ProviderText)
    tool_calls: Mapped[list[Any]]  # ToolCall.to_dict each
    finish_reason: Mapped[str | None] = mapped_column(String(32))
    raw_finish_reason: Mapped[str | None] = mapped_column(ProviderString(100))
    model: Mapped[str | None] = mapped_column(ProviderString(200))
    completion_id: Mapped[str | None] = mapped_column(ProviderString(200))
    complete: Mapped[bool] = mapped_column(Boolean)
    extras: Mapped[dict[str, Any]]
    # Completion-level: set on the first choice row only (NULL on the others).
    input_tokens: Mapped[int | None]
    output_tokens: Mapped[int | None]
    total_tokens: Mapped[int | None]
    reasoning_tokens: Mapped[int | None]
    cached_input_tokens: Mapped[int | None]
    cache_write_tokens: Mapped[int | None]
    usage_raw: Mapped[dict[str, Any] | None]
    cost_reported: Mapped[float | None] = mapped_column(Float)
    cost_computed: Mapped[float | None] = mapped_column(Float)
    assertions: Mapped[list[Any] | None]  # the case's expect outcomes, on the first choice's row
    created_at: Mapped[datetime] = mapped_column(index=True)
    replaced_at: Mapped[datetime | None]  # when --retry failed reopened the unit; NULL: current


class LimitBucket(Base):
    """One provider's shared send budget in a run: what every process joined on the run draws from.

    The RPM and TPM buckets are refilled by the time elapsed since ``refilled_at`` on each take (no
    timer anywhere); ``concurrency`` is the adaptive limit (halved on a 429, +1 after successes).
    Times are Unix seconds of the taking process's clock (hosts of one run keep NTP time).
    """

    __tablename__ = "limit_buckets"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    provider: Mapped[str] = mapped_column(String(200), primary_key=True)
    rpm_tokens: Mapped[float] = mapped_column(Float)
    tpm_tokens: Mapped[float] = mapped_column(Float)
    refilled_at: Mapped[float] = mapped_column(Float)
    concurrency: Mapped[int]  # the adaptive limit in force, 1..the provider's configured concurrency
    epoch: Mapped[int] = mapped_column(default=0)  # decreases so far: a 429 of an older grant is not new
    successes: Mapped[int] = mapped_column(default=0)  # in a row since the last change


class LimitHolder(Base):
    """Attempts one process has in flight for one provider of a run, alive while ``expires_at`` is ahead.

    A process that dies stops renewing: once ``expires_at`` passes, its slots no longer count.
    """

    __tablename__ = "limit_holders"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    provider: Mapped[str] = mapped_column(String(200), primary_key=True)
    owner: Mapped[str] = mapped_column(String(200), primary_key=True)
    slots: Mapped[int]
    expires_at: Mapped[float] = mapped_column(Float)  # Unix seconds


class LimitWorker(Base):
    """A process working a run, alive while ``expires_at`` is ahead (its heartbeat).

    A process alone on its run keeps its limits in memory (``shared`` false: no database round trip
    per attempt); once it sees another live worker it moves them here and sets ``shared``, and a
    process that joins waits for that before it takes anything.
    """

    __tablename__ = "limit_workers"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    owner: Mapped[str] = mapped_column(String(200), primary_key=True)
    shared: Mapped[bool] = mapped_column(Boolean)
    expires_at: Mapped[float] = mapped_column(Float)  # Unix seconds
    # USD: what the run had booked when this process started, and what this process spent since
    # (kept current while shared, every few tenths of a second while alone, and at its end). The
    # run's spend, checked against max_cost_usd: MIN(spent_before_usd) + SUM(spent_usd) over its workers.
    spent_before_usd: Mapped[float] = mapped_column(Float)
    spent_usd: Mapped[float] = mapped_column(Float)
