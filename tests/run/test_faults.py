"""The simulator's whole fault catalogue through the engine: final status, attempts and error kinds."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import trio

from runner.simulator.server import SimulatorHandle
from runner.spec import Price, ProviderSpec, RetryPolicy, Timeouts
from tests.conftest import StartSimulator
from tests.fakes.scripted_http import ScriptedServer, bad_gzip_response
from tests.run.helpers import make_job, provider_for, run_in_process

pytestmark = pytest.mark.usefixtures("transport")  # on both transports (tests/run/conftest.py)

RETRY = RetryPolicy(max_attempts=3, backoff_initial=0.01, backoff_max=0.05, retry_after_max=5)
TIMEOUTS = Timeouts(connect=2, first_byte=0.5, first_token=0.8, idle=0.5, total=10)

# (fault script, dialect, final unit status, error kind of each stored attempt, in order)
CATALOGUE = [
    pytest.param("1=http_429:ra=0.1", "openai-chat", "ok", ["rate_limited", None], id="429-retry-after"),
    pytest.param("1=http_429:ms=50", "openai-chat", "ok", ["rate_limited", None], id="429-retry-after-ms"),
    pytest.param("1=http_429:date=1", "openai-chat", "ok", ["rate_limited", None], id="429-http-date"),
    pytest.param("1=quota", "openai-chat", "failed", ["quota_exhausted"], id="429-insufficient-quota"),
    # Anthropic's and Runware's quota bodies say it by message or code only (issue 10, item 11)
    pytest.param("1=quota", "anthropic-messages", "failed", ["quota_exhausted"], id="quota-anthropic"),
    pytest.param("1=quota", "runware", "failed", ["quota_exhausted"], id="quota-runware"),
    pytest.param("1=http_408", "openai-chat", "ok", ["timeout", None], id="408"),
    pytest.param("1=http_500", "openai-chat", "ok", ["server_error", None], id="500"),
    pytest.param("1=http_502", "runware", "ok", ["server_error", None], id="502-runware"),
    pytest.param("1=http_503", "anthropic-messages", "ok", ["server_error", None], id="503-anthropic"),
    pytest.param("1=http_529", "anthropic-messages", "ok", ["overloaded", None], id="529-overloaded"),
    pytest.param("1=http_400", "openai-chat", "failed", ["client_error"], id="400"),
    pytest.param("1=http_401", "openai-chat", "failed", ["auth_error"], id="401"),
    pytest.param("1=http_403", "anthropic-messages", "failed", ["auth_error"], id="403"),
    # A 402 body saying insufficient_balance (SolRouter) or billing_error (Anthropic): credit spent
    pytest.param("1=http_402", "openai-chat", "failed", ["quota_exhausted"], id="402"),
    pytest.param("1=http_402", "anthropic-messages", "failed", ["quota_exhausted"], id="402-billing-error"),
    pytest.param("1=http_404", "runware", "failed", ["not_found"], id="404"),
    pytest.param("1=http_422", "openai-chat", "failed", ["client_error"], id="422"),
    pytest.param("1=reset", "openai-chat", "ok", ["connect_error", None], id="reset-before-response"),
    pytest.param("1=close_clean", "openai-chat", "ok", ["early_close", None], id="clean-early-close"),
    pytest.param("1=close_abrupt", "anthropic-messages", "ok", ["early_close", None], id="abrupt-close"),
    pytest.param("1=close_clean", "runware", "ok", ["early_close", None], id="early-close-runware"),
    pytest.param("1=stall", "openai-chat", "ok", ["timeout", None], id="stall"),
    pytest.param("1=heartbeat_stall", "openai-chat", "ok", ["timeout", None], id="heartbeat-only-stall"),
    pytest.param("1=stream_error", "openai-chat", "ok", ["stream_error", None], id="stream-error-openai"),
    pytest.param(
        "1=stream_error", "anthropic-messages", "ok", ["overloaded", None], id="stream-error-anthropic"
    ),
    pytest.param("1=stream_error", "runware", "ok", ["stream_error", None], id="stream-error-runware"),
    pytest.param("1=finish_error", "openai-chat", "ok", ["stream_error", None], id="miromind-finish-error"),
    pytest.param("1=malformed", "openai-chat", "ok", ["protocol_error", None], id="malformed-chunk"),
    pytest.param(
        "1=malformed", "anthropic-messages", "ok", ["protocol_error", None], id="malformed-anthropic"
    ),
    # gemini (issue 15): Google's RPC statuses drive the kinds, in error bodies and mid-stream events alike
    pytest.param("1=http_429:ra=0.1", "gemini", "ok", ["rate_limited", None], id="429-gemini"),
    pytest.param("1=quota", "gemini", "failed", ["quota_exhausted"], id="quota-gemini"),
    pytest.param("1=http_503", "gemini", "ok", ["overloaded", None], id="503-gemini-unavailable"),
    pytest.param("1=http_500", "gemini", "ok", ["server_error", None], id="500-gemini"),
    pytest.param("1=http_400", "gemini", "failed", ["client_error"], id="400-gemini"),
    pytest.param("1=http_403", "gemini", "failed", ["auth_error"], id="403-gemini"),
    pytest.param("1=close_abrupt", "gemini", "ok", ["early_close", None], id="abrupt-close-gemini"),
    pytest.param("1=stream_error", "gemini", "ok", ["overloaded", None], id="stream-error-gemini"),
    pytest.param("1=malformed", "gemini", "ok", ["protocol_error", None], id="malformed-gemini"),
    pytest.param("dribble@1", "gemini", "ok", [None], id="dribble-gemini"),
    pytest.param("dribble@1", "openai-chat", "ok", [None], id="byte-by-byte-dribble"),
    pytest.param("dribble@1", "anthropic-messages", "ok", [None], id="dribble-anthropic"),
    pytest.param("http_500@1", "openai-chat", "failed", ["server_error"] * 3, id="attempts-run-out"),
    pytest.param("1=http_429:ra=30", "openai-chat", "failed", ["rate_limited"], id="retry-after-too-long"),
    # openai-responses: its error bodies, its `error` event mid-stream, its typed events cut or broken
    pytest.param("1=quota", "openai-responses", "failed", ["quota_exhausted"], id="quota-responses"),
    pytest.param("1=http_429", "openai-responses", "ok", ["rate_limited", None], id="429-responses"),
    pytest.param("1=http_401", "openai-responses", "failed", ["auth_error"], id="401-responses"),
    pytest.param("1=http_503", "openai-responses", "ok", ["server_error", None], id="503-responses"),
    pytest.param(
        "1=close_clean", "openai-responses", "ok", ["early_close", None], id="early-close-responses"
    ),
    pytest.param(
        "1=close_abrupt", "openai-responses", "ok", ["early_close", None], id="abrupt-close-responses"
    ),
    pytest.param("1=stall", "openai-responses", "ok", ["timeout", None], id="stall-responses"),
    pytest.param(
        "1=stream_error", "openai-responses", "ok", ["stream_error", None], id="stream-error-responses"
    ),
    pytest.param("1=malformed", "openai-responses", "ok", ["protocol_error", None], id="malformed-responses"),
    pytest.param("dribble@1", "openai-responses", "ok", [None], id="dribble-responses"),
]


@pytest.mark.parametrize(("faults", "dialect", "status", "kinds"), CATALOGUE)
async def test_fault_catalogue(
    tmp_path: Path,
    start_simulator: StartSimulator,
    faults: str,
    dialect: str,
    status: str,
    kinds: list[str | None],
) -> None:
    """Each scripted fault ends the unit with the expected status, attempts and error kinds."""
    simulator: SimulatorHandle = await start_simulator()
    provider = provider_for(
        simulator, dialect, retry=RETRY, timeouts=TIMEOUTS, headers={"x-sim-faults": faults}
    )
    with trio.fail_after(30):
        summary, units = await run_in_process(tmp_path, make_job([provider]))
    (unit,) = units
    assert unit.status == status
    assert [a.error.kind if a.error else None for a in unit.attempts] == kinds
    assert unit.attempt_count == len(kinds)
    assert summary.exit_code == (0 if status == "ok" else 1)
    served = [r for r in simulator.log.entries if r.dialect == dialect]
    # Every attempt the runner stored was really sent (a reset or a stall still reached the server).
    assert len(served) == len(kinds)


async def test_retry_after_spacing_measured_at_the_server(
    tmp_path: Path, start_simulator: StartSimulator
) -> None:
    """The second request reaches the server no sooner than the Retry-After the first one got."""
    simulator = await start_simulator()
    provider = provider_for(
        simulator,
        "openai-chat",
        retry=RETRY,
        timeouts=TIMEOUTS,
        headers={"x-sim-faults": "1=http_429:ra=0.4"},
    )
    with trio.fail_after(30):
        _, (unit,) = await run_in_process(tmp_path, make_job([provider]))
    assert unit.status == "ok"
    first, second = simulator.log.entries
    assert second.time - first.time >= 0.4
    assert unit.attempts[0].error is not None
    assert unit.attempts[0].error.retry_after == pytest.approx(0.4)


# httpx's aiter_bytes abandons the generators under it on a DecodingError (see test_attempt.py).
@pytest.mark.filterwarnings("ignore:Async generator 'http:ResourceWarning")
async def test_bad_content_encoding_fails_only_its_units(
    tmp_path: Path, start_simulator: StartSimulator, nursery: trio.Nursery
) -> None:
    """A body that is not the gzip its header claims is a retried protocol error; the run and the
    other provider's units finish normally."""
    broken = await nursery.start(ScriptedServer([bad_gzip_response() for _ in range(9)]).serve)
    bad = ProviderSpec(name="gzip", dialect="openai-chat", base_url=broken.base_url, model="m")
    bad = dataclasses.replace(bad, retry=RETRY, timeouts=TIMEOUTS)
    good = provider_for(await start_simulator(), "openai-chat", retry=RETRY, timeouts=TIMEOUTS)
    with trio.fail_after(30):
        summary, units = await run_in_process(tmp_path, make_job([bad, good], repeats=3))
    assert summary.status == "finished"
    assert summary.exit_code == 1
    by_provider = {name: [u for u in units if u.provider == name] for name in ("gzip", "openai-chat")}
    assert [u.status for u in by_provider["openai-chat"]] == ["ok"] * 3
    for unit in by_provider["gzip"]:
        assert unit.status == "failed"
        assert [a.error.kind if a.error else None for a in unit.attempts] == ["protocol_error"] * 3
    assert len(broken.requests) == 9


@pytest.mark.parametrize("fault", ["stream_error:2", "close_clean:2"])
async def test_a_cut_gemini_stream_keeps_its_prompt_tokens(
    tmp_path: Path, start_simulator: StartSimulator, fault: str
) -> None:
    """Google repeats usageMetadata on every event (growing), so a Gemini stream cut after a few
    events still says how many prompt tokens it read: the failed attempt's input is counted and
    costs, as README promises for failed attempts that consumed tokens."""
    simulator = await start_simulator()
    provider = provider_for(
        simulator,
        "gemini",
        retry=RETRY,
        timeouts=TIMEOUTS,
        headers={"x-sim-faults": f"1={fault}"},
        price=Price(input=1.0, output=2.0),
    )
    with trio.fail_after(30):
        _, (unit,) = await run_in_process(tmp_path, make_job([provider]))
    cut, whole = unit.attempts
    assert cut.error is not None
    assert whole.error is None
    assert cut.usage is not None
    assert whole.usage is not None
    assert cut.usage.input_tokens == whole.usage.input_tokens
    assert cut.cost_computed is not None
    assert cut.cost_computed > 0
