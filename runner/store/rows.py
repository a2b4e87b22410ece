"""Pure conversions between the result model and table rows (dicts in, records out); no SQL here."""

from __future__ import annotations

import struct
import zlib
from typing import TYPE_CHECKING, Any, cast

from runner.grading.assertions import AssertionOutcome
from runner.model import Choice, Completion, CompletionError, ToolCall, Usage
from runner.store.records import AttemptView, ErrorView, UnitView

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from datetime import datetime

    from runner.model import AttemptRecord, ErrorKind, FinishReason
    from runner.store.records import RawCapturePolicy

USAGE_COLUMNS = (
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "reasoning_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
)
RAW_COMPRESSION_LEVEL = 6
# attempts.raw_reads: per read, the offset of its first byte in the capture and the milliseconds
# after the request started that it arrived, as little-endian uint32 pairs, zlib-compressed.
READ_FORMAT = struct.Struct("<II")
MAX_UINT32 = 2**32 - 1


def compress_raw(data: bytes) -> bytes:
    """The stored form of a raw stream capture."""
    return zlib.compress(data, RAW_COMPRESSION_LEVEL)


def decompress_raw(data: bytes) -> bytes:
    """The bytes a provider sent, from their stored form."""
    return zlib.decompress(data)


def encode_reads(reads: Sequence[tuple[int, float]]) -> bytes:
    """The stored form of a capture's read times (``attempts.raw_reads``): ms, clamped to uint32."""
    packed = b"".join(
        READ_FORMAT.pack(min(offset, MAX_UINT32), min(max(round(at * 1000), 0), MAX_UINT32))
        for offset, at in reads
    )
    return zlib.compress(packed, RAW_COMPRESSION_LEVEL)


def decode_reads(data: bytes) -> tuple[tuple[int, float], ...]:
    """``(offset, seconds after the request)`` of each read, from ``attempts.raw_reads``."""
    packed = zlib.decompress(data)
    return tuple((offset, ms / 1000) for offset, ms in READ_FORMAT.iter_unpack(packed))


def _usage_columns(usage: Usage | None) -> dict[str, Any]:
    row: dict[str, Any] = {name: getattr(usage, name) if usage else None for name in USAGE_COLUMNS}
    row["usage_raw"] = usage.raw if usage else None
    return row


def assertions_json(outcomes: Sequence[AssertionOutcome] | None) -> list[dict[str, Any]] | None:
    """The stored form of a result's assertion outcomes (None: the case had no expect)."""
    return None if outcomes is None else [outcome.to_dict() for outcome in outcomes]


def assertions_from_json(data: Sequence[Mapping[str, Any]] | None) -> tuple[AssertionOutcome, ...]:
    """Assertion outcomes from their stored form (empty when none were checked).

    An item that is not an outcome (a hand-edited row) is skipped: one bad row must not stop a report.
    """
    return tuple(
        AssertionOutcome.from_dict(item)
        for item in data or ()
        if isinstance(item, dict)
        and isinstance(item.get("name"), str)
        and isinstance(item.get("passed"), bool)
    )


def attempt_row(
    unit_id: int, record: AttemptRecord, cost_computed: float | None, policy: RawCapturePolicy
) -> dict[str, Any]:
    """The ``attempts`` row of one AttemptRecord (every key present, for executemany)."""
    timing = record.timing
    error = record.error
    completion = record.completion
    usage = completion.usage if completion else None
    keep_raw = record.raw_capture is not None and (
        policy == "all" or (policy == "failed" and error is not None)
    )
    failed_output = completion is not None and error is not None and completion.choices
    return {
        "unit_id": unit_id,
        "number": record.number,
        "started_at": timing.started_at,
        "headers_s": timing.headers_s,
        "first_byte_s": timing.first_byte_s,
        "first_reasoning_s": timing.first_reasoning_s,
        "first_answer_s": timing.first_answer_s,
        "end_s": timing.end_s,
        "gap_p50_s": timing.gap_p50_s,
        "gap_p90_s": timing.gap_p90_s,
        "gap_max_s": timing.gap_max_s,
        "http_status": record.http_status,
        "error_kind": error.kind if error else None,
        "error_message": error.message if error else None,
        "error_retryable": error.retryable if error else None,
        "retry_after_s": error.retry_after if error else None,
        "stream_error": completion.error.to_dict() if completion and completion.error else None,
        "bytes_received": record.bytes_received,
        "chunks": record.chunks,
        "heartbeats": record.heartbeats,
        "model": completion.model if completion else None,
        "complete": completion.complete if completion else None,
        "partial_choices": [c.to_dict() for c in completion.choices]
        if failed_output and completion
        else None,
        **_usage_columns(usage),
        "cost_reported": usage.cost if usage else None,
        "cost_computed": cost_computed,
        "raw_capture": compress_raw(record.raw_capture) if keep_raw and record.raw_capture else None,
        "raw_reads": encode_reads(record.raw_reads)
        if keep_raw and record.raw_capture and record.raw_reads
        else None,
        "superseded": False,  # the write decides, under the unit's row lock
    }


def result_rows(
    unit_id: int,
    attempt_id: int | None,
    completion: Completion,
    cost_computed: float | None,
    now: datetime,
    assertions: Sequence[AssertionOutcome] | None = None,
) -> list[dict[str, Any]]:
    """The ``results`` rows of a final completion: one per choice; usage, cost and the assertion
    outcomes (assertions read the first choice) on the first."""
    rows = []
    for position, choice in enumerate(completion.choices):
        first = position == 0
        usage = completion.usage if first else None
        rows.append(
            {
                "unit_id": unit_id,
                "attempt_id": attempt_id,
                "choice_index": choice.index,
                "text": choice.text,
                "reasoning": choice.reasoning,
                "reasoning_steps": list(choice.reasoning_steps),
                "refusal": choice.refusal,
                "tool_calls": [call.to_dict() for call in choice.tool_calls],
                "finish_reason": choice.finish_reason,
                "raw_finish_reason": choice.raw_finish_reason,
                "model": completion.model,
                "completion_id": completion.id,
                "complete": completion.complete,
                "extras": completion.extras,
                **_usage_columns(usage),
                "cost_reported": usage.cost if usage else None,
                "cost_computed": cost_computed if first else None,
                "assertions": assertions_json(assertions) if first else None,
                "created_at": now,
            }
        )
    return rows


def choice_from_dict(data: Mapping[Any, Any]) -> Choice:
    """A Choice from ``Choice.to_dict()`` output (or a results row, which uses the same names)."""
    return Choice(
        index=data.get("index", data.get("choice_index", 0)),
        text=data["text"],
        reasoning=data["reasoning"],
        reasoning_steps=tuple(data["reasoning_steps"]),
        refusal=data["refusal"],
        tool_calls=tuple(
            ToolCall(id=call["id"], name=call["name"], arguments=call["arguments"])
            for call in data["tool_calls"]
        ),
        finish_reason=cast("FinishReason | None", data["finish_reason"]),
        raw_finish_reason=data["raw_finish_reason"],
    )


def usage_from_row(row: Mapping[Any, Any], cost_column: str = "cost_reported") -> Usage | None:
    """The Usage stored in a row's usage columns, None when none was reported."""
    values = {name: row[name] for name in USAGE_COLUMNS}
    cost = row[cost_column]
    raw = row["usage_raw"]
    if all(v is None for v in values.values()) and cost is None and raw is None:
        return None
    return Usage(**values, cost=cost, raw=raw)


def completion_error_from_dict(data: Mapping[Any, Any] | None) -> CompletionError | None:
    """A CompletionError from its ``to_dict()``."""
    if data is None:
        return None
    return CompletionError(type=data["type"], message=data["message"], code=data["code"])


def completion_from_results(
    rows: Sequence[Mapping[Any, Any]], error: CompletionError | None
) -> Completion | None:
    """The Completion stored as ``results`` rows (ordered by choice), None without rows."""
    if not rows:
        return None
    first = rows[0]
    return Completion(
        id=first["completion_id"],
        model=first["model"],
        complete=bool(first["complete"]),
        error=error,
        choices=tuple(choice_from_dict(row) for row in rows),
        usage=usage_from_row(first),
        extras=dict(first["extras"]),
    )


def attempt_view(row: Mapping[Any, Any]) -> AttemptView:
    """An AttemptView from an ``attempts`` row (``has_raw_capture`` a selected boolean)."""
    error = None
    if row["error_kind"] is not None:
        error = ErrorView(
            kind=cast("ErrorKind", row["error_kind"]),
            message=row["error_message"] or "",
            http_status=row["http_status"],
            retry_after=row["retry_after_s"],
            retryable=row["error_retryable"],
        )
    return AttemptView(
        id=row["id"],
        number=row["number"],
        started_at=row["started_at"],
        headers_s=row["headers_s"],
        first_byte_s=row["first_byte_s"],
        first_reasoning_s=row["first_reasoning_s"],
        first_answer_s=row["first_answer_s"],
        end_s=row["end_s"],
        gap_p50_s=row["gap_p50_s"],
        gap_p90_s=row["gap_p90_s"],
        gap_max_s=row["gap_max_s"],
        http_status=row["http_status"],
        error=error,
        stream_error=completion_error_from_dict(row["stream_error"]),
        bytes_received=row["bytes_received"],
        chunks=row["chunks"],
        heartbeats=row["heartbeats"],
        model=row["model"],
        complete=row["complete"],
        partial_choices=tuple(choice_from_dict(c) for c in row["partial_choices"] or ()),
        usage=usage_from_row(row),
        cost_reported=row["cost_reported"],
        cost_computed=row["cost_computed"],
        has_raw_capture=bool(row["has_raw_capture"]),
        superseded=bool(row["superseded"]),
    )


def unit_view(
    unit: Mapping[Any, Any],
    attempts: Sequence[Mapping[Any, Any]],
    results: Sequence[Mapping[Any, Any]],
) -> UnitView:
    """A UnitView from a ``units`` row, its ``attempts`` rows (``attempt_view``'s columns) and its
    ``results`` rows (by choice)."""
    final_attempt = (
        next((row for row in attempts if row["id"] == results[0]["attempt_id"]), None) if results else None
    )
    stream_error = completion_error_from_dict(final_attempt["stream_error"]) if final_attempt else None
    completion = completion_from_results(results, stream_error)
    return UnitView(
        id=unit["id"],
        run_id=unit["run_id"],
        key=unit["key"],
        provider=unit["provider"],
        case_id=unit["case_id"],
        repeat=unit["repeat"],
        request_hash=unit["request_hash"],
        status=unit["status"],
        attempt_count=unit["attempts"],
        reused_from=unit["reused_from"],
        finished_at=unit["finished_at"],
        attempts=tuple(attempt_view(row) for row in attempts),
        completion=completion,
        cost_reported=results[0]["cost_reported"] if results else None,
        cost_computed=results[0]["cost_computed"] if results else None,
        assertions=assertions_from_json(results[0]["assertions"]) if results else (),
    )
