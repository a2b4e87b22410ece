"""One unit as the run report shows it: a card in full (every choice, assertion and attempt) or a
compact table row. Pure: a store record in, a frozen view out."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from runner.report.common import not_evaluated

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from runner.grading.assertions import AssertionOutcome
    from runner.store.records import UnitView, Verdict

EXCERPT_CHARS: Final = 100


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCallView:
    name: str
    id: str | None
    arguments: str  # pretty JSON when it parses, else the exact string
    is_json: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ChoiceView:
    index: int
    text: str
    reasoning: str
    refusal: str | None
    tool_calls: tuple[ToolCallView, ...]
    finish_reason: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptSpan:
    """One attempt on the unit's timeline; ``left``/``width`` are percent of the unit's span."""

    number: int
    offset_s: float  # after the unit's first attempt started
    ttft_s: float | None
    ttfr_s: float | None  # time to the first reasoning token
    duration_s: float | None
    http_status: int | None
    error_kind: str | None
    error_message: str | None
    cost: float | None
    left: float
    width: float


@dataclass(frozen=True, slots=True, kw_only=True)
class UnitCard:
    """A unit shown expanded: every choice, its assertions and its attempt timeline."""

    key: str
    provider: str
    case_id: str
    repeat: int
    status: str
    verdict: Verdict
    verdict_class: str  # the verdict as a CSS class name
    model: str | None
    choices: tuple[ChoiceView, ...]
    assertions: tuple[AssertionOutcome, ...]  # evaluated on the final result (an ok unit only)
    not_evaluated: tuple[str, ...]  # names of assertions a unit without a final result could not have
    attempts: tuple[AttemptSpan, ...]
    span_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class UnitRow:
    """A unit as one compact table row; ``answer`` is the whole first-choice text."""

    key: str
    provider: str
    case_id: str
    repeat: int
    status: str
    verdict: Verdict
    verdict_class: str
    attempts: int
    error_kind: str | None
    ttft_s: float | None
    duration_s: float | None
    cost: float | None
    assertions_passed: int
    assertions_total: int  # judges still grading left out: ``assertions_pending``
    assertions_pending: int
    assertions_not_evaluated: int
    outcomes: tuple[AssertionOutcome, ...]  # every evaluated assertion, listed under the row's checks
    excerpt: str
    answer: str
    is_long: bool
    cut_chars: int  # characters of the answer left out of this row (see run.ANSWER_BUDGET_CHARS)
    id: int = 0  # the unit's id in the store

    @property
    def evaluated(self) -> tuple[AssertionOutcome, ...]:
        """The outcomes this row lists (``outcomes.Graded``)."""
        return self.outcomes


def tool_call_view(name: str, call_id: str | None, arguments: str) -> ToolCallView:
    try:
        pretty = json.dumps(json.loads(arguments), indent=2, ensure_ascii=False)
    except ValueError:
        return ToolCallView(name=name, id=call_id, arguments=arguments, is_json=False)
    return ToolCallView(name=name, id=call_id, arguments=pretty, is_json=True)


def verdict_class(verdict: Verdict) -> str:
    """A verdict as a CSS class: ``verdict-failed-assertions``."""
    return "verdict-" + verdict.replace(" ", "-")


def unit_card(unit: UnitView, expected: Mapping[str, Sequence[str]] | None = None) -> UnitCard:
    first = unit.attempts[0].started_at if unit.attempts else None
    offsets = [(a.started_at - first).total_seconds() if first else 0.0 for a in unit.attempts]
    span = max((o + (a.end_s or 0.0) for o, a in zip(offsets, unit.attempts, strict=True)), default=0.0)
    span = span or 1.0
    attempts = tuple(
        AttemptSpan(
            number=a.number,
            offset_s=offset,
            ttft_s=a.ttft_s,
            ttfr_s=a.first_reasoning_s,
            duration_s=a.end_s,
            http_status=a.http_status,
            error_kind=a.error.kind if a.error else None,
            error_message=a.error.message if a.error else None,
            cost=a.cost_usd,
            left=100 * offset / span,
            width=max(0.5, 100 * (a.end_s or 0.0) / span),
        )
        for offset, a in zip(offsets, unit.attempts, strict=True)
    )
    choices = tuple(
        ChoiceView(
            index=c.index,
            text=c.text,
            reasoning=c.reasoning,
            refusal=c.refusal,
            tool_calls=tuple(tool_call_view(t.name, t.id, t.arguments) for t in c.tool_calls),
            finish_reason=c.finish_reason,
        )
        for c in (unit.completion.choices if unit.completion else ())
    )
    return UnitCard(
        key=unit.key,
        provider=unit.provider,
        case_id=unit.case_id,
        repeat=unit.repeat,
        status=unit.status,
        verdict=unit.verdict,
        verdict_class=verdict_class(unit.verdict),
        model=unit.model,
        choices=choices,
        assertions=unit.evaluated,
        not_evaluated=not_evaluated(unit, expected or {}),
        attempts=attempts,
        span_s=span,
    )


def unit_row(
    unit: UnitView,
    limit: int | None = None,
    expected: Mapping[str, Sequence[str]] | None = None,
    *,
    list_outcomes: bool = True,
) -> UnitRow:
    final = unit.final
    choices = unit.completion.choices if unit.completion else ()
    answer = choices[0].text if choices else ""
    if not answer and choices and choices[0].tool_calls:
        answer = "; ".join(f"{t.name}({t.arguments})" for t in choices[0].tool_calls)
    one_line = " ".join(answer.split())
    return UnitRow(
        id=unit.id,
        key=unit.key,
        provider=unit.provider,
        case_id=unit.case_id,
        repeat=unit.repeat,
        status=unit.status,
        verdict=unit.verdict,
        verdict_class=verdict_class(unit.verdict),
        attempts=len(unit.attempts),
        error_kind=final.error.kind if final and final.error else None,
        ttft_s=final.ttft_s if final else None,
        duration_s=final.end_s if final else None,
        cost=sum((c for a in unit.attempts if (c := a.cost_usd) is not None), 0.0),
        assertions_passed=sum(o.passed for o in unit.evaluated),
        assertions_total=sum(not o.pending for o in unit.evaluated),
        assertions_pending=sum(o.pending for o in unit.evaluated),
        assertions_not_evaluated=len(not_evaluated(unit, expected or {})),
        outcomes=unit.evaluated if list_outcomes else (),
        excerpt=one_line[:EXCERPT_CHARS] + ("…" if len(one_line) > EXCERPT_CHARS else ""),
        answer=answer[:limit] if limit is not None else answer,
        cut_chars=max(0, len(answer) - limit) if limit is not None else 0,
        is_long=len(one_line) > EXCERPT_CHARS or "\n" in answer.strip(),
    )
