"""Run against run: units matched by provider, case and repeat; what changed and what regressed; pure.

A regression is a unit that went from ok to failed, an assertion that went from passed to failed, or a
provider figure (TTFT, duration, error rate, cost per unit) that got worse by more than its threshold.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar, Final, Literal

from runner.report.common import RunHeader, run_header
from runner.report.stats import GroupStats, group_stats

if TYPE_CHECKING:
    from collections.abc import Callable

    from runner.report.common import RunData
    from runner.store.records import UnitView

Verdict = Literal["regressed", "improved", "same"]
ANSWERS_MAX: Final = 500  # changed answers shown; the count says how many there were
DIFF_TOKENS_MAX: Final = 4000  # word-level diff up to this many tokens a side, line-level beyond
_TOKEN = re.compile(r"\s+|\w+|[^\w\s]")


@dataclass(frozen=True, slots=True, kw_only=True)
class Thresholds:
    """How much worse a figure may get before it counts as a regression (B against A)."""

    ttft: float = 0.20  # relative increase of TTFT p50 and p90
    duration: float = 0.20  # relative increase of duration p50 and p90
    error_rate: float = 0.05  # absolute increase of the failed-attempt share (0.05: 5 points)
    cost: float = 0.10  # relative increase of cost per unit
    min_seconds: float = 0.05  # a latency change smaller than this is noise, whatever its ratio


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricChange:
    provider: str
    metric: str
    tooltip: str
    kind: Literal["seconds", "rate", "usd"]
    before: float | None
    after: float | None
    change: float | None  # relative for seconds and usd, absolute for rates
    threshold: float
    verdict: Verdict


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
    verdict: Verdict


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
    regressions: int = field(default=0)


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


def _answer(unit: UnitView) -> str:
    choices = unit.completion.choices if unit.completion else ()
    if not choices:
        return ""
    calls = "".join(f"\n[tool call {t.name}({t.arguments})]" for t in choices[0].tool_calls)
    return choices[0].text + calls


def _verdict(change: float | None, threshold: float, *, floor_ok: bool = True) -> Verdict:
    if change is None or not floor_ok:
        return "same"
    if change > threshold:
        return "regressed"
    return "improved" if change < -threshold else "same"


def _relative(before: float | None, after: float | None) -> float | None:
    if before is None or after is None or before <= 0:
        return None
    return (after - before) / before


def _cost_per_unit(stats: GroupStats) -> float | None:
    return stats.cost / stats.units if stats.cost is not None and stats.units else None


def provider_changes(a: GroupStats, b: GroupStats, provider: str, limits: Thresholds) -> list[MetricChange]:
    """The figures compared for one provider, each with its verdict."""
    changes: list[MetricChange] = []
    timed: list[tuple[str, str, Callable[[GroupStats], float | None], float]] = [
        ("TTFT p50", "median time to first token", lambda s: s.ttft_p50, limits.ttft),
        ("TTFT p90", "90th-percentile time to first token", lambda s: s.ttft_p90, limits.ttft),
        ("duration p50", "median attempt duration", lambda s: s.duration_p50, limits.duration),
        ("duration p90", "90th-percentile attempt duration", lambda s: s.duration_p90, limits.duration),
    ]
    for name, tip, get, limit in timed:
        before, after = get(a), get(b)
        change = _relative(before, after)
        big = before is not None and after is not None and abs(after - before) >= limits.min_seconds
        verdict = _verdict(change, limit, floor_ok=big)
        changes.append(
            MetricChange(
                provider=provider,
                metric=name,
                tooltip=tip,
                kind="seconds",
                before=before,
                after=after,
                change=change,
                threshold=limit,
                verdict=verdict,
            )
        )
    ea, eb = a.error_rate, b.error_rate
    change = eb - ea if ea is not None and eb is not None else None
    changes.append(
        MetricChange(
            provider=provider,
            metric="error rate",
            tooltip="failed attempts / attempts",
            kind="rate",
            before=ea,
            after=eb,
            change=change,
            threshold=limits.error_rate,
            verdict=_verdict(change, limits.error_rate),
        )
    )
    ca, cb = _cost_per_unit(a), _cost_per_unit(b)
    change = _relative(ca, cb)
    changes.append(
        MetricChange(
            provider=provider,
            metric="cost per unit",
            tooltip="USD over all attempts / units",
            kind="usd",
            before=ca,
            after=cb,
            change=change,
            threshold=limits.cost,
            verdict=_verdict(change, limits.cost),
        )
    )
    return changes


def _flips(key: str, ua: UnitView, ub: UnitView) -> list[Flip]:
    flips: list[Flip] = []
    if ua.status != ub.status:
        verdict: Verdict = "regressed" if ua.status == "ok" else ("improved" if ub.status == "ok" else "same")
        final = ub.final
        detail = f"{final.error.kind}: {final.error.message}" if final and final.error else ""
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
    """Compare run ``b`` against run ``a`` (the baseline)."""
    limits = thresholds or Thresholds()
    units_a = {(u.provider, u.case_id, u.repeat): u for u in a.units}
    units_b = {(u.provider, u.case_id, u.repeat): u for u in b.units}
    common = sorted(units_a.keys() & units_b.keys())
    metrics: list[MetricChange] = []
    for provider in sorted({k[0] for k in common}):
        keys = [k for k in common if k[0] == provider]
        stats_a = group_stats([units_a[k] for k in keys])
        stats_b = group_stats([units_b[k] for k in keys])
        metrics += provider_changes(stats_a, stats_b, provider, limits)
    flips: list[Flip] = []
    answers: list[AnswerChange] = []
    changed = 0
    for k in common:
        ua, ub = units_a[k], units_b[k]
        flips += _flips(ub.key, ua, ub)
        before, after = _answer(ua), _answer(ub)
        if before != after:
            changed += 1
            if len(answers) < ANSWERS_MAX:
                answers.append(
                    AnswerChange(
                        key=ub.key,
                        provider=k[0],
                        case_id=k[1],
                        repeat=k[2],
                        segments=inline_diff(before, after),
                    )
                )
    regressions = sum(m.verdict == "regressed" for m in metrics) + sum(
        f.verdict == "regressed" for f in flips
    )
    return DiffContext(
        title=f"Diff {a.run.id} → {b.run.id}: {b.run.job_name}",
        generated_at=generated_at or datetime.now(UTC),
        run_a=run_header(a.run, a.units),
        run_b=run_header(b.run, b.units),
        thresholds=limits,
        matched=len(common),
        only_in_a=tuple(units_a[k].key for k in sorted(units_a.keys() - units_b.keys())),
        only_in_b=tuple(units_b[k].key for k in sorted(units_b.keys() - units_a.keys())),
        metrics=tuple(metrics),
        flips=tuple(flips),
        answers=tuple(answers),
        answers_changed=changed,
        regressions=regressions,
    )
