"""Run against run: units matched by provider, case and repeat; what changed and what regressed; pure.

A regression is a unit of run A that run B lacks (missing), or a provider figure (TTFT, duration,
error rate, pass rate, cost per unit) that got worse beyond its threshold and beyond chance (see
``figures``). A single unit's status or assertion flip is shown, and counts through its provider's
pass rate. Fewer matched units than ``min_matched`` make the diff inconclusive: no pass.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal

from runner.report.common import RunHeader, run_header
from runner.report.figures import MetricChange, Thresholds, Verdict, compare_providers, format_p
from runner.report.terminal import table
from runner.store.lean import lean_unit

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    from runner.report.common import RunData
    from runner.store.lean import LeanUnit
    from runner.store.records import RunInfo, UnitView

__all__ = [
    "DiffContext",
    "DiffSide",
    "MetricChange",
    "Thresholds",
    "Verdict",
    "answer_digest",
    "build_diff_context",
    "diff_context",
    "inline_diff",
    "stored_answer",
]
ANSWERS_MAX: Final = 500  # changed answers shown; the count says how many there were
DIFF_TOKENS_MAX: Final = 4000  # word-level diff up to this many tokens a side, line-level beyond
_TOKEN = re.compile(r"\s+|\w+|[^\w\s]")


@dataclass(frozen=True, slots=True, kw_only=True)
class DiffSegment:
    kind: Literal["equal", "insert", "delete"]
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AnswerChange:
    key: str
    provider: str
    case_id: str
    repeat: int
    segments: tuple[DiffSegment, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Flip:
    """A unit's status or one assertion that changed outcome between the runs."""

    key: str
    name: str  # "status" or the assertion's name
    before: str
    after: str
    detail: str
    verdict: Verdict  # "regressed": worse for this unit; a regression only through the pass rate

    @property
    def label(self) -> str:
        return {"regressed": "worse", "improved": "better"}.get(self.verdict, "changed")


@dataclass(frozen=True, slots=True, kw_only=True)
class DiffContext:
    """Everything ``diff.html`` shows; ``regressions`` decides the command's exit code."""

    template: ClassVar[str] = "diff.html"

    title: str
    generated_at: datetime
    run_a: RunHeader
    run_b: RunHeader
    thresholds: Thresholds
    matched: int
    only_in_a: tuple[str, ...]
    only_in_b: tuple[str, ...]
    metrics: tuple[MetricChange, ...]
    flips: tuple[Flip, ...]
    answers: tuple[AnswerChange, ...]
    answers_changed: int
    tests: int = 0  # significance tests run (the size of Holm's family)
    regressions: int = field(default=0)

    @property
    def figure_regressions(self) -> int:
        return sum(m.verdict == "regressed" for m in self.metrics)

    @property
    def missing(self) -> int:
        """Units of run A that run B lacks: each is a regression."""
        return len(self.only_in_a)

    @property
    def is_conclusive(self) -> bool:
        """Enough units matched for the diff to be a gate (else it exits 2, whatever it found)."""
        return self.matched >= max(1, self.thresholds.min_matched)


def inline_diff(before: str, after: str) -> tuple[DiffSegment, ...]:
    """Word-level segments turning ``before`` into ``after`` (line-level for very long texts)."""
    a, b = _TOKEN.findall(before), _TOKEN.findall(after)
    if max(len(a), len(b)) > DIFF_TOKENS_MAX:
        a, b = before.splitlines(keepends=True), after.splitlines(keepends=True)
    segments: list[DiffSegment] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            segments.append(DiffSegment(kind="equal", text="".join(a[i1:i2])))
            continue
        if i2 > i1:
            segments.append(DiffSegment(kind="delete", text="".join(a[i1:i2])))
        if j2 > j1:
            segments.append(DiffSegment(kind="insert", text="".join(b[j1:j2])))
    return tuple(segments)


def answer_text(text: str, calls: Iterable[tuple[str, str]]) -> str:
    """What the diff compares of a unit: its first choice's text, its tool calls (name and arguments)
    appended."""
    return text + "".join(f"\n[tool call {name}({arguments})]" for name, arguments in calls)


def stored_answer(text: str, tool_calls: Sequence[Mapping[str, Any]]) -> str:
    """``answer_text`` of a stored first choice (its ``tool_calls`` as ``ToolCall.to_dict`` gives them)."""
    return answer_text(text, ((call["name"], call["arguments"]) for call in tool_calls))


def answer_digest(answer: str) -> bytes:
    """What the diff keeps of an ``answer_text``: two runs' answers are compared by it."""
    return hashlib.blake2b(answer.encode(), digest_size=16).digest()


NO_ANSWER: Final = answer_digest("")  # a unit without a result answers ""


def _answer(unit: UnitView) -> str:
    choices = unit.completion.choices if unit.completion else ()
    if not choices:
        return ""
    return answer_text(choices[0].text, ((t.name, t.arguments) for t in choices[0].tool_calls))


@dataclass(frozen=True, slots=True, kw_only=True)
class DiffSide:
    """One run as the diff reads it: its units lean (figures, statuses, assertions), a digest of each
    unit's answer by unit id (none: no result), and its units in full by id, read only for what the diff
    shows in full (the answers it prints, the errors of status flips): a diff of big runs holds no texts."""

    run: RunInfo
    units: Sequence[LeanUnit]
    answers: Mapping[int, bytes]
    in_full: Callable[[Sequence[int]], Sequence[UnitView]]

    @classmethod
    def of(cls, data: RunData) -> DiffSide:
        """A run held whole."""
        views = {u.id: u for u in data.units}
        return cls(
            run=data.run,
            units=[lean_unit(u) for u in data.units],
            answers={
                u.id: answer_digest(_answer(u)) for u in data.units if u.completion and u.completion.choices
            },
            in_full=lambda ids: [views[i] for i in ids if i in views],
        )


def _flips(key: str, ua: LeanUnit, ub: LeanUnit, final_error: str) -> list[Flip]:
    """``final_error``: ``kind: message`` of B's final attempt, read only for a status flip."""
    flips: list[Flip] = []
    if ua.status != ub.status:
        verdict: Verdict = "regressed" if ua.status == "ok" else ("improved" if ub.status == "ok" else "same")
        detail = final_error
        flips.append(
            Flip(key=key, name="status", before=ua.status, after=ub.status, detail=detail, verdict=verdict)
        )
    before = {o.name: o for o in ua.assertions}
    for outcome in ub.assertions:
        old = before.get(outcome.name)
        if old is not None and old.passed != outcome.passed:
            flips.append(
                Flip(
                    key=key,
                    name=outcome.name,
                    before="passed" if old.passed else "failed",
                    after="passed" if outcome.passed else "failed",
                    detail=outcome.detail,
                    verdict="improved" if outcome.passed else "regressed",
                )
            )
    return flips


def build_diff_context(
    a: RunData, b: RunData, *, thresholds: Thresholds | None = None, generated_at: datetime | None = None
) -> DiffContext:
    """Compare run ``b`` against run ``a`` (the baseline), both held whole."""
    return diff_context(DiffSide.of(a), DiffSide.of(b), thresholds=thresholds, generated_at=generated_at)


def diff_context(
    a: DiffSide, b: DiffSide, *, thresholds: Thresholds | None = None, generated_at: datetime | None = None
) -> DiffContext:
    """Compare run ``b`` against run ``a`` (the baseline)."""
    limits = thresholds or Thresholds()
    units_a = {(u.provider, u.case_id, u.repeat): u for u in a.units}
    units_b = {(u.provider, u.case_id, u.repeat): u for u in b.units}
    common = sorted(units_a.keys() & units_b.keys())
    metrics, tests = compare_providers(
        [
            (name, [units_a[k] for k in common if k[0] == name], [units_b[k] for k in common if k[0] == name])
            for name in sorted({k[0] for k in common})
        ],
        limits,
    )
    flipped = [units_b[k].id for k in common if units_a[k].status != units_b[k].status]
    final_errors = {
        u.id: f"{final.error.kind}: {final.error.message}" if (final := u.final) and final.error else ""
        for u in b.in_full(flipped)
    }
    answer_a, answer_b = a.answers.get, b.answers.get
    changed = [k for k in common if answer_a(units_a[k].id, NO_ANSWER) != answer_b(units_b[k].id, NO_ANSWER)]
    shown = changed[:ANSWERS_MAX]
    texts_a = {u.id: _answer(u) for u in a.in_full([units_a[k].id for k in shown])}
    texts_b = {u.id: _answer(u) for u in b.in_full([units_b[k].id for k in shown])}
    flips: list[Flip] = []
    for k in common:
        ua, ub = units_a[k], units_b[k]
        flips += _flips(ub.key, ua, ub, final_errors.get(ub.id, ""))
    answers = [
        AnswerChange(
            key=units_b[k].key,
            provider=k[0],
            case_id=k[1],
            repeat=k[2],
            segments=inline_diff(texts_a[units_a[k].id], texts_b[units_b[k].id]),
        )
        for k in shown
    ]
    only_in_a = tuple(units_a[k].key for k in sorted(units_a.keys() - units_b.keys()))
    return DiffContext(
        title=f"Diff {a.run.id} → {b.run.id}: {b.run.job_name}",
        generated_at=generated_at or datetime.now(UTC),
        run_a=run_header(a.run, a.units),
        run_b=run_header(b.run, b.units),
        thresholds=limits,
        matched=len(common),
        only_in_a=only_in_a,
        only_in_b=tuple(units_b[k].key for k in sorted(units_b.keys() - units_a.keys())),
        metrics=metrics,
        flips=tuple(flips),
        answers=tuple(answers),
        answers_changed=len(changed),
        tests=tests,
        regressions=sum(m.verdict == "regressed" for m in metrics) + len(only_in_a),
    )


def _figure(kind: str, value: float | None) -> str:
    if value is None:
        return "-"
    if kind == "seconds":
        return f"{value:.3f}s"
    return f"${value:.6f}" if kind == "usd" else f"{value:.1%}"


def metric_table(metrics: Sequence[MetricChange]) -> list[str]:
    """The regressed and improved figures as a table, indented under the match line (none: no lines)."""
    if not metrics:
        return []
    headers = ["provider", "figure", "A", "B", "change", "test", "p", "Holm p", "n A/B", "verdict"]
    rows = [
        [
            m.provider,
            m.metric,
            _figure(m.kind, m.before),
            _figure(m.kind, m.after),
            _change(m),
            m.test,
            format_p(m.p_value),
            format_p(m.p_adjusted),
            f"{m.samples[0]}/{m.samples[1]}",
            m.verdict,
        ]
        for m in metrics
    ]
    return ["  " + line for line in table(headers, rows, right=frozenset({2, 3, 4, 6, 7, 8}))]


def _change(m: MetricChange) -> str:
    if m.change is None:
        return "-"
    return f"{m.change:+.0%}" if m.kind != "rate" else f"{m.change * 100:+.1f} pt"


def summary_lines(context: DiffContext) -> list[str]:
    """What ``runner diff`` prints after the report's path: the match, each verdict, the count."""
    limits = context.thresholds
    new = len(context.only_in_b)
    lines = [
        f"{context.matched} units matched, {context.missing} missing in B, {new} new in B; "
        f"{context.tests} tests, alpha {limits.alpha:g} over all of them (Holm)"
    ]
    lines += metric_table([m for m in context.metrics if m.verdict in ("regressed", "improved")])
    untested = sum(m.verdict == "untested" for m in context.metrics)
    if untested:
        lines.append(f"  {untested} figures not tested: fewer than {limits.min_samples} samples a side")
    if context.missing:
        shown = ", ".join(context.only_in_a[:5]) + (", ..." if context.missing > 5 else "")
        lines.append(f"  {context.missing} units missing in B: {shown}")
    lines.append(
        f"{context.regressions} regressions ({context.figure_regressions} figures, "
        f"{context.missing} units missing in B), {context.answers_changed} answers changed"
    )
    return lines
