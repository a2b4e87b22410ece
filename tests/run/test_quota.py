"""Quota and credit exhaustion is classified by type, code and message, in every dialect (issue 10, item 11).

The pure classifier first, then each dialect's real error shapes (PROTOCOLS.md 2.5, 4.5; the seeds'
Runware ``errors`` array) over a real loopback socket, both as HTTP error bodies and in the stream.
"""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import orjson
import pytest

from runner.model import AttemptRecord, Completion, CompletionError
from runner.run.retry import classify_completion, classify_http, is_quota_exhausted
from runner.spec import Timeouts
from tests.fakes.scripted_http import Step, json_response, sse_response
from tests.run.loopback import attempt_on_script

pytestmark = pytest.mark.usefixtures("transport")  # on both transports (tests/run/conftest.py)

NOW = datetime(2025, 1, 1, tzinfo=UTC)
TIMEOUTS = Timeouts(connect=5, first_byte=5, first_token=5, idle=5, total=10)

ANTHROPIC_CREDIT = "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing."
RUNWARE_CREDIT = "Insufficient credits to run this task. Top up your account at https://my.runware.ai."
OPENAI_QUOTA = "You exceeded your current quota, please check your plan and billing details."


@pytest.mark.parametrize(
    ("error_type", "code", "message", "expected"),
    [
        pytest.param("insufficient_quota", None, "", True, id="openai-type"),
        pytest.param(None, "insufficient_quota", "", True, id="openai-code"),
        pytest.param("invalid_request_error", None, ANTHROPIC_CREDIT, True, id="anthropic-credit-message"),
        pytest.param("billing_error", None, "billing issue", True, id="anthropic-billing-type"),
        pytest.param(None, "insufficientCredits", "", True, id="runware-code"),
        pytest.param("invalidRequest", "invalidRequest", RUNWARE_CREDIT, True, id="runware-message"),
        pytest.param("requests", None, OPENAI_QUOTA, True, id="openai-message"),
        pytest.param(None, None, "Quota exhausted for this API key", True, id="quota-exhausted"),
        pytest.param(None, None, "You are out of credits", True, id="out-of-credits"),
        pytest.param(None, None, "Insufficient balance", True, id="insufficient-balance"),
        pytest.param("rate_limit_error", None, "Rate limit exceeded, retry later", False, id="rate-limit"),
        pytest.param(
            None, None, "Quota exceeded for metric 'requests per minute'", False, id="per-minute-quota"
        ),
        pytest.param("overloaded_error", None, "Overloaded", False, id="overloaded"),
        pytest.param(None, None, "Simulated 429 Too Many Requests.", False, id="plain-429"),
    ],
)
def test_is_quota_exhausted(error_type: str | None, code: str | None, message: str, expected: bool) -> None:
    """The pure classifier reads the type, the code and the message; a per-minute quota is a rate limit."""
    assert is_quota_exhausted(error_type, code, message) is expected


def test_classify_http_reads_the_message() -> None:
    """Anthropic's credit answer (HTTP 400 invalid_request_error) is quota_exhausted, not a client error."""
    decision = classify_http(
        400, {}, now=NOW, error_type="invalid_request_error", error_message=ANTHROPIC_CREDIT
    )
    assert (decision.kind, decision.retryable) == ("quota_exhausted", False)


def test_a_server_error_mentioning_quota_stays_a_server_error() -> None:
    """A 5xx whose message mentions a quota is the server's trouble: retried, not final."""
    decision = classify_http(503, {}, now=NOW, error_message="upstream quota exhausted")
    assert (decision.kind, decision.retryable) == ("server_error", True)


def test_classify_completion_reads_the_message() -> None:
    """An in-stream error whose message says the credits are gone fails fast."""
    error = CompletionError(type="invalidRequest", message=RUNWARE_CREDIT, code="invalidRequest")
    decision = classify_completion(Completion(error=error))
    assert decision is not None
    assert (decision.kind, decision.retryable) == ("quota_exhausted", False)


async def _attempt(client: httpx.AsyncClient, dialect_name: str, script: list[Step]) -> AttemptRecord:
    return await attempt_on_script(client, script, dialect_name=dialect_name, timeouts=TIMEOUTS)


_ANTHROPIC_BODY = {"type": "error", "error": {"type": "invalid_request_error", "message": ANTHROPIC_CREDIT}}
_RUNWARE_BODY = {
    "errors": [
        {
            "code": "insufficientCredits",
            "message": RUNWARE_CREDIT,
            "taskType": "textInference",
            "taskUUID": "a770f077-f413-47de-9dac-be0b26a35da6",
        }
    ]
}
_MIROMIND_BODY = {"error": {"message": "Insufficient credits: top up to continue", "type": "requests"}}
_MELIOUS_BODY = {"type": "error", "error": {"type": "billing_error", "message": "Credit balance exhausted"}}


@pytest.mark.parametrize(
    ("dialect", "status", "body"),
    [
        pytest.param("anthropic-messages", 400, _ANTHROPIC_BODY, id="anthropic-400"),
        pytest.param("anthropic-messages", 402, _MELIOUS_BODY, id="melious-402"),
        pytest.param("runware", 400, _RUNWARE_BODY, id="runware-400"),
        pytest.param("openai-chat", 429, {"error": {"message": OPENAI_QUOTA, "type": "x"}}, id="openai-429"),
        pytest.param("openai-chat", 402, _MIROMIND_BODY, id="miromind-402"),
    ],
)
async def test_http_quota_bodies_fail_fast(
    client: httpx.AsyncClient, dialect: str, status: int, body: dict[str, object]
) -> None:
    """Each dialect's quota or credit HTTP error body is quota_exhausted and not retried."""
    record = await _attempt(client, dialect, json_response(status, orjson.dumps(body)))
    assert record.error is not None
    assert (record.error.kind, record.error.retryable) == ("quota_exhausted", False)


_OPENAI_START = (
    b'data: {"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"a"}}]}\n\n'
)
_ANTHROPIC_START = (
    b"event: message_start\ndata: "
    b'{"type":"message_start","message":{"id":"m","model":"x","usage":{"input_tokens":1}}}\n\n'
)


@pytest.mark.parametrize(
    ("dialect", "events"),
    [
        pytest.param(
            "openai-chat",
            [_OPENAI_START, b"data: " + orjson.dumps(_MIROMIND_BODY) + b"\n\n"],
            id="openai-error-chunk",
        ),
        pytest.param(
            "anthropic-messages",
            [_ANTHROPIC_START, b"event: error\ndata: " + orjson.dumps(_ANTHROPIC_BODY) + b"\n\n"],
            id="anthropic-error-event",
        ),
        pytest.param("runware", [b"data: " + orjson.dumps(_RUNWARE_BODY) + b"\n\n"], id="runware-errors"),
    ],
)
async def test_in_stream_quota_errors_fail_fast(
    client: httpx.AsyncClient, dialect: str, events: list[bytes]
) -> None:
    """Each dialect's in-stream quota or credit error is quota_exhausted and not retried."""
    record = await _attempt(client, dialect, sse_response(*events))
    assert record.error is not None
    assert (record.error.kind, record.error.retryable) == ("quota_exhausted", False)
