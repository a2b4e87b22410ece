"""One export record per unit (JSON Lines or CSV), pure formatting over the repository's UnitViews.

JUnit XML, one test case per unit, is ``runner.report.junit``."""

from __future__ import annotations

import csv
from typing import TYPE_CHECKING, Any, Final, Literal

from runner import jsontext
from runner.pricing import booked_cost
from runner.store.rows import USAGE_COLUMNS

if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import TextIO

    from runner.grading.assertions import AssertionOutcome
    from runner.model import JSON, Usage
    from runner.store.records import UnitView

ExportFormat = Literal["jsonl", "csv"]
EXPORT_FORMATS: Final = ("jsonl", "csv")
EXPORT_FIELDS: Final = (
    "run_id",
    "unit",
    "provider",
    "case",
    "repeat",
    "status",
    "attempts",
    "error",
    "model",
    "complete",
    "choices",
    "usage",
    "cost_usd",
    "cost_source",
    "timing",
    "assertions",  # [{name, passed, score, reason[, error][, pending]}] of a unit with a result; [] otherwise
)
TIMING_FIELDS: Final = ("ttfb_s", "ttft_s", "first_reasoning_s", "duration_s")
CSV_FIELDS: Final = (
    "run_id",
    "unit",
    "provider",
    "case",
    "repeat",
    "status",
    "attempts",
    "error_kind",
    "error_http_status",
    "error_message",
    "model",
    "complete",
    "choices",  # how many choices; the columns below are the first one's
    "choice_index",
    "text",
    "reasoning",
    "refusal",
    "tool_calls",  # JSON
    "finish_reason",
    "raw_finish_reason",
    *USAGE_COLUMNS,
    "cost_usd",
    "cost_source",
    *TIMING_FIELDS,
    "assertions_passed",
    "assertions_failed",  # errors (could not be judged) included
    "failed_assertions",  # their names, ";"-separated in table order
)


def _usage(usage: Usage | None) -> dict[str, JSON] | None:
    return {name: getattr(usage, name) for name in USAGE_COLUMNS} if usage else None


def _cost(view: UnitView) -> tuple[float | None, str | None]:
    """What the unit cost in USD over all its attempts, and whether that is reported or computed.

    ``reported`` only when every attempt that cost anything had a provider-reported cost. A reused
    unit made no attempt: it shows its stored result's cost.
    """
    costs = [(a.cost_reported, a.cost_computed) for a in view.attempts]
    if not view.attempts:
        costs = [(view.cost_reported, view.cost_computed)]
    known = [(reported, computed) for reported, computed in costs if (reported, computed) != (None, None)]
    if not known:
        return None, None
    total = sum(booked_cost(reported, computed) or 0.0 for reported, computed in known)
    source = "reported" if all(reported is not None for reported, _ in known) else "computed"
    return total, source


def assertion_record(outcome: AssertionOutcome) -> dict[str, JSON]:
    """One assertion outcome as exports show it: ``reason`` is its detail; ``error`` only when set."""
    record: dict[str, JSON] = {
        "name": outcome.name,
        "passed": outcome.passed,
        "score": outcome.score,
        "reason": outcome.detail,
    }
    if outcome.error:
        record["error"] = True
    if outcome.pending:
        record["pending"] = True  # a judge still grading: neither passed nor failed
    return record


def unit_record(view: UnitView) -> dict[str, JSON]:
    """The export record of one unit, with exactly the fields of ``EXPORT_FIELDS``."""
    final = view.final
    completion = view.completion
    error = None
    if view.status != "ok" and final is not None and final.error is not None:
        error = final.error.to_dict()
    cost_usd, cost_source = _cost(view)
    complete: bool | None
    if completion is not None:
        model, complete, usage = completion.model, completion.complete, completion.usage
        choices = [choice.to_dict() for choice in completion.choices]
    elif final is not None:
        model, complete, usage = final.model, final.complete, final.usage
        choices = [choice.to_dict() for choice in final.partial_choices]
    else:
        model, complete, usage, choices = None, None, None, []
    timing = dict.fromkeys(TIMING_FIELDS)
    if final is not None:
        timing = {
            "ttfb_s": final.first_byte_s,
            "ttft_s": final.first_answer_s,
            "first_reasoning_s": final.first_reasoning_s,
            "duration_s": final.end_s,
        }
    return {
        "run_id": view.run_id,
        "unit": view.key,
        "provider": view.provider,
        "case": view.case_id,
        "repeat": view.repeat,
        "status": view.status,
        "attempts": view.attempt_count,
        "error": error,
        "model": model,
        "complete": complete,
        "choices": choices,
        "usage": _usage(usage),
        "cost_usd": cost_usd,
        "cost_source": cost_source,
        "timing": timing,
        # Only a final result's outcomes count (UnitView.evaluated): a failed unit was not graded.
        "assertions": [assertion_record(outcome) for outcome in view.evaluated],
    }


def csv_row(record: dict[str, JSON]) -> dict[str, Any]:
    """An export record flattened for CSV: the first choice only, JSON for tool calls."""
    error = record["error"] or {}
    choices = record["choices"]
    first = choices[0] if choices else {}
    usage = record["usage"] or {}
    row = {name: record[name] for name in ("run_id", "unit", "provider", "case", "repeat", "status")}
    row.update(
        attempts=record["attempts"],
        error_kind=error.get("kind"),
        error_http_status=error.get("http_status"),
        error_message=error.get("message"),
        model=record["model"],
        complete=record["complete"],
        choices=len(choices),
        choice_index=first.get("index"),
        text=first.get("text"),
        reasoning=first.get("reasoning"),
        refusal=first.get("refusal"),
        tool_calls=jsontext.dumps_text(first["tool_calls"]) if first else None,
        finish_reason=first.get("finish_reason"),
        raw_finish_reason=first.get("raw_finish_reason"),
        cost_usd=record["cost_usd"],
        cost_source=record["cost_source"],
    )
    row.update({name: usage.get(name) for name in USAGE_COLUMNS})
    row.update(record["timing"])
    assertions = record["assertions"]
    failed = [a["name"] for a in assertions if not a["passed"] and not a.get("pending")]
    row.update(
        assertions_passed=len(assertions) - len(failed),
        assertions_failed=len(failed),
        failed_assertions=";".join(failed),
    )
    return row


def write_export(views: Iterable[UnitView], out: TextIO, fmt: ExportFormat = "jsonl") -> int:
    """Write one record per unit to ``out``; return how many."""
    count = 0
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
        writer.writeheader()
        for view in views:
            writer.writerow(csv_row(unit_record(view)))
            count += 1
        return count
    for view in views:
        out.write(jsontext.dumps_text(unit_record(view)))
        out.write("\n")
        count += 1
    return count
