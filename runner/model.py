"""The normalized result of one streamed request: the vocabulary of the DB, exports and reports.

Every dialect reduces its provider's wire shape to these frozen records; nothing after the dialect
knows a provider's field names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal, get_args

if TYPE_CHECKING:
    from datetime import datetime

FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error", "cancelled"]
FINISH_REASONS: Final[tuple[FinishReason, ...]] = get_args(FinishReason)

JSON = Any  # a value as json.loads returns it


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCall:
    """One tool call rebuilt from its fragments; ``arguments`` is the exact concatenated string."""

    id: str | None
    name: str
    arguments: str

    def to_dict(self) -> dict[str, JSON]:
        return {"id": self.id, "name": self.name, "arguments": self.arguments}


@dataclass(frozen=True, slots=True, kw_only=True)
class Usage:
    """Token counts and cost as the provider reported them (None: not reported).

    ``input_tokens`` counts all input tokens, cache reads and writes included (OpenAI's meaning; for
    Anthropic the sum of its three input counts). ``cost`` is the provider-reported cost in USD.
    ``raw`` is the usage object exactly as sent.
    """

    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    reasoning_tokens: int | None = None
    cached_input_tokens: int | None = None
    cache_write_tokens: int | None = None
    cost: float | None = None
    raw: JSON = None

    def to_dict(self) -> dict[str, JSON]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.total_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "cached_input_tokens": self.cached_input_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "cost": self.cost,
            "raw": self.raw,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Choice:
    """One choice (OpenAI ``choices[].index``, Runware ``resultIndex``) of a completion."""

    index: int
    text: str = ""
    reasoning: str = ""
    reasoning_steps: tuple[JSON, ...] = ()
    refusal: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: FinishReason | None = None
    raw_finish_reason: str | None = None

    def to_dict(self) -> dict[str, JSON]:
        return {
            "index": self.index,
            "text": self.text,
            "reasoning": self.reasoning,
            "reasoning_steps": list(self.reasoning_steps),
            "refusal": self.refusal,
            "tool_calls": [call.to_dict() for call in self.tool_calls],
            "finish_reason": self.finish_reason,
            "raw_finish_reason": self.raw_finish_reason,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class CompletionError:
    """An error the stream itself carried, or a protocol error found while reading it.

    ``type`` is the provider's error type as sent (``overloaded_error``, ``timeoutProvider``) or
    ``protocol_error`` for bytes that broke the dialect's wire format.
    """

    type: str
    message: str
    code: str | int | None = None
    # The wait the error body itself asks for, in seconds (Gemini's RetryInfo.retryDelay): used when
    # no Retry-After header says otherwise. Not stored: the attempt's retry_after records the wait.
    retry_after: float | None = None

    def to_dict(self) -> dict[str, JSON]:
        return {"type": self.type, "message": self.message, "code": self.code}


PROTOCOL_ERROR: Final = "protocol_error"


@dataclass(frozen=True, slots=True, kw_only=True)
class Completion:
    """Everything one stream said, rebuilt.

    ``complete`` is true only when the stream's own terminal signal was seen (``[DONE]``,
    ``message_stop``, or every choice reached a finish reason other than ``error``): a stream that
    just stops is not complete.
    """

    id: str | None = None
    model: str | None = None
    complete: bool = False
    error: CompletionError | None = None
    choices: tuple[Choice, ...] = ()
    usage: Usage | None = None
    extras: dict[str, JSON] = field(default_factory=dict)

    def to_dict(self) -> dict[str, JSON]:
        return {
            "id": self.id,
            "model": self.model,
            "complete": self.complete,
            "error": self.error.to_dict() if self.error else None,
            "choices": [choice.to_dict() for choice in self.choices],
            "usage": self.usage.to_dict() if self.usage else None,
            "extras": self.extras,
        }


ErrorKind = Literal[
    "rate_limited",
    "quota_exhausted",
    "server_error",
    "overloaded",
    "early_close",
    "stream_error",
    "protocol_error",
    "timeout",
    "connect_error",
    "auth_error",
    "payment_required",
    "not_found",
    "client_error",
    "cancelled",
    "response_too_large",
    "not_an_event_stream",
]
ERROR_KINDS: Final[tuple[ErrorKind, ...]] = get_args(ErrorKind)  # one list, two forms


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptError:
    """Why one HTTP attempt failed, classified; stored per attempt and exported per unit."""

    kind: ErrorKind
    message: str
    http_status: int | None = None
    retry_after: float | None = None  # seconds the server asked us to wait
    retryable: bool = False  # what the retry layer decided about this kind of failure

    def to_dict(self) -> dict[str, JSON]:
        return {
            "kind": self.kind,
            "http_status": self.http_status,
            "message": self.message,
            "retryable": self.retryable,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptTiming:
    """When things happened in one attempt, in seconds after ``started_mono`` (None: never).

    All offsets come from one monotonic clock; ``started_at`` is the wall-clock start (UTC) only for
    display and grouping by day.
    """

    started_at: datetime
    headers_s: float | None = None  # response headers received
    first_byte_s: float | None = None  # first body byte
    first_reasoning_s: float | None = None  # first reasoning token
    first_answer_s: float | None = None  # first answer token (text, refusal or tool call)
    end_s: float | None = None  # body finished, failed or was abandoned
    gap_p50_s: float | None = None  # inter-chunk gaps (between body reads)
    gap_p90_s: float | None = None
    gap_max_s: float | None = None

    @property
    def ttft_s(self) -> float | None:
        """Time to first token: the first *answer* token (text, refusal or tool call).

        One definition for the whole project (export, assertions, reports). Reasoning has its own
        figure, ``first_reasoning_s``, so a reasoning model's think time is not hidden in either.
        Over plain TCP on Linux it is when the kernel received the token (runner.run.stream), not
        when a busy loop read it; which of the two dated an attempt is not stored.
        """
        return self.first_answer_s


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptRecord:
    """Everything one HTTP attempt produced: stored as one ``attempts`` row, failed or not.

    ``completion`` is the (possibly partial) rebuilt stream, None when no body was read. A failed
    attempt keeps its partial output and usage: tokens it consumed still count for cost.
    """

    unit_key: str
    number: int  # 1-based attempt number within the unit
    http_status: int | None
    error: AttemptError | None
    completion: Completion | None
    timing: AttemptTiming
    bytes_received: int = 0
    chunks: int = 0  # SSE events dispatched
    heartbeats: int = 0  # SSE comment lines (and dialect ping events)
    raw_capture: bytes | None = None  # the body as received, for `runner parse` replay
    # (offset into raw_capture, seconds after the request started) of each read, when captured
    raw_reads: tuple[tuple[int, float], ...] | None = None

    @property
    def is_ok(self) -> bool:
        return self.error is None


# A loop lag above this at p99 marks a run's timing figures: its TTFT, TTFR, gaps and durations include
# runner's own delay. Here, in the vocabulary, because the run measures it and the report flags it, and
# neither layer may import the other.
LOOP_LAG_THRESHOLD_S: Final = 0.005
_LOOP_LAG_FIELDS: Final = ("p50_s", "p99_s", "max_s", "samples", "interval_s")


@dataclass(frozen=True, slots=True, kw_only=True)
class LoopLag:
    """How late runner's loop woke during a run: quantiles over ``samples`` wake-ups ``interval_s`` apart.

    Stored with the run (``runs.loop_lag``); for a run several processes worked, the worst one by p99.
    """

    p50_s: float
    p99_s: float
    max_s: float
    samples: int
    interval_s: float = 0.01

    @property
    def is_lagging(self) -> bool:
        """Over ``LOOP_LAG_THRESHOLD_S`` at p99: the run's timing figures are not clean."""
        return self.p99_s > LOOP_LAG_THRESHOLD_S

    def describe(self) -> str:
        """One phrase for the run's summary line."""
        text = (
            f"loop lag p50 {self.p50_s * 1000:.1f} ms, p99 {self.p99_s * 1000:.1f} ms, "
            f"max {self.max_s * 1000:.1f} ms"
        )
        if self.is_lagging:
            text += (
                f" (over {LOOP_LAG_THRESHOLD_S * 1000:g} ms at p99: TTFT and gap figures include up to "
                f"{self.p99_s * 1000:.0f} ms of runner's own delay)"
            )
        return text

    def worst(self, other: LoopLag | None) -> LoopLag:
        """This or ``other``, whichever lagged more at p99 (a tie keeps this one)."""
        return other if other is not None and other.p99_s > self.p99_s else self

    def to_json(self) -> dict[str, JSON]:
        return {name: getattr(self, name) for name in _LOOP_LAG_FIELDS}

    @classmethod
    def from_json(cls, data: object) -> LoopLag | None:
        """The stored figures back; None for NULL or a value that is not what ``to_json`` wrote."""
        if not isinstance(data, dict) or not all(
            isinstance(data.get(name), int | float) and not isinstance(data.get(name), bool)
            for name in _LOOP_LAG_FIELDS
        ):
            return None
        return cls(
            p50_s=float(data["p50_s"]),
            p99_s=float(data["p99_s"]),
            max_s=float(data["max_s"]),
            samples=int(data["samples"]),
            interval_s=float(data["interval_s"]),
        )
