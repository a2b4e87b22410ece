"""``runner run --dry-run``: a job's plan (units per provider, sample prompts, an estimated cost). Pure.

Nothing is sent, so token counts are estimates: input tokens from the characters of what a unit sends
(``CHARS_PER_TOKEN`` characters per token, about right for English text with the common tokenizers),
output tokens at most the unit's output cap (``max_tokens`` or the dialect's default). The cost is
therefore an upper bound for output and a rough figure for input.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from runner.job.judge import grading_prompt
from runner.job.plan import case_providers
from runner.spec import request_params
from runner.wire.dialects import get_dialect

if TYPE_CHECKING:
    from runner.spec import CaseSpec, JobSpec, Price, ProviderSpec

CHARS_PER_TOKEN: Final = 4
SAMPLE_PROMPTS: Final = 3
SAMPLE_CHARS: Final = 160  # a sample prompt is cut here, so a long prompt stays one line


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderPlan:
    """One provider's share of the plan and what it may cost."""

    name: str
    units: int
    input_tokens: int  # estimated, all its units
    output_tokens: int | None  # the sum of the output caps; None when some unit has no cap
    price: Price | None
    cost_usd: float | None  # None without a price; input only when output_tokens is None
    # A judge provider: ``units`` are its grading requests (one per judged unit), no units of the job.
    is_judge: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanPreview:
    """What ``runner run JOB`` would do, without doing it."""

    job: str
    cases: int
    units: int
    providers: tuple[ProviderPlan, ...]
    samples: tuple[tuple[str, str], ...]  # (case id, its rendered prompt on one line)

    @property
    def grading_requests(self) -> int:
        """The judges' grading requests: one per unit of a judged case (none are units of the job)."""
        return sum(p.units for p in self.providers if p.is_judge)

    @property
    def cost_usd(self) -> float:
        """The estimated cost of the providers that have a price."""
        return sum(p.cost_usd for p in self.providers if p.cost_usd is not None)


def preview(job: JobSpec, *, samples: int = SAMPLE_PROMPTS) -> PlanPreview:
    """The plan of ``job`` (priced as the run would price it: pass it through the catalog first)."""
    plans = [_provider_plan(job, provider) for provider in job.providers]
    count = len(job.cases)
    # Spread over the job (first, ..., last), so the samples show more than one case's rows.
    shown = min(samples, count)
    picked = sorted({i * (count - 1) // max(shown - 1, 1) for i in range(shown)})
    return PlanPreview(
        job=job.name,
        cases=count,
        units=sum(p.units for p in plans if not p.is_judge),
        providers=tuple(plans),
        samples=tuple((job.cases[i].id, prompt_text(job.cases[i])) for i in picked),
    )


def _provider_plan(job: JobSpec, provider: ProviderSpec) -> ProviderPlan:
    if provider.role == "judge":
        return _judge_plan(job, provider)
    dialect = get_dialect(provider.dialect)
    units = tokens_in = 0
    tokens_out: int | None = 0
    for case in job.cases:
        # The plan's own rule for who runs a case (case_providers), so the counts match plan_units.
        if not any(p.name == provider.name for p in case_providers(job, case)):
            continue
        repeats = case.repeats if case.repeats is not None else job.repeats
        cap = dialect.max_output_tokens(request_params(provider, case))
        units += repeats
        tokens_in += repeats * input_tokens(case)
        tokens_out = None if cap is None or tokens_out is None else tokens_out + repeats * cap
    return ProviderPlan(
        name=provider.name,
        units=units,
        input_tokens=tokens_in,
        output_tokens=tokens_out,
        price=provider.price,
        cost_usd=_cost(provider.price, tokens_in, tokens_out),
    )


def _judge_plan(job: JobSpec, judge: ProviderSpec) -> ProviderPlan:
    """A judge's grading requests: one per unit of a case it judges, each its grading prompt (with
    the graded answer at the target's output cap, when it has one) and the judge's own output cap."""
    dialect = get_dialect(judge.dialect)
    cap = dialect.max_output_tokens(judge.params)
    units = tokens_in = 0
    tokens_out: int | None = 0
    for case in job.cases:
        expectation = case.expect.judge if case.expect is not None else None
        if expectation is None or expectation.provider != judge.name:
            continue
        repeats = case.repeats if case.repeats is not None else job.repeats
        prompt = math.ceil(len(grading_prompt(expectation, case, answer="")) / CHARS_PER_TOKEN)
        for target in case_providers(job, case):
            answer = get_dialect(target.dialect).max_output_tokens(request_params(target, case)) or 0
            units += repeats
            tokens_in += repeats * (prompt + answer)
            tokens_out = None if cap is None or tokens_out is None else tokens_out + repeats * cap
    return ProviderPlan(
        name=f"{judge.name} (judge)",
        units=units,
        input_tokens=tokens_in,
        output_tokens=tokens_out,
        price=judge.price,
        cost_usd=_cost(judge.price, tokens_in, tokens_out),
        is_judge=True,
    )


def input_tokens(case: CaseSpec) -> int:
    """Estimated input tokens of one request: its system prompt, message texts and tools as JSON.

    Images and audio are not counted (their price depends on the provider's own accounting).
    """
    chars = len(case.system or "") + sum(len(text) for text in _texts(case))
    if case.tools:
        chars += len(json.dumps(list(case.tools), separators=(",", ":")))
    return math.ceil(chars / CHARS_PER_TOKEN)


def prompt_text(case: CaseSpec, limit: int = SAMPLE_CHARS) -> str:
    """The case's system prompt and message texts on one line, cut at ``limit`` characters."""
    parts = [f"[system] {case.system}"] if case.system else []
    for message in case.messages:
        text = " ".join(_message_texts(message))
        parts.append(f"[{message.get('role', '?')}] {text}")
    line = " ".join(parts).replace("\r", " ").replace("\n", " ")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def describe(plan: PlanPreview, path: str) -> list[str]:
    """The lines ``runner run --dry-run`` prints."""
    lines = [
        f"dry run of {path} (job {plan.job!r}): {plan.cases} cases, {plan.units} units"
        + (f" (and {graded} grading requests)" if (graded := plan.grading_requests) else "")
        + "; nothing sent, no database or run created",
        f"{'provider':<24} {'units':>8} {'input tok':>12} {'output tok':>12} {'est. cost':>12}",
    ]
    for p in plan.providers:
        output = f"{p.output_tokens:,}" if p.output_tokens is not None else "no cap"
        cost = f"${p.cost_usd:.4f}" if p.cost_usd is not None else "no price"
        lines.append(f"{p.name:<24} {p.units:>8,} {p.input_tokens:>12,} {output:>12} {cost:>12}")
    unpriced = [p.name for p in plan.providers if p.price is None and p.units]
    uncapped = [p.name for p in plan.providers if p.output_tokens is None and p.units]
    total = f"estimated cost: up to ${plan.cost_usd:.4f}"
    if unpriced:
        total += f" (not counted, no price: {', '.join(unpriced)})"
    lines.append(total)
    lines.append(
        f"how: input tokens ~ characters / {CHARS_PER_TOKEN} (system, message text, tools); "
        "output tokens at their cap (max_tokens, or the dialect's default)"
    )
    if uncapped:
        lines.append(f"no output cap, so input only: {', '.join(uncapped)} (set max_tokens to count output)")
    lines.append(f"sample prompts ({len(plan.samples)} of {plan.cases} cases):")
    lines += [f"  {case_id}: {text}" for case_id, text in plan.samples]
    return lines


def _cost(price: Price | None, tokens_in: int, tokens_out: int | None) -> float | None:
    if price is None:
        return None
    total = tokens_in * Decimal(str(price.input)) + (tokens_out or 0) * Decimal(str(price.output))
    return float(total / Decimal(1_000_000))


def _texts(case: CaseSpec) -> list[str]:
    return [text for message in case.messages for text in _message_texts(message)]


def _message_texts(message: dict[str, Any]) -> list[str]:
    content = message.get("content")
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
    return []
