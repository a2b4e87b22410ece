"""Tests of the gemini dialect: every edge of issue 15's ``gemini`` section, requests, load errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import orjson
import pytest

from runner.errors import ConfigError
from runner.job.load import load_batch_jsonl, load_job
from runner.job.plan import request_hash
from runner.model import Completion, CompletionError
from runner.pricing import compute_cost
from runner.run.breaker import REFUSALS
from runner.run.retry import classify_completion, classify_http
from runner.spec import CaseSpec, Price, ProviderSpec
from runner.wire.dialects import get_dialect
from runner.wire.dialects.gemini import GeminiAccumulator
from runner.wire.replay import accumulate, parse_stream
from tests.streams import fixture

GEMINI = get_dialect("gemini")
PROVIDER = ProviderSpec(
    name="g", dialect="gemini", base_url="https://generativelanguage.googleapis.com", model="gemini-2.5-flash"
)


def parse(name: str) -> Completion:
    return parse_stream("gemini", fixture(name))


def test_fixtures_use_crlf() -> None:
    """Google ends lines with CRLF: the fixtures keep it, so the decoder is tested on it."""
    assert b"\r\n\r\n" in fixture("gemini_thoughts_text.sse")
    assert b"\n\n" not in fixture("gemini_thoughts_text.sse").replace(b"\r\n", b"")


def test_thoughts_text_usage_and_signature() -> None:
    """thought parts are reasoning, the rest text; usage from the last usageMetadata, thoughts in output."""
    completion = parse("gemini_thoughts_text.sse")
    assert completion.complete
    assert completion.error is None
    assert (completion.id, completion.model) == ("mbVjaeGzA7-", "gemini-2.5-flash")
    choice = completion.choices[0]
    assert choice.reasoning == "**Weighing** the question"
    assert choice.text == "Paris is the capital of France. ✓"
    assert (choice.finish_reason, choice.raw_finish_reason) == ("stop", "STOP")
    usage = completion.usage
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (12, 17, 29)
    assert (usage.reasoning_tokens, usage.cached_input_tokens) == (8, 5)
    assert completion.extras["signatures"] == ["CiQB0e2Kbw=="]


def _tool_use_stream(*, fast_path: bool) -> Completion:
    """A grounded answer (googleSearch): the search results Google fed back to the model are counted
    in toolUsePromptTokenCount, apart from promptTokenCount; usageMetadata repeated, growing."""
    events = [
        {
            "candidates": [{"content": {"role": "model", "parts": [{"text": "Paris"}]}, "index": 0}],
            "usageMetadata": {"promptTokenCount": 40, "totalTokenCount": 40},
            "modelVersion": "gemini-2.5-flash",
            "responseId": "r1",
        },
        {
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{"text": " it is."}]},
                    "finishReason": "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": {
                "promptTokenCount": 40,
                "candidatesTokenCount": 12,
                "totalTokenCount": 1352,
                "cachedContentTokenCount": 30,
                "toolUsePromptTokenCount": 1200,
                "thoughtsTokenCount": 100,
                "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 40}],
                "toolUsePromptTokensDetails": [{"modality": "TEXT", "tokenCount": 1200}],
            },
            "modelVersion": "gemini-2.5-flash",
            "responseId": "r1",
        },
    ]
    raw = b"".join(b"data: " + orjson.dumps(event) + b"\r\n\r\n" for event in events)
    return accumulate(GeminiAccumulator(fast_path=fast_path), (raw,))


@pytest.mark.parametrize("fast_path", [True, False])
def test_tool_use_prompt_tokens_are_input(fast_path: bool) -> None:
    """toolUsePromptTokenCount is input the model read (totalTokenCount is prompt + candidates +
    toolUsePrompt + thoughts, google-genai's GenerateContentResponseUsageMetadata), billed at the input
    price: it is in input_tokens, so input + output is the total and the cost counts it."""
    usage = _tool_use_stream(fast_path=fast_path).usage
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (1240, 112, 1352)
    assert (usage.cached_input_tokens, usage.reasoning_tokens) == (30, 100)
    price = Price(input=1.0, output=10.0, cached_input=0.25)
    assert compute_cost(usage, price) == pytest.approx((1210 * 1.0 + 30 * 0.25 + 112 * 10.0) / 1e6)


def test_function_calls_with_and_without_id() -> None:
    """functionCall parts are tool calls: Google's id when sent, else a stable one; args as JSON text."""
    completion = parse("gemini_function_call.sse")
    choice = completion.choices[0]
    assert choice.text == "Let me check."
    assert [(c.id, c.name) for c in choice.tool_calls] == [("call_0_0", "get_weather"), ("fc-7", "get_time")]
    assert orjson.loads(choice.tool_calls[0].arguments) == {"city": "Paris", "unit": "celsius"}
    assert choice.tool_calls[1].arguments == "{}"
    assert (choice.finish_reason, choice.raw_finish_reason) == ("tool_calls", "STOP")
    assert completion.complete
    assert parse("gemini_function_call.sse") == completion  # the generated id is stable


def test_candidates_are_choices_with_their_own_finish() -> None:
    """Each candidate index is a choice; MAX_TOKENS is length, SAFETY a content filter, raw kept."""
    completion = parse("gemini_two_candidates.sse")
    assert [c.text for c in completion.choices] == ["One more", "Two"]
    assert [(c.finish_reason, c.raw_finish_reason) for c in completion.choices] == [
        ("length", "MAX_TOKENS"),
        ("content_filter", "SAFETY"),
    ]
    assert completion.complete


@pytest.mark.parametrize(
    ("raw", "finish"),
    [
        pytest.param("STOP", "stop", id="stop"),
        pytest.param("MAX_TOKENS", "length", id="max-tokens"),
        *(
            pytest.param(raw, "content_filter", id=raw.lower())
            for raw in ("SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY")
        ),
        pytest.param("OTHER", "error", id="other"),
        pytest.param("LANGUAGE", "error", id="language"),
        pytest.param("FINISH_REASON_UNSPECIFIED", "error", id="unspecified"),
    ],
)
def test_finish_reason_mapping(raw: str, finish: str) -> None:
    """The issue's mapping: anything outside STOP, MAX_TOKENS and the safety family is an error."""
    event = {"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": raw}]}
    choice = parse_stream("gemini", b"data: " + orjson.dumps(event) + b"\r\n\r\n").choices[0]
    assert (choice.finish_reason, choice.raw_finish_reason) == (finish, raw)


def test_other_finish_is_error_but_complete() -> None:
    """MALFORMED_FUNCTION_CALL: finish error, raw kept; every candidate has a reason, so complete."""
    completion = parse("gemini_malformed_function_call.sse")
    assert completion.choices[0].finish_reason == "error"
    assert completion.choices[0].raw_finish_reason == "MALFORMED_FUNCTION_CALL"
    assert completion.complete


def test_complete_waits_for_every_candidate() -> None:
    """With one of two candidates finished the stream is not complete; a cut stream is not either."""
    raw = fixture("gemini_two_candidates.sse")
    first_two = b"\r\n\r\n".join(raw.split(b"\r\n\r\n")[:2]) + b"\r\n\r\n"
    assert not parse_stream("gemini", first_two).complete
    assert not parse("gemini_cut.sse").complete
    assert parse("gemini_cut.sse").choices[0].text == "Half an ans"


def test_mid_stream_error_event() -> None:
    """An {"error": ...} event sets the error (type = RPC status) and is retried as overloaded."""
    completion = parse("gemini_error_midstream.sse")
    assert completion.error == CompletionError(
        type="UNAVAILABLE", message="The model is overloaded. Please try again later.", code=503
    )
    assert not completion.complete
    assert completion.choices[0].text == "Once upon"
    decision = classify_completion(completion)
    assert decision is not None
    assert (decision.kind, decision.retryable) == ("overloaded", True)


def _error_event(status: str, message: str, quota_id: str | None = None) -> bytes:
    error: dict[str, Any] = {"code": 429, "message": message, "status": status}
    if quota_id is not None:
        error["details"] = [
            {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{"quotaId": quota_id}]}
        ]
    return b"data: " + orjson.dumps({"error": error}) + b"\r\n\r\n"


QUOTA_MESSAGE = "You exceeded your current quota, please check your plan and billing details."
# The message in full, as the Gemini API sends it for a per-minute and a per-day quota alike: its links
# name the rate-limits page, which says nothing about the window.
FULL_QUOTA_MESSAGE = (
    f"{QUOTA_MESSAGE} For more information on this error, head to: "
    "https://ai.google.dev/gemini-api/docs/rate-limits. To monitor your current usage, head to: "
    "https://ai.dev/usage?tab=rate-limit. \n* Quota exceeded for metric: "
    "generativelanguage.googleapis.com/generate_content_free_tier_requests, limit: 50, "
    "model: gemini-2.5-pro\nPlease retry in 46.3s."
)


@pytest.mark.parametrize(
    ("event", "kind", "retryable"),
    [
        pytest.param(_error_event("UNAVAILABLE", "busy"), "overloaded", True, id="unavailable"),
        pytest.param(_error_event("INTERNAL", "oops"), "server_error", True, id="internal"),
        pytest.param(_error_event("DEADLINE_EXCEEDED", "slow"), "timeout", True, id="deadline"),
        pytest.param(
            _error_event("RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
            "rate_limited",
            True,
            id="resource-exhausted",
        ),
        pytest.param(
            _error_event("RESOURCE_EXHAUSTED", QUOTA_MESSAGE, "GenerateRequestsPerMinutePerProjectPerModel"),
            "rate_limited",
            True,
            id="per-minute-quota",
        ),
        pytest.param(
            _error_event("RESOURCE_EXHAUSTED", QUOTA_MESSAGE, "GenerateRequestsPerDayPerProjectPerModel"),
            "quota_exhausted",
            False,
            id="per-day-quota",
        ),
        pytest.param(
            fixture("gemini_quota_midstream.sse"), "quota_exhausted", False, id="fixture-free-tier-day"
        ),
        pytest.param(
            _error_event("RESOURCE_EXHAUSTED", FULL_QUOTA_MESSAGE, "GenerateRequestsPerDayPerProject"),
            "quota_exhausted",
            False,
            id="per-day-quota-full-message",
        ),
        pytest.param(
            _error_event("RESOURCE_EXHAUSTED", FULL_QUOTA_MESSAGE, "GenerateRequestsPerMinutePerProject"),
            "rate_limited",
            True,
            id="per-minute-quota-full-message",
        ),
    ],
)
def test_error_status_drives_retry(event: bytes, kind: str, retryable: bool) -> None:
    """The error's RPC status (and a quota's window) decides the retry, mid-stream."""
    decision = classify_completion(parse_stream("gemini", event))
    assert decision is not None
    assert (decision.kind, decision.retryable) == (kind, retryable)


def test_a_daily_quota_among_others_is_quota_exhausted() -> None:
    """A model without free-tier quota answers 429 naming every quota it is over (limit 0), per minute
    and per day: the daily one is used up for the day, so waiting a minute does not help."""
    violations = [
        {"quotaId": quota_id}
        for quota_id in (
            "GenerateContentInputTokensPerModelPerMinute-FreeTier",
            "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
            "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
        )
    ]
    error = {
        "code": 429,
        "message": FULL_QUOTA_MESSAGE,
        "status": "RESOURCE_EXHAUSTED",
        "details": [{"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": violations}],
    }
    body = orjson.dumps({"error": error})
    decision = classify_completion(parse_stream("gemini", b"data: " + body + b"\r\n\r\n"))
    assert decision is not None
    assert (decision.kind, decision.retryable) == ("quota_exhausted", False)
    parsed = GEMINI.parse_error_body(429, body)
    assert parsed is not None
    decision = classify_http(
        429, {}, now=None, error_type=parsed.type, error_code=parsed.code, error_message=parsed.message
    )
    assert (decision.kind, decision.retryable) == ("quota_exhausted", False)


@pytest.mark.parametrize(
    ("status", "body", "kind", "retryable"),
    [
        pytest.param(503, _error_event("UNAVAILABLE", "busy")[6:-4], "overloaded", True, id="503"),
        pytest.param(
            429,
            _error_event("RESOURCE_EXHAUSTED", QUOTA_MESSAGE, "GenerateRequestsPerDayPerProject")[6:-4],
            "quota_exhausted",
            False,
            id="429-daily-quota",
        ),
        pytest.param(
            429,
            b"[" + _error_event("RESOURCE_EXHAUSTED", QUOTA_MESSAGE, "PerMinutePerProject")[6:-4] + b"]",
            "rate_limited",
            True,
            id="429-array-per-minute",
        ),
        pytest.param(
            429,
            _error_event("RESOURCE_EXHAUSTED", FULL_QUOTA_MESSAGE, "GenerateRequestsPerDayPerProject")[6:-4],
            "quota_exhausted",
            False,
            id="429-daily-quota-full-message",
        ),
    ],
)
def test_http_error_bodies_are_classified_likewise(
    status: int, body: bytes, kind: str, retryable: bool
) -> None:
    """Gemini's HTTP error bodies (object, or the one-element array) parse to the same error."""
    error = GEMINI.parse_error_body(status, body)
    assert error is not None
    decision = classify_http(
        status, {}, now=None, error_type=error.type, error_code=error.code, error_message=error.message
    )
    assert (decision.kind, decision.retryable) == (kind, retryable)
    assert GEMINI.parse_error_body(502, b"<html>Bad gateway</html>") is None


def _retry_info_body(delay: object) -> bytes:
    details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}]
    error = {"code": 429, "message": "Resource has been exhausted.", "status": "RESOURCE_EXHAUSTED"}
    return orjson.dumps({"error": {**error, "details": details}})


@pytest.mark.parametrize(
    ("delay", "seconds"),
    [("23s", 23.0), ("1.5s", 1.5), ("0s", 0.0), ("-3s", None), ("soon", None), (7, None)],
)
def test_retry_info_sets_the_wait(delay: object, seconds: float | None) -> None:
    """RetryInfo.retryDelay (a protobuf Duration, "23s") is the wait Google asks for; nonsense is none."""
    error = GEMINI.parse_error_body(429, _retry_info_body(delay))
    assert error is not None
    assert error.retry_after == seconds
    decision = classify_http(
        429,
        {},
        now=None,
        error_type=error.type,
        error_message=error.message,
        error_retry_after=error.retry_after,
    )
    assert (decision.kind, decision.retry_after) == ("rate_limited", seconds)


def test_a_retry_after_header_wins_over_retry_info() -> None:
    """The HTTP header is the transport's word on the wait; the body's hint only fills in without one."""
    decision = classify_http(
        429, {"Retry-After": "2"}, now=None, error_type="RESOURCE_EXHAUSTED", error_retry_after=23.0
    )
    assert decision.retry_after == 2.0


def test_an_invalid_api_key_is_an_auth_error() -> None:
    """Google answers a wrong or expired API key with 400 INVALID_ARGUMENT, its ErrorInfo reason
    API_KEY_INVALID: an auth_error (not retried, and counted by the provider breaker, which stops a
    provider after 5 refusals in a row), not a client_error every unit of the run is sent to meet."""
    body = orjson.dumps(
        {
            "error": {
                "code": 400,
                "message": "API key not valid. Please pass a valid API key.",
                "status": "INVALID_ARGUMENT",
                "details": [
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "API_KEY_INVALID",
                        "domain": "googleapis.com",
                        "metadata": {"service": "generativelanguage.googleapis.com"},
                    },
                    {
                        "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                        "locale": "en-US",
                        "message": "API key not valid. Please pass a valid API key.",
                    },
                ],
            }
        }
    )
    error = GEMINI.parse_error_body(400, body)
    assert error is not None
    assert (error.type, error.code) == ("INVALID_ARGUMENT", "API_KEY_INVALID")
    decision = classify_http(
        400, {}, now=None, error_type=error.type, error_code=error.code, error_message=error.message
    )
    assert (decision.kind, decision.retryable) == ("auth_error", False)
    assert decision.kind in REFUSALS


def test_retry_info_mid_stream_sets_the_wait() -> None:
    """An error event carrying RetryInfo asks for the same wait as the HTTP body would."""
    completion = parse_stream("gemini", b"data: " + _retry_info_body("4s") + b"\r\n\r\n")
    decision = classify_completion(completion)
    assert decision is not None
    assert (decision.kind, decision.retryable, decision.retry_after) == ("rate_limited", True, 4.0)
    # The free-tier daily quota fixture carries RetryInfo too, but no wait makes it retryable.
    daily = classify_completion(parse("gemini_quota_midstream.sse"))
    assert daily is not None
    assert (daily.kind, daily.retryable) == ("quota_exhausted", False)


def test_prompt_blocked_is_complete_without_candidates() -> None:
    """A blocked prompt (promptFeedback.blockReason) ends the answer: no choices, feedback kept."""
    completion = parse("gemini_prompt_blocked.sse")
    assert completion.complete
    assert completion.choices == ()
    assert completion.extras["prompt_feedback"] == {"blockReason": "PROHIBITED_CONTENT"}


def test_bad_json_is_a_protocol_error() -> None:
    """An event that is not JSON is a protocol error, never an exception."""
    completion = parse_stream("gemini", b"data: {nope\r\n\r\n")
    assert completion.error is not None
    assert completion.error.type == "protocol_error"


# -- requests ---------------------------------------------------------------------------------------

CONVERSATION: tuple[dict[str, Any], ...] = (
    {"role": "system", "content": "Be brief."},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "Weather here?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            {"type": "image_url", "image_url": {"url": "https://example.org/sky.webp"}},
        ],
    },
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Oslo"}'}},
            {"id": "c2", "type": "function", "function": {"name": "clock", "arguments": "{}"}},
        ],
    },
    {"role": "tool", "tool_call_id": "c1", "content": '{"temp": 3}'},
    {"role": "tool", "tool_call_id": "c2", "content": "12:00"},
    {"role": "assistant", "content": "3 degrees at noon."},
    {"role": "user", "content": "Thanks"},
)
TOOL = {
    "type": "function",
    "function": {"name": "weather", "description": "Weather", "parameters": {"type": "object"}},
}


def test_request_url_key_and_body() -> None:
    """The URL has api_version and model, the key is in x-goog-api-key, params in generationConfig."""
    provider = ProviderSpec(
        name="g",
        dialect="gemini",
        base_url="https://generativelanguage.googleapis.com/",
        model="models/gemini-2.5-flash",
        api_version="v1beta",
        params={"temperature": 0.2, "max_tokens": 64, "stop": "END", "safetySettings": []},
    )
    case = CaseSpec(id="c", messages=({"role": "user", "content": "hi"},), system="sys", params={"n": 2})
    request = GEMINI.build_request(provider, case, api_key="AIza-secret")
    assert request.url == (
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    )
    assert request.headers["x-goog-api-key"] == "AIza-secret"
    assert "Authorization" not in request.headers
    assert orjson.loads(request.body) == {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "systemInstruction": {"parts": [{"text": "sys"}]},
        "safetySettings": [],
        "generationConfig": {
            "temperature": 0.2,
            "maxOutputTokens": 64,
            "stopSequences": ["END"],
            "candidateCount": 2,
        },
    }
    assert GEMINI.max_output_tokens({"generationConfig": {"maxOutputTokens": 9}}) == 9
    assert GEMINI.max_output_tokens({"max_tokens": 5}) == 5


def test_default_api_version_is_v1() -> None:
    """Without api_version the path says v1, what google-genai 3.x sends."""
    case = CaseSpec(id="c", messages=({"role": "user", "content": "hi"},))
    assert "/v1/models/gemini-2.5-flash:" in GEMINI.build_request(PROVIDER, case, api_key=None).url


def test_conversation_translation() -> None:
    """Roles user/model, functionCall / functionResponse parts, inlineData / fileData, systemInstruction."""
    case = CaseSpec(id="c", messages=CONVERSATION, tools=(TOOL,))
    body = orjson.loads(GEMINI.build_request(PROVIDER, case, api_key=None).body)
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {"name": "weather", "description": "Weather", "parameters": {"type": "object"}}
            ]
        }
    ]
    assert body["contents"] == [
        {
            "role": "user",
            "parts": [
                {"text": "Weather here?"},
                {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
                {"fileData": {"fileUri": "https://example.org/sky.webp", "mimeType": "image/webp"}},
            ],
        },
        {
            "role": "model",
            "parts": [
                {"functionCall": {"name": "weather", "args": {"city": "Oslo"}}},  # (2.5: unsigned)
                {"functionCall": {"name": "clock", "args": {}}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "weather", "response": {"temp": 3}}},
                {"functionResponse": {"name": "clock", "response": {"content": "12:00"}}},
            ],
        },
        {"role": "model", "parts": [{"text": "3 degrees at noon."}]},
        {"role": "user", "parts": [{"text": "Thanks"}]},
    ]


@pytest.mark.parametrize(
    ("model", "signed"),
    [
        ("gemini-3-pro-preview", True),
        ("models/gemini-3.1-flash", True),
        ("my-gateway-alias", True),  # (a model runner cannot date: Gemini 3 refuses it unsigned)
        ("gemini-2.5-flash", False),
        ("models/gemini-2.0-flash", False),
        ("gemini-1.5-pro", False),
    ],
)
def test_written_tool_calls_carry_the_placeholder_signature_from_gemini_3_on(
    model: str, signed: bool
) -> None:
    """Gemini 3 refuses a written (unsigned) call of the current turn: each step's first call carries
    Google's placeholder signature; the 1.x and 2.x models, which never asked for one, get none."""
    case = CaseSpec(id="c", messages=CONVERSATION, tools=(TOOL,))
    provider = dataclasses.replace(PROVIDER, model=model)
    body = orjson.loads(GEMINI.build_request(provider, case, api_key=None).body)
    first, second = body["contents"][1]["parts"]
    assert first.get("thoughtSignature") == ("skip_thought_signature_validator" if signed else None)
    assert "thoughtSignature" not in second


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        pytest.param("auto", {"mode": "AUTO"}, id="auto"),
        pytest.param("required", {"mode": "ANY"}, id="required"),
        pytest.param("none", {"mode": "NONE"}, id="none"),
        pytest.param(
            {"type": "function", "function": {"name": "weather"}},
            {"mode": "ANY", "allowedFunctionNames": ["weather"]},
            id="named-function",
        ),
    ],
)
def test_tool_choice_is_the_function_calling_config(choice: object, config: object) -> None:
    """Chat's tool_choice becomes toolConfig.functionCallingConfig (Google refuses an unknown field)."""
    case = CaseSpec(
        id="c", messages=({"role": "user", "content": "hi"},), tools=(TOOL,), params={"tool_choice": choice}
    )
    body = orjson.loads(GEMINI.build_request(PROVIDER, case, api_key=None).body)
    assert "tool_choice" not in body
    assert body["toolConfig"] == {"functionCallingConfig": config}


SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}}


@pytest.mark.parametrize(
    ("response_format", "config"),
    [
        pytest.param({"type": "json_object"}, {"responseMimeType": "application/json"}, id="json-object"),
        pytest.param(
            {"type": "json_schema", "json_schema": {"name": "city", "schema": SCHEMA, "strict": True}},
            {"responseMimeType": "application/json", "responseJsonSchema": SCHEMA},
            id="json-schema",
        ),
        pytest.param({"type": "text"}, {"responseMimeType": "text/plain"}, id="text"),
    ],
)
def test_response_format_is_the_response_mime_type(response_format: object, config: object) -> None:
    """Chat's response_format is generationConfig's responseMimeType (and responseJsonSchema)."""
    case = CaseSpec(
        id="c",
        messages=({"role": "user", "content": "hi"},),
        params={"response_format": response_format, "temperature": 0},
    )
    body = orjson.loads(GEMINI.build_request(PROVIDER, case, api_key=None).body)
    assert "response_format" not in body
    assert body["generationConfig"] == {"temperature": 0, **config}  # type: ignore[dict-item]


@pytest.mark.parametrize(
    ("params", "config"),
    [
        pytest.param(
            {"reasoning_effort": "medium"}, {"thinkingConfig": {"thinkingBudget": 8192}}, id="medium"
        ),
        pytest.param({"reasoning_effort": "none"}, {"thinkingConfig": {"thinkingBudget": 0}}, id="off"),
        pytest.param(
            {"reasoning_effort": "high", "generationConfig": {"thinkingConfig": {"includeThoughts": True}}},
            {"thinkingConfig": {"thinkingBudget": 24576, "includeThoughts": True}},
            id="beside-include-thoughts",
        ),
        pytest.param(
            {"generationConfig": {"thinkingConfig": {"thinkingLevel": "low"}}, "reasoning_effort": "high"},
            {"thinkingConfig": {"thinkingLevel": "low"}},
            id="level-written-wins",
        ),
    ],
)
def test_reasoning_effort_is_a_thinking_budget(params: dict[str, Any], config: object) -> None:
    """Chat's reasoning_effort is generationConfig.thinkingConfig.thinkingBudget, as Google's
    OpenAI-compatible endpoint maps it (1K / 8K / 24K tokens, none: off); an amount written out wins."""
    case = CaseSpec(id="c", messages=({"role": "user", "content": "hi"},), params=params)
    body = orjson.loads(GEMINI.build_request(PROVIDER, case, api_key=None).body)
    assert "reasoning_effort" not in body
    assert body["generationConfig"] == config


def _calls(*ids: str | None) -> dict[str, Any]:
    """An assistant turn calling ``f`` once per id (None: a call without an id)."""
    calls = [{"id": i, "type": "function", "function": {"name": "f", "arguments": "{}"}} for i in ids]
    return {"role": "assistant", "content": None, "tool_calls": calls}


def _result(call_id: str) -> dict[str, Any]:
    """A tool turn answering ``call_id``."""
    return {"role": "tool", "tool_call_id": call_id, "content": "r"}


@pytest.mark.parametrize(
    ("messages", "what"),
    [
        pytest.param(({"role": "developer", "content": "x"},), "role 'developer'", id="role"),
        pytest.param(
            ({"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]},),
            "type 'input_audio'",
            id="audio-part",
        ),
        pytest.param(
            ({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}]},),
            "scheme 'ftp'",
            id="ftp-image",
        ),
        pytest.param(
            ({"role": "user", "content": "q"}, {"role": "tool", "tool_call_id": "zz", "content": "r"}),
            "answers no tool call of the assistant turn before",
            id="orphan-tool-result",
        ),
        pytest.param(
            (
                {"role": "user", "content": "q"},
                {
                    "role": "assistant",
                    "tool_calls": [{"id": "a", "function": {"name": "f", "arguments": "[1]"}}],
                },
            ),
            "not a JSON object",
            id="array-arguments",
        ),
        pytest.param(({"role": "system", "content": "only"},), "without a user message", id="no-turns"),
        pytest.param(
            (
                {"role": "user", "content": "q"},
                {
                    "role": "system",
                    "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}],
                },
            ),
            "non-text content in a system message",
            id="system-image",
        ),
        pytest.param(
            ({"role": "user", "content": "q"}, _calls("a"), {"role": "user", "content": "next"}),
            "tool calls without results: a",
            id="unanswered-call",
        ),
        pytest.param(
            (
                {"role": "user", "content": "q"},
                _calls("a", "b"),
                _result("a"),
                {"role": "user", "content": "n"},
            ),
            "tool calls without results: b",
            id="half-answered",
        ),
        pytest.param(
            (
                {"role": "user", "content": "q"},
                _calls("a"),
                _result("a"),
                {"role": "assistant", "content": "ok"},
                {"role": "user", "content": "more"},
                _result("a"),
            ),
            "answers no tool call of the assistant turn before",
            id="answers-an-older-turn",
        ),
        pytest.param(
            ({"role": "user", "content": "q"}, _calls("a"), _result("a"), _result("a")),
            "answers no tool call of the assistant turn before",
            id="answered-twice",
        ),
        pytest.param(
            (_calls("a"), _result("a")),
            "a tool-calling assistant turn with no user turn before it",
            id="calls-first",
        ),
        pytest.param(
            (
                {"role": "user", "content": "q"},
                _calls("a"),
                {
                    "role": "tool",
                    "tool_call_id": "a",
                    "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}],
                },
            ),
            "non-text content in a tool message",
            id="tool-image",
        ),
        pytest.param(
            ({"role": "user", "content": "q"}, _calls(None)),
            "a tool call without an id",
            id="call-without-id",
        ),
    ],
)
def test_what_gemini_cannot_express_is_refused(messages: tuple[dict[str, Any], ...], what: str) -> None:
    """check_messages raises ConfigError naming the case and the dialect, with a fix."""
    with pytest.raises(ConfigError, match=what) as raised:
        GEMINI.check_messages(CaseSpec(id="conv-7", messages=messages))
    assert "case 'conv-7'" in str(raised.value)
    assert (raised.value.key or "").startswith("messages")
    assert "gemini" in str(raised.value)
    assert raised.value.fix


def test_load_refuses_a_case_the_dialect_cannot_express(tmp_path: Path) -> None:
    """At load: the error names the file, the case's key and line, the case, the provider and the dialect."""
    job = tmp_path / "job.toml"
    job.write_text(
        '[[providers]]\nname = "gem"\ndialect = "gemini"\nmodel = "gemini-2.5-flash"\napi_key_env = "K"\n\n'
        '[[providers]]\nname = "oa"\ndialect = "openai-chat"\nbase_url = "https://api.openai.com/v1"\n'
        'model = "m"\n\n'
        '[[cases]]\nid = "fine"\nprompt = "hi"\n\n'
        '[[cases]]\nid = "odd"\nmessages = [{role = "developer", content = "x"}]\n'
    )
    with pytest.raises(ConfigError) as raised:
        load_job(job)
    text = str(raised.value)
    assert "case 'odd'" in text
    assert "gemini" in text
    assert "'gem'" in text
    assert (raised.value.key or "").startswith("cases[1]")
    # Restricted to the provider whose dialect speaks it, the same case loads.
    job.write_text(job.read_text() + 'providers = ["oa"]\n')
    assert [c.id for c in load_job(job).cases] == ["fine", "odd"]


def test_provider_defaults_and_api_version(tmp_path: Path) -> None:
    """gemini's base URL defaults to Google's; api_version is read, checked, and gemini's only."""
    job = tmp_path / "job.toml"
    head = '[[providers]]\nname = "gem"\ndialect = "gemini"\nmodel = "gemini-2.5-flash"\n'
    cases = '\n[[cases]]\nid = "a"\nprompt = "hi"\n'
    job.write_text(head + 'api_version = "v1beta"\n' + cases)
    provider = load_job(job).providers[0]
    assert (provider.base_url, provider.api_version) == (
        "https://generativelanguage.googleapis.com",
        "v1beta",
    )
    job.write_text(head + 'api_version = "v1/../x"\n' + cases)
    with pytest.raises(ConfigError, match="not an API version"):
        load_job(job)
    job.write_text(
        head.replace('"gemini"', '"openai-chat"')
        + 'base_url = "https://x.org/v1"\napi_version = "v1"\n'
        + cases
    )
    with pytest.raises(ConfigError, match="has no api_version"):
        load_job(job)


def test_citations_are_kept_as_extras() -> None:
    """citationMetadata on a candidate is kept as sent."""
    citations = {"citationSources": [{"uri": "https://example.org", "startIndex": 0, "endIndex": 4}]}
    event = {
        "candidates": [
            {
                "content": {"parts": [{"text": "x"}]},
                "index": 0,
                "finishReason": "STOP",
                "citationMetadata": citations,
            }
        ]
    }
    completion = parse_stream("gemini", b"data: " + orjson.dumps(event) + b"\r\n\r\n")
    assert completion.extras["citationMetadata"] == citations


def test_request_hash_names_the_api_version() -> None:
    """--reuse: v1 and v1beta are different requests; without api_version the hash is as before."""
    case = CaseSpec(id="c", messages=({"role": "user", "content": "hi"},))
    plain = request_hash(PROVIDER, case)
    beta = request_hash(dataclasses.replace(PROVIDER, api_version="v1beta"), case)
    assert plain != beta
    assert plain == request_hash(dataclasses.replace(PROVIDER, api_version=None), case)


def test_batch_jsonl_refuses_what_the_provider_cannot_express(tmp_path: Path) -> None:
    """`runner run batch.jsonl --provider dialect=gemini,...`: the same load-time refusal, naming the file."""
    batch = tmp_path / "batch.jsonl"
    line = {
        "custom_id": "odd",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "m", "messages": [{"role": "developer", "content": "x"}]},
    }
    batch.write_bytes(orjson.dumps(line) + b"\n")
    with pytest.raises(ConfigError, match="case 'odd': the gemini dialect cannot express") as raised:
        load_batch_jsonl(batch, provider=PROVIDER)
    assert raised.value.path == str(batch)
    openai = ProviderSpec(name="o", dialect="openai-chat", base_url="https://api.openai.com/v1", model="m")
    assert [case.id for case in load_batch_jsonl(batch, provider=openai).cases] == ["odd"]
