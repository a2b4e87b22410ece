"""Realistic records for storage tests and the benchmark: jobs, units, attempts, completions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from runner.grading.assertions import AssertionOutcome
from runner.job.plan import Unit
from runner.model import (
    AttemptError,
    AttemptRecord,
    AttemptTiming,
    Choice,
    Completion,
    CompletionError,
    ErrorKind,
    ToolCall,
    Usage,
)
from runner.spec import CaseSpec, JobSpec, Price, ProviderSpec
from runner.store import repository
from runner.store.records import UnitFinish

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from runner.store.records import ClaimedUnit

FAKE_KEY = "sk-test-FAKEKEY-0123456789abcdefDO-NOT-STORE"
STARTED = datetime(2025, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)
HELD = AssertionOutcome(name="contains", passed=True, detail="all found")

# How a unit of finished_run ends: its status, and the assertion outcomes stored with it (None: none).
Finish = tuple[Literal["ok", "failed"], tuple[AssertionOutcome, ...] | None]


def make_job(name: str = "nightly", *, cases: int = 2) -> JobSpec:
    """A two-provider job; one provider carries a secret-looking header that must never be stored."""
    return JobSpec(
        name=name,
        tags=("nightly", "smoke"),
        providers=(
            ProviderSpec(
                name="mini",
                dialect="openai-chat",
                base_url="https://api.openai.com/v1",
                model="gpt-4o-mini",
                api_key_env="OPENAI_API_KEY",
                headers={"Authorization": f"Bearer {FAKE_KEY}", "X-Team": "evals"},
                price=Price(input=0.15, output=0.60, cached_input=0.075),
            ),
            ProviderSpec(
                name="claude",
                dialect="anthropic-messages",
                base_url="https://api.anthropic.com",
                model="claude-sonnet-4",
                api_key_env="ANTHROPIC_API_KEY",
            ),
        ),
        cases=tuple(
            CaseSpec(id=f"case-{i}", messages=({"role": "user", "content": f"question {i}"},))
            for i in range(cases)
        ),
        source_path="jobs/nightly.toml",
        source_sha256="ab" * 32,
    )


def make_units(count: int, *, provider: str = "mini", hash_prefix: str = "h") -> list[Unit]:
    """``count`` units of one provider, one repeat of distinct cases."""
    return [
        Unit(
            key=f"{provider}/case-{i}/0",
            provider=provider,
            case_id=f"case-{i}",
            repeat=0,
            request_hash=f"{hash_prefix}{i:063d}"[-64:],
        )
        for i in range(count)
    ]


def make_completion(text: str = "The weather in Tokyo is sunny.", *, choices: int = 1) -> Completion:
    """A complete completion with reasoning, a tool call, usage and a reported cost."""
    return Completion(
        id="chatcmpl-123",
        model="gpt-4o-mini-2024-07-18",
        complete=True,
        choices=tuple(
            Choice(
                index=i,
                text=f"{text} ({i})" if i else text,
                reasoning="Let me think.",
                reasoning_steps=({"type": "thinking", "signature": "sig"},),
                refusal=None,
                tool_calls=(ToolCall(id="call_1", name="get_weather", arguments='{"city": "Tokyo"}'),),
                finish_reason="tool_calls",
                raw_finish_reason="tool_calls",
            )
            for i in range(choices)
        ),
        usage=Usage(
            input_tokens=120,
            output_tokens=45,
            total_tokens=165,
            reasoning_tokens=10,
            cached_input_tokens=64,
            cache_write_tokens=0,
            cost=0.000123,
            raw={"prompt_tokens": 120, "completion_tokens": 45},
        ),
        extras={"system_fingerprint": "fp_1"},
    )


def make_timing() -> AttemptTiming:
    """Plausible attempt timings."""
    return AttemptTiming(
        started_at=STARTED,
        headers_s=0.21,
        first_byte_s=0.25,
        first_reasoning_s=0.4,
        first_answer_s=0.9,
        end_s=2.5,
        gap_p50_s=0.02,
        gap_p90_s=0.08,
        gap_max_s=0.3,
    )


def ok_attempt(unit_key: str, number: int = 1, completion: Completion | None = None) -> AttemptRecord:
    """A successful attempt."""
    return AttemptRecord(
        unit_key=unit_key,
        number=number,
        http_status=200,
        error=None,
        completion=completion or make_completion(),
        timing=make_timing(),
        bytes_received=4096,
        chunks=52,
        heartbeats=1,
        raw_capture=b'data: {"choices": []}\n\ndata: [DONE]\n\n',
    )


def failed_attempt(unit_key: str, number: int = 1, *, kind: ErrorKind = "early_close") -> AttemptRecord:
    """A failed attempt that still produced partial output and consumed tokens."""
    partial = Completion(
        id="chatcmpl-part",
        model="gpt-4o-mini-2024-07-18",
        complete=False,
        error=CompletionError(type="overloaded_error", message="Overloaded", code=529),
        choices=(Choice(index=0, text="The wea"),),
        usage=Usage(input_tokens=120, output_tokens=3),
    )
    return AttemptRecord(
        unit_key=unit_key,
        number=number,
        http_status=200,
        error=AttemptError(
            kind=kind,
            message="stream ended without [DONE]",
            http_status=200,
            retry_after=2.0,
            retryable=True,
        ),
        completion=partial,
        timing=make_timing(),
        bytes_received=300,
        chunks=3,
        heartbeats=0,
        raw_capture=b'data: {"choices": [{"delta": {"content": "The wea"}}]}\n\n',
    )


def finished_run(session: Session, finishes: Sequence[Finish]) -> tuple[str, list[ClaimedUnit]]:
    """A run of one unit per ``finishes`` entry, each claimed and finished with an ok attempt ("ok") or a
    failed one with partial output ("failed") and those outcomes; returns the run id and the units."""
    run = repository.create_run(session, make_job(cases=len(finishes)), host="h", version="v")
    repository.add_units(session, run.id, make_units(len(finishes)))
    units = repository.claim_units(session, run.id, "w", limit=len(finishes), lease_seconds=60)
    repository.write_batch(
        session,
        [
            UnitFinish(
                unit_id=unit.id,
                owner="w",
                status=status,
                attempt=ok_attempt(unit.key) if status == "ok" else failed_attempt(unit.key),
                assertions=assertions,
            )
            for unit, (status, assertions) in zip(units, finishes, strict=True)
        ],
    )
    return run.id, units
