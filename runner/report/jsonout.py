"""``--json`` of ``runner runs``, ``show``, ``diff``, ``trend`` and ``cost``: plain JSON values.

Keys are documented in the README ("Browsing runs in the terminal"); a unit's object extends its
``runner export`` record, so scripts read one shape for both.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from runner.report.export import unit_record

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from runner.model import JSON
    from runner.report.common import RunHeader
    from runner.report.cost import CostContext, CostRow
    from runner.report.diff import DiffContext
    from runner.report.inspect import AttemptStream, RunSummary, UnitDetail
    from runner.report.stats import GroupStats
    from runner.report.trend import TrendContext
    from runner.store.records import AttemptView, RunInfo
    from runner.store.repository import ProviderFailures
    from runner.store.repository.browse import RunRow, UnitTally


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def run_json(run: RunInfo, *, now: datetime | None = None) -> dict[str, JSON]:
    """A run's identity and times (``duration_s``: to now while it has not finished)."""
    end = run.finished_at or (now or datetime.now(UTC))
    return {
        "id": run.id,
        "job": run.job_name,
        "status": run.status,
        "started_at": _time(run.started_at),
        "finished_at": _time(run.finished_at),
        "duration_s": max((end - run.started_at).total_seconds(), 0.0),
        "host": run.host,
        "runner_version": run.runner_version,
        "tags": list(run.tags),
    }


def tally_json(tally: UnitTally) -> dict[str, JSON]:
    """Unit verdict counts, attempts, tokens and cost."""
    return {
        "units": {
            "total": tally.units,
            "passed": tally.passed,
            "failed_assertions": tally.failed_assertions,
            "failed": tally.failed,
            "not_done": tally.not_done,
        },
        "checks": {"passed": tally.checks_passed, "total": tally.checks_total},
        "attempts": {
            "total": tally.attempts,
            "retries": tally.retries,
            "failed": tally.failed_attempts,
            "error_kinds": dict(tally.error_kinds),
        },
        "tokens": {
            "input": tally.input_tokens,
            "cached_input": tally.cached_input_tokens,
            "output": tally.output_tokens,
            "reasoning": tally.reasoning_tokens,
        },
        "cost_usd": tally.cost_usd,
        "wasted_usd": tally.wasted_usd,
    }


def runs_json(rows: Sequence[RunRow], *, now: datetime | None = None) -> dict[str, JSON]:
    """``runner runs --json``: ``{"runs": [...]}``, newest first."""
    return {"runs": [{**run_json(row.run, now=now), **tally_json(row.tally)} for row in rows]}


def failures_json(failures: Sequence[ProviderFailures]) -> list[JSON]:
    """The failure breakdown per provider (as ``runner run --json`` has it)."""
    return [
        {
            "provider": p.provider,
            "failed": p.failed,
            "error_kinds": dict(p.error_kinds),
            "failed_units": list(p.failed_units),
            "failed_assertions": p.failed_assertions,
            "assertions": dict(p.assertions),
            "assertion_units": list(p.assertion_units),
        }
        for p in failures
    ]


def summary_json(summary: RunSummary) -> dict[str, JSON]:
    """``runner show RUN --json``."""
    return {
        "run": run_json(summary.run),
        **tally_json(summary.total),
        "providers": [
            {
                "name": p.name,
                **tally_json(p.tally),
                "price": p.price,
                "ttft_p50_s": p.ttft_p50_s,
                "ttft_p90_s": p.ttft_p90_s,
                "duration_p50_s": p.duration_p50_s,
                "duration_p90_s": p.duration_p90_s,
            }
            for p in summary.providers
        ],
        "failures": failures_json(summary.failures),
        "notes": list(summary.notes),
    }


def attempt_json(a: AttemptView) -> dict[str, JSON]:
    """One attempt with its timing, error, usage and cost."""
    return {
        "number": a.number,
        "id": a.id,
        "started_at": _time(a.started_at),
        "superseded": a.superseded,
        "http_status": a.http_status,
        "error": None if a.error is None else a.error.to_dict(),
        "stream_error": None if a.stream_error is None else a.stream_error.to_dict(),
        "timing": {
            "headers_s": a.headers_s,
            "ttfb_s": a.first_byte_s,
            "first_reasoning_s": a.first_reasoning_s,
            "ttft_s": a.first_answer_s,
            "duration_s": a.end_s,
            "gap_p50_s": a.gap_p50_s,
            "gap_p90_s": a.gap_p90_s,
            "gap_max_s": a.gap_max_s,
        },
        "bytes_received": a.bytes_received,
        "events": a.chunks,
        "heartbeats": a.heartbeats,
        "complete": a.complete,
        "model": a.model,
        "usage": None if a.usage is None else a.usage.to_dict(),
        "cost_reported": a.cost_reported,
        "cost_computed": a.cost_computed,
        "partial_choices": [c.to_dict() for c in a.partial_choices],
        "has_raw_capture": a.has_raw_capture,
    }


def unit_json(detail: UnitDetail) -> dict[str, JSON]:
    """``runner show RUN/UNIT --json``: the unit's export record plus its request and every attempt."""
    request = detail.request
    return {
        **unit_record(detail.unit),
        "verdict": detail.unit.verdict,
        "job": detail.run.job_name,
        "dialect": detail.dialect,
        "request": None
        if request is None
        else {
            "method": request.method,
            "url": request.url,
            "headers": dict(request.headers),
            "body": request.body,
        },
        "attempt_details": [attempt_json(a) for a in detail.unit.attempts],
    }


def streams_json(detail: UnitDetail, streams: Sequence[AttemptStream]) -> dict[str, JSON]:
    """``runner show RUN/UNIT --raw --json``: each attempt's reads (text, offset, arrival) and events."""
    return {
        "run_id": detail.run.id,
        "unit": detail.unit.key,
        "attempts": [
            {
                "number": s.number,
                "http_status": s.http_status,
                "captured": s.captured,
                "reads": [
                    {
                        "offset": r.offset,
                        "at_s": r.at_s,
                        "text": r.data.decode("utf-8", "replace"),
                        "events": [{"event": e.event, "data": e.data, "id": e.id} for e in r.events],
                    }
                    for r in s.reads
                ],
                "completion": None if s.completion is None else s.completion.to_dict(),
            }
            for s in streams
        ],
    }


def _header_json(run: RunHeader) -> dict[str, JSON]:
    return {
        "id": run.id,
        "job": run.job_name,
        "status": run.status,
        "started_at": _time(run.started_at),
        "finished_at": _time(run.finished_at),
        "wall_s": run.wall_s,
    }


def diff_json(context: DiffContext, report: Path | None) -> dict[str, JSON]:
    """``runner diff --json``: the match, every figure with its test and verdict, the regressions."""
    return {
        "run_a": _header_json(context.run_a),
        "run_b": _header_json(context.run_b),
        "matched": context.matched,
        "conclusive": context.is_conclusive,
        "missing_in_b": list(context.only_in_a),
        "new_in_b": list(context.only_in_b),
        "tests": context.tests,
        "alpha": context.thresholds.alpha,
        "regressions": context.regressions,
        "figure_regressions": context.figure_regressions,
        "answers_changed": context.answers_changed,
        "figures": [
            {
                "provider": m.provider,
                "figure": m.metric,
                "kind": m.kind,
                "a": m.before,
                "b": m.after,
                "change": m.change,
                "threshold": m.threshold,
                "test": m.test,
                "samples": list(m.samples),
                "p": m.p_value,
                "p_holm": m.p_adjusted,
                "verdict": m.verdict,
            }
            for m in context.metrics
        ],
        "flips": [
            {
                "unit": f.key,
                "name": f.name,
                "a": f.before,
                "b": f.after,
                "detail": f.detail,
                "verdict": f.verdict,
            }
            for f in context.flips
        ],
        "report": None if report is None else str(report),
    }


def stats_json(stats: GroupStats) -> dict[str, JSON]:
    """A group's figures as the reports compute them (``runner.report.stats.GroupStats``)."""
    data: dict[str, JSON] = dataclasses.asdict(stats)
    data["error_kinds"] = dict(stats.error_kinds)
    return data


def trend_json(context: TrendContext, report: Path | None) -> dict[str, JSON]:
    """``runner trend --json``: the job's runs, oldest first, and each run's figures per provider."""
    return {
        "job": context.job_name,
        "runs": [_header_json(run) for run in context.runs],
        "providers": list(context.providers),
        "rows": [
            {"run_id": row.run.id, "provider": row.provider, **stats_json(row.stats)} for row in context.rows
        ],
        "report": None if report is None else str(report),
    }


def cost_json(context: CostContext, report: Path | None) -> dict[str, JSON]:
    """``runner cost --json``: one object per group (keys named by ``by``) and the total."""

    def row_json(row: CostRow) -> dict[str, JSON]:
        data: dict[str, JSON] = dataclasses.asdict(row)
        data["keys"] = dict(zip(context.by, row.keys, strict=False))
        return data

    return {
        "since": _time(context.since),
        "until": _time(context.until),
        "by": list(context.by),
        "rows": [row_json(row) for row in context.rows],
        "total": {k: v for k, v in row_json(context.total).items() if k != "keys"},
        "note": context.note,
        "report": None if report is None else str(report),
    }
