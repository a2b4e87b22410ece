"""Report inputs made in Python as the store's own records: deterministic synthetic runs, with hostile
model output on request."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from runner.grading.assertions import AssertionOutcome
from runner.model import Choice, Completion, ErrorKind, ToolCall, Usage
from runner.report.common import RunData
from runner.store.records import AttemptCost, AttemptView, ErrorView, RunInfo, UnitView

START = datetime(2025, 11, 20, 22, 0, tzinfo=UTC)
PRICES: dict[str, dict[str, float | None] | None] = {
    "mini": {"input": 0.15, "output": 0.6, "cached_input": 0.075, "cache_write": None},
    "claude": {"input": 3.0, "output": 15.0, "cached_input": 0.3, "cache_write": 3.75},
    "runware": None,
}
# Everything a browser might execute if a report forgot to escape: each proves itself by a side effect
# (a title change, a console message or a request) that the browser tests watch for.
HOSTILE = (
    "<script>document.title='PWNED';console.error('XSS-script')</script>",
    "<img src=x onerror=\"console.error('XSS-img');document.title='PWNED'\">",
    "</textarea><script>console.error('XSS-textarea')</script>",
    "<a href=\"javascript:console.error('XSS-link')\">click</a>",
    "</pre></details></td></tr></table><svg onload=\"console.error('XSS-svg')\"></svg>",
    "<img src='http://evil.example/pixel.png'><link rel=stylesheet href='https://evil.example/x.css'>",
    "<style>body{background:url(https://evil.example/bg)}</style>{{ report }}{% raw %}",
)
KINDS: tuple[ErrorKind, ...] = ("rate_limited", "server_error", "overloaded", "early_close", "timeout")


def _usage(
    rng: random.Random, output: int, price: dict[str, float | None] | None
) -> tuple[Usage, float | None]:
    inp = rng.randint(20, 900)
    cached = rng.choice((0, 0, inp // 2))
    cost = None
    if price is not None:
        cost = (
            (inp - cached) * (price["input"] or 0)
            + cached * (price["cached_input"] or 0)
            + output * (price["output"] or 0)
        ) / 1e6
    return Usage(
        input_tokens=inp, output_tokens=output, cached_input_tokens=cached, reasoning_tokens=output // 4
    ), cost


def make_run(
    units: int = 60,
    *,
    seed: int = 7,
    run_id: str = "r-fix001",
    job: str = "nightly-smoke",
    hostile: bool = False,
    answer_chars: int = 400,
    slower: float = 1.0,
    start: datetime = START,
) -> RunData:
    """A run of ``units`` units over three providers with retries, failures, tool calls and assertions."""
    rng = random.Random(seed)
    providers = list(PRICES)
    cases = max(1, units // (len(providers) * 2))
    made: list[UnitView] = []
    for index in range(units):
        provider = providers[index % len(providers)]
        case_id = f"case-{(index // len(providers)) % cases:04d}"
        repeat = index // (len(providers) * cases)
        offset = index * 3600 / max(1, units) + rng.random()
        n_attempts = rng.choices((1, 2, 3), weights=(85, 10, 5))[0]
        status = "failed" if rng.random() < 0.06 else "ok"
        payload = HOSTILE[index % len(HOSTILE)] if hostile else ""
        text = (
            payload
            + f" Answer {index} (take {seed % 3}): "
            + "lorem ipsum dolor sit amet " * (answer_chars // 27)
        )[: max(answer_chars, len(payload) + 20)]
        attempts: list[AttemptView] = []
        clock = start + timedelta(seconds=offset)
        for number in range(1, n_attempts + 1):
            last = number == n_attempts
            failing = not last or status == "failed"
            ttft = rng.lognormvariate(-0.7, 0.5) * slower * (1.6 if provider == "claude" else 1.0)
            end = ttft + rng.uniform(0.5, 4.0) * slower
            output = rng.randint(20, 600)
            usage, computed = _usage(rng, output if not failing else output // 5, PRICES[provider])
            error = None
            if failing:
                kind = KINDS[(index + number) % len(KINDS)]
                error = ErrorView(
                    kind=kind,
                    message=f"{kind} from {provider}: {payload or 'try later'}",
                    http_status=429 if kind == "rate_limited" else 503,
                )
            reported = (
                computed * 1.02
                if computed is not None and provider == "mini"
                else (0.0004 if provider == "runware" else None)
            )
            attempts.append(
                AttemptView(
                    id=index * 10 + number,
                    number=number,
                    started_at=clock,
                    headers_s=ttft * 0.4,
                    first_byte_s=ttft * 0.4,
                    first_reasoning_s=ttft if provider == "claude" else None,
                    first_answer_s=ttft * (1.3 if provider == "claude" else 1.0),
                    end_s=end,
                    gap_p50_s=rng.uniform(0.01, 0.05),
                    gap_p90_s=rng.uniform(0.05, 0.3),
                    gap_max_s=None,
                    http_status=error.http_status if error else 200,
                    error=error,
                    stream_error=None,
                    bytes_received=0,
                    chunks=0,
                    heartbeats=0,
                    model=f"{provider}-model-2025",
                    complete=not failing,
                    partial_choices=(),
                    usage=replace(usage, cost=reported),
                    cost_reported=reported,
                    cost_computed=computed,
                    has_raw_capture=False,
                )
            )
            clock += timedelta(seconds=end + rng.uniform(0.2, 2.0))
        calls: tuple[ToolCall, ...] = ()
        if index % 5 == 0:
            calls = (
                ToolCall(
                    id=f"call_{index}",
                    name="get_weather",
                    arguments='{"city": "Tokyo", "note": "' + payload.replace('"', "'") + '"}',
                ),
            )
        if index % 11 == 0:
            calls += (ToolCall(id=None, name="broken", arguments='{"city": "Tok' + payload),)
        choice = Choice(
            index=0,
            text=text,
            reasoning=("Let me think. " + payload) * 3 if provider == "claude" else "",
            tool_calls=calls,
            finish_reason="tool_calls" if calls else ("stop" if status == "ok" else "error"),
        )
        outcomes = (
            AssertionOutcome(
                name="contains",
                passed=status == "ok",
                detail="missing 'Tokyo'" if status != "ok" else "all found",
            ),
            AssertionOutcome(
                name="max_ttft_s",
                passed=(attempts[-1].ttft_s or 0) < 1.0,
                detail=f"ttft {attempts[-1].ttft_s:.3f} s " + payload,
            ),
        )
        made.append(
            UnitView(
                id=index + 1,
                run_id=run_id,
                key=f"{provider}/{case_id}/{repeat}",
                provider=provider,
                case_id=case_id,
                repeat=repeat,
                request_hash=f"{run_id}/{index}",
                status="ok" if status == "ok" else "failed",
                attempt_count=len(attempts),
                reused_from=None,
                finished_at=clock,
                attempts=tuple(attempts),
                completion=Completion(
                    id=f"cmpl-{index}",
                    model=f"{provider}-model-2025",
                    complete=status == "ok",
                    choices=(choice,),
                ),
                assertions=outcomes,
            )
        )
    run = RunInfo(
        id=run_id,
        job_name=job,
        job_spec={},
        job_sha256=None,
        status="finished",
        started_at=start,
        finished_at=max(a.started_at + timedelta(seconds=a.end_s or 0) for u in made for a in u.attempts),
        host="ci-box",
        runner_version="0.1.0",
        tags=("nightly", "smoke" if not hostile else "<b>tag</b>"),
        prices=dict(PRICES),
    )
    return RunData(run=run, units=tuple(made))


def attempt_costs(data: RunData) -> list[AttemptCost]:
    """One AttemptCost per attempt of a run, as ``repository.attempt_costs`` reads them back."""
    return [
        AttemptCost(
            run_id=data.run.id,
            job_name=data.run.job_name,
            tags=data.run.tags,
            provider=unit.provider,
            model=attempt.model,
            started_at=attempt.started_at,
            ok=attempt.error is None,
            input_tokens=attempt.usage.input_tokens if attempt.usage else None,
            output_tokens=attempt.usage.output_tokens if attempt.usage else None,
            reasoning_tokens=attempt.usage.reasoning_tokens if attempt.usage else None,
            cached_input_tokens=attempt.usage.cached_input_tokens if attempt.usage else None,
            cost_reported=attempt.cost_reported,
            cost_computed=attempt.cost_computed,
        )
        for unit in data.units
        for attempt in unit.attempts
    ]


def failed_unit(unit: UnitView) -> UnitView:
    """``unit`` as failed: every attempt an error, its partial output graded (as an older runner did)."""
    error = ErrorView(kind="server_error", message="HTTP 503", http_status=503)
    attempts = tuple(replace(a, error=error, http_status=503) for a in unit.attempts)
    held = AssertionOutcome(name="contains", passed=True, detail="all found")
    return replace(unit, status="failed", attempts=attempts, assertions=(held, held))


HELD = AssertionOutcome(name="contains", passed=True, detail="all found")
MISSED = AssertionOutcome(name="python", passed=False, score=0.25, detail="too <b>vague</b>")
UNJUDGED = AssertionOutcome(name="python", passed=False, error=True, detail="KeyError: 'city'")


def rated_run(reason: str = MISSED.detail, case_id: str = "solid") -> RunData:
    """Case "flaky" x 10 repeats on mini (8 pass, 1 fails an assertion, 1 fails), pass_rate 0.8; a case
    (``case_id``) once on two providers, one with an assertion that could not be judged."""
    base = make_run(12)
    units: list[UnitView] = []
    missed = replace(MISSED, detail=reason)
    for repeat in range(10):
        unit = replace(base.units[repeat], provider="mini", case_id="flaky", repeat=repeat, status="ok")
        outcomes = (HELD, missed) if repeat == 8 else (HELD,)
        units.append(replace(unit, key=f"mini/flaky/{repeat}", assertions=outcomes))
    units[9] = replace(failed_unit(units[9]), assertions=())  # as this runner stores a failed unit
    for index, provider in enumerate(("mini", "claude")):
        unit = replace(base.units[10 + index], provider=provider, case_id=case_id, repeat=0, status="ok")
        outcomes = (HELD, UNJUDGED) if index else (HELD,)
        units.append(replace(unit, key=f"{provider}/{case_id}/0", assertions=outcomes))
    spec = {"cases": [{"id": "flaky", "expect": {"contains": "x", "pass_rate": 0.8}}, {"id": case_id}]}
    return replace(base, run=replace(base.run, job_spec=spec), units=tuple(units))
