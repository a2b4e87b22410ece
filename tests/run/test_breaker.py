"""A provider that refuses everyone stops getting requests (issue 10, item 10)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import trio

from runner.model import AttemptError
from runner.run.breaker import STOP_AFTER, Breaker
from runner.run.progress import Progress
from tests.conftest import StartSimulator
from tests.run.helpers import make_job, provider_for, run_in_process

pytestmark = pytest.mark.usefixtures("transport")  # on both transports (tests/run/conftest.py)

AUTH = AttemptError(kind="auth_error", message="HTTP 401 invalid_request_error: bad key", http_status=401)
QUOTA = AttemptError(kind="quota_exhausted", message="HTTP 429 insufficient_quota", http_status=429)
SERVER = AttemptError(kind="server_error", message="HTTP 500", http_status=500, retryable=True)


def test_five_refusals_in_a_row_stop_the_provider() -> None:
    """The fifth consecutive auth or quota refusal stops it; the refusal is kept."""
    breaker = Breaker()
    outcomes = [breaker.record(error) for error in (AUTH, QUOTA, AUTH, AUTH)]
    assert outcomes == [None] * 4
    assert breaker.record(AUTH) is AUTH
    assert breaker.stopped is AUTH
    assert breaker.record(AUTH) is None  # stopped once


@pytest.mark.parametrize(
    "breaking",
    [pytest.param(None, id="an-answer"), pytest.param(SERVER, id="a-retryable-error")],
)
def test_anything_else_breaks_the_run_of_refusals(breaking: AttemptError | None) -> None:
    """An answer or a retryable failure between refusals starts the count again."""
    breaker = Breaker()
    for error in (AUTH, AUTH, AUTH, AUTH, breaking, AUTH, AUTH, AUTH, AUTH):
        breaker.record(error)
    assert breaker.stopped is None


def test_not_sent_carries_the_refusal() -> None:
    """A unit that is not sent fails with the refusal's kind and says it was not sent."""
    from datetime import UTC, datetime

    breaker = Breaker(threshold=1)
    breaker.record(AUTH)
    record = breaker.not_sent("p", "p/c/7", 1, datetime.now(UTC))
    assert record.error is not None
    assert (record.error.kind, record.error.retryable, record.http_status) == ("auth_error", False, None)
    assert record.error.message.startswith("not sent: provider p refused 1 units in a row (auth_error")
    assert record.bytes_received == 0


def test_the_progress_line_names_a_stopped_provider() -> None:
    """The progress line says which provider was stopped and why."""
    progress = Progress(total=10, started_at=0.0)
    progress.of("p").stopped = "auth_error"
    assert "p stopped (auth_error): units fail unsent" in progress.line(1.0)


@pytest.mark.slow
async def test_a_provider_answering_401_gets_about_five_requests(
    tmp_path: Path, start_simulator: StartSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    """300 units against a provider answering 401: about 5 requests reach it, every unit fails with
    auth_error, the other provider is untouched, and the run exits 1."""
    refusing_sim = await start_simulator()
    good_sim = await start_simulator()
    refusing = provider_for(
        refusing_sim, "openai-chat", name="refusing", headers={"x-sim-faults": "http_401@1"}, concurrency=4
    )
    good = provider_for(good_sim, "anthropic-messages", name="good", concurrency=4)
    caplog.set_level(logging.WARNING, logger="runner.run.unit")
    with trio.fail_after(120):
        summary, units = await run_in_process(tmp_path, make_job([refusing, good], repeats=300))
    assert STOP_AFTER <= len(refusing_sim.log) <= STOP_AFTER + refusing.concurrency - 1
    assert refusing_sim.log.faults == {"http_401": len(refusing_sim.log)}
    refused = [u for u in units if u.provider == "refusing"]
    assert len(refused) == 300
    assert {u.status for u in refused} == {"failed"}
    finals = [u.attempts[-1].error for u in refused]
    assert {e.kind for e in finals if e is not None} == {"auth_error"}
    assert all(e is not None for e in finals)
    assert sum(e.message.startswith("not sent:") for e in finals if e is not None) >= 300 - len(
        refusing_sim.log
    )
    assert {u.status for u in units if u.provider == "good"} == {"ok"}
    assert summary.exit_code == 1
    assert "provider refusing refused 5 units in a row (auth_error)" in caplog.text
