"""``runner runs`` and ``runner show`` as text lines for a terminal, from ``runner.report.inspect``'s records.

Provider output is printed with every control character but newline and tab replaced by a visible
picture (U+2400...): an answer must not be able to move the cursor, retitle the window or hide text.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

from runner.report.render import CONTROLS, count, seconds, timestamp, usd, wall

if TYPE_CHECKING:
    from collections.abc import Sequence

    from runner.model import Choice, Completion
    from runner.report.inspect import AttemptStream, RequestView, RunSummary, UnitDetail
    from runner.store.records import AttemptView
    from runner.store.repository.browse import RunRow, UnitTally

MISSING: Final = "-"
INDENT: Final = "  "


def printable(value: str) -> str:
    """``value`` safe for a terminal: control characters (but newline and tab) as visible pictures."""

    def picture(match: object) -> str:
        code = ord(match.group())  # type: ignore[attr-defined]
        return chr(0x2400 + code) if code < 0x20 else "\u2421" if code == 0x7F else f"\\u{code:04x}"

    return CONTROLS.sub(picture, value)


def table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], *, right: frozenset[int] = frozenset()
) -> list[str]:
    """Columns padded to their widest cell; the columns in ``right`` (numbers) aligned right."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        padded = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(padded).rstrip()

    return [line(headers), *(line(r) for r in rows)]


def runs_lines(rows: Sequence[RunRow], *, now: datetime | None = None) -> list[str]:
    """``runner runs``: one line per run, newest first."""
    if not rows:
        return ["no runs"]
    moment = now or datetime.now(UTC)
    cells = [
        [
            row.run.id,
            printable(row.run.job_name),
            row.run.status,
            timestamp(row.run.started_at),
            wall(((row.run.finished_at or moment) - row.run.started_at).total_seconds()),
            count(row.tally.units),
            count(row.tally.passed),
            count(row.tally.failed_assertions),
            count(row.tally.failed),
            count(row.tally.not_done),
            usd(row.tally.cost_usd),
        ]
        for row in rows
    ]
    headers = [
        "run",
        "job",
        "status",
        "started",
        "duration",
        "units",
        "passed",
        "failed-checks",
        "failed",
        "not-done",
        "cost",
    ]
    return table(headers, cells, right=frozenset(range(5, 11)))


def summary_lines(summary: RunSummary) -> list[str]:
    """``runner show RUN``: the run report's top (the caller adds the failure breakdown)."""
    run, total = summary.run, summary.total
    lines = [
        f"run {run.id}: job {printable(run.job_name)}, {run.status}",
        f"started {timestamp(run.started_at)}, finished {timestamp(run.finished_at)}, "
        f"wall {wall(summary.wall_s)}; "
        f"host {printable(run.host)}, runner {run.runner_version}"
        + (f"; tags {', '.join(run.tags)}" if run.tags else ""),
        _units_line(total),
        f"checks passed {count(total.checks_passed)} / {count(total.checks_total)} (on units with a result)",
        _attempts_line(total),
        f"tokens in {count(total.input_tokens)} (cached {count(total.cached_input_tokens)}), "
        f"out {count(total.output_tokens)} (reasoning {count(total.reasoning_tokens)})",
        f"cost {usd(total.cost_usd)} (wasted on failed attempts {usd(total.wasted_usd)})",
    ]
    lines += [f"note: {note}" for note in summary.notes]
    if summary.providers:
        headers = [
            "provider",
            "units",
            "passed",
            "failed-checks",
            "failed",
            "not-done",
            "attempts",
            "errors",
            "ttft-p50",
            "ttft-p90",
            "dur-p50",
            "cost",
        ]
        cells = [
            [
                printable(p.name),
                count(p.tally.units),
                count(p.tally.passed),
                count(p.tally.failed_assertions),
                count(p.tally.failed),
                count(p.tally.not_done),
                count(p.tally.attempts),
                count(p.tally.failed_attempts),
                seconds(p.ttft_p50_s),
                seconds(p.ttft_p90_s),
                seconds(p.duration_p50_s),
                usd(p.tally.cost_usd),
            ]
            for p in summary.providers
        ]
        lines += ["", *table(headers, cells, right=frozenset(range(1, 12)))]
    return lines


def _units_line(tally: UnitTally) -> str:
    return (
        f"units {count(tally.units)}: passed {count(tally.passed)}, failed assertions "
        f"{count(tally.failed_assertions)}, failed (no result) {count(tally.failed)}, "
        f"not done {count(tally.not_done)}"
    )


def _attempts_line(tally: UnitTally) -> str:
    kinds = ", ".join(f"{kind} {n}" for kind, n in tally.error_kinds.items())
    return (
        f"attempts {count(tally.attempts)} (retries {count(tally.retries)}, "
        f"failed {count(tally.failed_attempts)}" + (f": {kinds})" if kinds else ")")
    )


def unit_lines(detail: UnitDetail) -> list[str]:
    """``runner show RUN/UNIT``: the unit's request, attempts, answer, reasoning, tool calls and checks."""
    unit = detail.unit
    lines = [
        f"unit {printable(unit.key)} of run {detail.run.id} (job {printable(detail.run.job_name)}): "
        f"{unit.verdict}",
        f"provider {printable(unit.provider)} ({detail.dialect or 'dialect unknown'}), "
        f"case {printable(unit.case_id)}, "
        f"repeat {unit.repeat}, model {printable(unit.model or MISSING)}, status {unit.status}, "
        f"finished {timestamp(unit.finished_at)}",
    ]
    if unit.reused_from is not None:
        lines.append(f"reused the result of unit id {unit.reused_from} (--reuse): nothing was sent")
    lines += _request_lines(detail.request)
    lines.append("")
    lines += [line for attempt in unit.attempts for line in _attempt_lines(attempt)] or ["attempts: none"]
    lines += _completion_lines(unit.completion)
    if unit.assertions:
        lines += ["", "assertions:"]
        lines += [
            f"{INDENT}{_mark(o.passed, o.error)}  {printable(o.name)}: {printable(o.detail)}"
            for o in unit.assertions
        ]
    return lines


def _mark(passed: bool, error: bool) -> str:
    return "pass" if passed else "ERROR" if error else "FAIL"


def _request_lines(request: RequestView | None) -> list[str]:
    if request is None:
        return ["request: not rebuilt (the run's stored job spec does not name this provider and case)"]
    headers = ", ".join(f"{name}: {value}" for name, value in request.headers.items())
    return [
        f"request: {request.method} {printable(request.url)}",
        f"{INDENT}headers: {printable(headers)}",
        *_indented(_pretty_json(request.body)),
    ]


def _attempt_lines(a: AttemptView) -> list[str]:
    if a.error is not None:
        retry = {True: ", retryable", False: ", not retryable", None: ""}[a.error.retryable]
        after = f", retry after {seconds(a.error.retry_after)}" if a.error.retry_after is not None else ""
        outcome = f"{a.error.kind}{retry}{after}: {printable(a.error.message)}"
    else:
        outcome = "ok"
    status = f"HTTP {a.http_status}" if a.http_status is not None else "no response"
    lines = [
        f"attempt {a.number}{' (superseded)' if a.superseded else ''}: {timestamp(a.started_at)}, "
        f"{status}, {outcome}",
        f"{INDENT}timing: headers {seconds(a.headers_s)}, first byte {seconds(a.first_byte_s)}, "
        f"first reasoning {seconds(a.first_reasoning_s)}, TTFT {seconds(a.first_answer_s)}, "
        f"duration {seconds(a.end_s)}; gaps p50 {seconds(a.gap_p50_s)}, max {seconds(a.gap_max_s)}",
        f"{INDENT}received {count(a.bytes_received)} bytes, {count(a.chunks)} events, "
        f"{count(a.heartbeats)} heartbeats"
        f"{', complete' if a.complete else ', incomplete' if a.complete is False else ''}"
        f"{', raw capture stored' if a.has_raw_capture else ''}",
    ]
    if a.stream_error is not None:
        lines.append(
            f"{INDENT}stream error: {printable(a.stream_error.type or '')}: "
            f"{printable(a.stream_error.message or '')}"
        )
    u = a.usage
    cost = a.cost_reported if a.cost_reported is not None else a.cost_computed
    source = (
        "reported"
        if a.cost_reported is not None
        else "computed"
        if a.cost_computed is not None
        else "unknown"
    )
    tokens = (
        f"in {count(u.input_tokens)} (cached {count(u.cached_input_tokens)}), out {count(u.output_tokens)} "
        f"(reasoning {count(u.reasoning_tokens)})"
        if u is not None
        else "not reported"
    )
    lines.append(f"{INDENT}usage: {tokens}; cost {usd(cost)} ({source})")
    for choice in a.partial_choices:
        if choice.text:
            lines += [
                f"{INDENT}partial output (choice {choice.index}):",
                *_indented(printable(choice.text), 2),
            ]
    return lines


def _completion_lines(completion: Completion | None) -> list[str]:
    if completion is None or not completion.choices:
        return ["", "answer: none stored"]
    lines: list[str] = []
    for choice in completion.choices:
        lines += _choice_lines(choice, len(completion.choices) > 1)
    return lines


def _choice_lines(choice: Choice, numbered: bool) -> list[str]:
    which = f" (choice {choice.index})" if numbered else ""
    lines = [
        "",
        f"answer{which}, finish reason {choice.finish_reason or MISSING}:",
        *_indented(printable(choice.text)),
    ]
    if choice.refusal:
        lines += ["refusal:", *_indented(printable(choice.refusal))]
    if choice.reasoning:
        lines += ["", f"reasoning{which}:", *_indented(printable(choice.reasoning))]
    if choice.tool_calls:
        lines += ["", f"tool calls{which}:"]
        for call in choice.tool_calls:
            lines.append(f"{INDENT}{printable(call.name)} (id {printable(call.id or MISSING)}):")
            lines += _indented(_pretty_json(call.arguments), 2)
    return lines


def stream_lines(streams: Sequence[AttemptStream]) -> list[str]:
    """``runner show RUN/UNIT --raw``: each attempt's captured body, read by read with its arrival time."""
    lines: list[str] = []
    for stream in streams:
        status = f"HTTP {stream.http_status}" if stream.http_status is not None else "no response"
        if not stream.captured:
            lines.append(f"attempt {stream.number}: {status}, no capture stored (see runner run --capture)")
            continue
        size = sum(len(r.data) for r in stream.reads)
        lines.append(f"attempt {stream.number}: {status}, {len(stream.reads)} reads, {count(size)} bytes")
        for i, read in enumerate(stream.reads, 1):
            at = f"+{read.at_s:.3f} s" if read.at_s is not None else "time not stored"
            lines.append(f"{INDENT}read {i} at {at}, offset {read.offset}, {len(read.data)} bytes")
            text = printable(read.data.decode("utf-8", "replace"))
            pieces = text.split("\n")
            if len(pieces) > 1 and not pieces[-1]:
                pieces.pop()  # the read ended with its line: no empty line after it
            lines += [f"{INDENT}{INDENT}| {line}" for line in pieces]
        if stream.completion is not None:
            done = "complete" if stream.completion.complete else "incomplete"
            error = stream.completion.error
            why = f", error {printable(error.type or '')}: {printable(error.message or '')}" if error else ""
            lines.append(f"{INDENT}replayed: {done}, {len(stream.completion.choices)} choices{why}")
    return lines


def _pretty_json(text: str) -> str:
    try:
        return printable(json.dumps(json.loads(text), indent=2, ensure_ascii=False))
    except ValueError:
        return printable(text)


def _indented(text: str, depth: int = 1) -> list[str]:
    return [INDENT * depth + line for line in text.split("\n")] if text else [INDENT * depth + "(empty)"]
