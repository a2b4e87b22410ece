"""openai-responses: every edge of the typed event stream, request building and conversation translation."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from runner.errors import ConfigError
from runner.job.load import parse_job
from runner.model import PROTOCOL_ERROR
from runner.run.retry import classify_completion, classify_http
from runner.spec import CaseSpec, ProviderSpec
from runner.wire.dialects import get_dialect
from runner.wire.dialects.openai_responses import OpenAIResponsesDialect
from runner.wire.replay import parse_stream
from runner.wire.sse import decode_all
from tests.streams import body, fixture

DIALECT = "openai-responses"
PROVIDER = ProviderSpec(name="p", dialect=DIALECT, base_url="https://api.openai.com/v1/", model="gpt-4.1")
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather by city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def parse(name: str) -> Any:
    return parse_stream(DIALECT, fixture(name))


def responses(*payloads: Any) -> Any:
    return parse_stream(DIALECT, body(*payloads))


def test_text_usage_cached_and_unknown_events() -> None:
    """Output-text deltas in order; unknown events and a keep-alive ignored; usage with cached tokens."""
    completion = parse("openai_responses_text.sse")
    assert completion.complete
    assert completion.error is None
    assert completion.id == "resp_67ccd2bed1ec8190b14f964abc054267"
    assert completion.model == "gpt-4.1-2025-04-14"
    (choice,) = completion.choices
    assert choice.text == "Hi there! How can I help?"
    assert (choice.finish_reason, choice.raw_finish_reason) == ("stop", "completed")
    usage = completion.usage
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (1520, 21, 1541)
    assert (usage.cached_input_tokens, usage.reasoning_tokens) == (1024, 0)


def test_interleaved_function_calls_and_reasoning_summary() -> None:
    """Calls rebuilt per output item though their deltas interleave; a call with only .done arguments."""
    completion = parse("openai_responses_tools_interleaved.sse")
    (choice,) = completion.choices
    calls = [(c.id, c.name, c.arguments) for c in choice.tool_calls]
    assert calls == [
        ("call_Tokyo7x", "get_weather", '{"city":"Tokyo","days":3}'),
        ("call_Paris9y", "get_weather", '{"city":"Paris","days":1}'),
        ("call_Lima3z", "get_time", '{"city":"Lima"}'),
    ]
    assert (choice.finish_reason, choice.raw_finish_reason) == ("tool_calls", "completed")
    assert choice.reasoning == "**Checking** the weather in two cities.\n\nBoth calls can run at once."
    assert choice.text == ""
    assert completion.usage is not None
    assert completion.usage.reasoning_tokens == 128


def test_refusal() -> None:
    """refusal deltas rebuild the refusal, not the text."""
    (choice,) = parse("openai_responses_refusal.sse").choices
    assert choice.refusal == "I'm sorry, I can't help with that."
    assert choice.text == ""


@pytest.mark.parametrize(
    ("name", "finish", "raw"),
    [
        ("openai_responses_max_output_tokens.sse", "length", "max_output_tokens"),
        ("openai_responses_content_filter.sse", "content_filter", "content_filter"),
    ],
)
def test_incomplete_reasons(name: str, finish: str, raw: str) -> None:
    """response.incomplete is terminal; its reason maps to length or content_filter."""
    completion = parse(name)
    assert completion.complete
    assert completion.error is None
    (choice,) = completion.choices
    assert (choice.finish_reason, choice.raw_finish_reason) == (finish, raw)


def test_failed_keeps_the_response_error() -> None:
    """response.failed is terminal (complete) with finish error and the response's error object."""
    completion = parse("openai_responses_failed.sse")
    assert completion.complete
    assert completion.error is not None
    assert (completion.error.code, completion.error.message) == (
        "server_error",
        "The model produced invalid content.",
    )
    assert completion.choices[0].finish_reason == "error"
    assert completion.choices[0].text == "Partial"


def test_error_event_then_eof_is_an_incomplete_error() -> None:
    """An error event sets the error; without a terminal event the stream is not complete."""
    completion = parse("openai_responses_error_event.sse")
    assert not completion.complete
    assert completion.error is not None
    assert completion.error.code == "rate_limit_exceeded"
    assert completion.choices[0].text == "Partial answer"
    assert classify_completion(completion) is not None


def test_cut_before_terminal_is_not_complete() -> None:
    """A stream that stops before a terminal event keeps its text but is not complete."""
    completion = parse("openai_responses_cut.sse")
    assert not completion.complete
    assert completion.error is None
    assert completion.choices[0].text == "Hello wor"
    decision = classify_completion(completion)
    assert decision is not None
    assert decision.kind == "early_close"


def test_reasoning_text_without_event_lines_and_done_fallback() -> None:
    """No `event:` lines (the type field alone), reasoning_text deltas, a message given only in .done."""
    completion = parse("openai_responses_reasoning_text.sse")
    (choice,) = completion.choices
    assert choice.reasoning == "The user greets; reply briefly."
    assert choice.text == "Hello!"
    assert completion.model == "openai/gpt-oss-20b"
    assert completion.usage is not None
    assert completion.usage.reasoning_tokens == 7


def test_event_name_dispatches_when_the_data_has_no_type() -> None:
    """A payload without `type` is read by its `event:` name; sequence_number is not needed."""
    completion = responses(
        ("response.output_text.delta", {"output_index": 0, "content_index": 0, "delta": "a"}),
        ("response.output_text.delta", {"output_index": 0, "content_index": 1, "delta": "b"}),
        ("response.completed", {"response": {"id": "r", "status": "completed", "output": []}}),
    )
    assert completion.complete
    assert completion.choices[0].text == "ab"


def test_item_done_fills_what_no_delta_gave() -> None:
    """output_item.done and the terminal response's output give text and arguments no delta carried."""
    call = {"type": "function_call", "call_id": "c1", "name": "f", "arguments": '{"a":1}'}
    message = {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "hi"}]}
    completion = responses(
        {"type": "response.output_item.done", "output_index": 0, "item": message},
        {"type": "response.completed", "response": {"status": "completed", "output": [message, call]}},
    )
    (choice,) = completion.choices
    assert choice.text == "hi"
    assert [(c.id, c.name, c.arguments) for c in choice.tool_calls] == [("c1", "f", '{"a":1}')]
    assert choice.finish_reason == "tool_calls"


def test_call_id_from_the_finished_item_when_the_added_one_has_none() -> None:
    """A call's id is its call_id: the item id (fc_...) stands in only until the finished item names it."""
    added = {"type": "function_call", "id": "fc_1", "name": "f", "arguments": ""}
    done = {**added, "call_id": "call_1", "arguments": "{}"}
    completion = responses(
        {"type": "response.output_item.added", "output_index": 0, "item": added},
        {"type": "response.function_call_arguments.delta", "output_index": 0, "delta": "{}"},
        {"type": "response.output_item.done", "output_index": 0, "item": done},
        {"type": "response.completed", "response": {"status": "completed", "output": [done]}},
    )
    (choice,) = completion.choices
    assert [(c.id, c.name, c.arguments) for c in choice.tool_calls] == [("call_1", "f", "{}")]
    cut = responses(
        {"type": "response.output_item.added", "output_index": 0, "item": added},
        {"type": "response.function_call_arguments.delta", "output_index": 0, "delta": "{}"},
    )
    assert [c.id for c in cut.choices[0].tool_calls] == ["fc_1"]


def test_usage_with_cache_writes() -> None:
    """input_tokens_details.cache_write_tokens is kept, beside cached reads, both inside input_tokens."""
    usage = {
        "input_tokens": 2000,
        "input_tokens_details": {"cached_tokens": 1500, "cache_write_tokens": 300},
        "output_tokens": 10,
        "total_tokens": 2010,
    }
    terminal = {"type": "response.completed", "response": {"status": "completed", "usage": usage}}
    completion = responses(terminal)
    assert completion.usage is not None
    assert (completion.usage.cached_input_tokens, completion.usage.cache_write_tokens) == (1500, 300)
    assert completion.usage.reasoning_tokens is None


def test_events_after_the_terminal_one_are_ignored_and_done_sentinel() -> None:
    """Nothing after response.completed counts; a trailing [DONE] is harmless."""
    completion = responses(
        {"type": "response.output_text.delta", "output_index": 0, "delta": "x"},
        {"type": "response.completed", "response": {"status": "completed"}},
        {"type": "response.output_text.delta", "output_index": 0, "delta": "late"},
        "[DONE]",
    )
    assert completion.choices[0].text == "x"
    assert completion.complete


def test_done_sentinel_alone_is_not_complete() -> None:
    """[DONE] without a terminal event ends reading but the answer is not complete."""
    completion = responses({"type": "response.output_text.delta", "output_index": 0, "delta": "x"}, "[DONE]")
    assert not completion.complete


@pytest.mark.parametrize("payload", ["{not json", "[1, 2]"])
def test_bad_payload_is_a_protocol_error(payload: str) -> None:
    """A payload that is not a JSON object is a protocol error, never an exception."""
    completion = responses({"type": "response.created", "response": {"id": "r"}}, payload)
    assert completion.error is not None
    assert completion.error.type == PROTOCOL_ERROR
    assert not completion.complete


def test_accumulator_signals() -> None:
    """has_reasoning / has_answer flip at the first token; tokens count text, reasoning and call deltas."""
    accumulator = get_dialect(DIALECT).new_accumulator()
    for event in decode_all(fixture("openai_responses_tools_interleaved.sse")):
        accumulator.feed(event)
    assert accumulator.is_done
    assert accumulator.has_reasoning
    assert accumulator.has_answer
    # 4 summary deltas, 3 calls opened, 5 + 7 argument deltas (25 characters in 5s and 4s)
    assert accumulator.tokens == 4 + 3 + 5 + 7


# -- errors: quota and auth classification -----------------------------------------------------


def test_failed_with_insufficient_quota_is_quota_exhausted() -> None:
    """A response.failed whose error code says the quota is spent is not retried."""
    completion = responses(
        {
            "type": "response.failed",
            "response": {"status": "failed", "error": {"code": "insufficient_quota", "message": "x"}},
        }
    )
    decision = classify_completion(completion)
    assert decision is not None
    assert (decision.kind, decision.retryable) == ("quota_exhausted", False)


def test_error_event_with_quota_message_is_quota_exhausted() -> None:
    """The error event's code and message are read as any provider error."""
    message = "You exceeded your current quota, please check your plan and billing details."
    completion = responses({"type": "error", "code": "insufficient_quota", "message": message, "param": None})
    decision = classify_completion(completion)
    assert decision is not None
    assert decision.kind == "quota_exhausted"


@pytest.mark.parametrize(
    "stream",
    [
        pytest.param(fixture("openai_responses_error_event.sse"), id="error-event"),
        pytest.param(
            body(
                {
                    "type": "response.failed",
                    "sequence_number": 3,
                    "response": {
                        "id": "resp_1",
                        "status": "failed",
                        "error": {
                            "code": "rate_limit_exceeded",
                            "message": "Rate limit reached for gpt-4.1 on tokens per min (TPM).",
                        },
                    },
                }
            ),
            id="response-failed",
        ),
    ],
)
def test_in_band_rate_limit_is_rate_limited(stream: bytes) -> None:
    """A rate limit that arrives after the 200 (an error event, or response.failed with the
    ResponseError code rate_limit_exceeded) counts as a 429 would (PROTOCOLS.md C18): rate_limited,
    retried, and the provider's concurrency backs off, as README's limits promise for a 429."""
    decision = classify_completion(parse_stream(DIALECT, stream))
    assert decision is not None
    assert (decision.kind, decision.retryable) == ("rate_limited", True)


@pytest.mark.parametrize(
    ("code", "kind", "retried"),
    [
        ("invalid_prompt", "client_error", False),
        ("image_too_large", "client_error", False),
        ("invalid_base64_image", "client_error", False),
        ("bio_policy", "client_error", False),
        ("failed_to_download_image", "stream_error", True),  # (the image's host may answer next time)
        ("server_error", "stream_error", True),
    ],
)
def test_a_failed_response_that_refuses_the_request_is_not_retried(
    code: str, kind: str, retried: bool
) -> None:
    """response.failed for the prompt or an image the API cannot read or will not answer: the same
    request gets the same answer, so it is a client_error, not retried (a retry pays for the input
    again); a failure of the service is still retried."""
    failed = {"id": "resp_1", "status": "failed", "error": {"code": code, "message": "refused"}}
    completion = parse_stream(DIALECT, body({"type": "response.failed", "response": failed}))
    decision = classify_completion(completion)
    assert decision is not None
    assert (decision.kind, decision.retryable) == (kind, retried)


@pytest.mark.parametrize(
    ("status", "error", "kind"),
    [
        (
            429,
            {"type": "insufficient_quota", "code": "insufficient_quota", "message": "quota"},
            "quota_exhausted",
        ),
        (429, {"type": "requests", "code": "rate_limit_exceeded", "message": "slow down"}, "rate_limited"),
        (
            401,
            {"type": "invalid_request_error", "code": "invalid_api_key", "message": "bad key"},
            "auth_error",
        ),
    ],
)
def test_http_error_bodies_classify(status: int, error: dict[str, Any], kind: str) -> None:
    """The Responses API's HTTP error bodies parse and classify like chat's."""
    parsed = get_dialect(DIALECT).parse_error_body(status, orjson.dumps({"error": {**error, "param": None}}))
    assert parsed is not None
    decision = classify_http(
        status,
        {},
        now=datetime.now(UTC),
        error_type=parsed.type,
        error_code=parsed.code,
        error_message=parsed.message,
    )
    assert decision.kind == kind


# -- requests ----------------------------------------------------------------------------------


CONVERSATION: tuple[dict[str, Any], ...] = (
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is in this picture, and the weather there?"},
            {
                "type": "image_url",
                "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"},
            },
        ],
    },
    {
        "role": "assistant",
        "content": "Let me check.",
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "12 C, rain"},
    {"role": "user", "content": "Thanks!"},
)


def test_request_translates_the_conversation() -> None:
    """Messages become input items; system -> instructions; flat tools, strict false; max_output_tokens."""
    case = CaseSpec(
        id="c", messages=CONVERSATION, system="Be brief.", tools=(WEATHER,), params={"max_tokens": 50}
    )
    request = get_dialect(DIALECT).build_request(PROVIDER, case, api_key="sk-x")
    assert request.url == "https://api.openai.com/v1/responses"
    assert request.headers["Authorization"] == "Bearer sk-x"
    sent = json.loads(request.body)
    assert sent["stream"] is True
    assert sent["model"] == "gpt-4.1"
    assert sent["instructions"] == "Be brief."
    assert sent["max_output_tokens"] == 50
    assert "max_tokens" not in sent
    assert "messages" not in sent
    assert sent["input"] == [
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "What is in this picture, and the weather there?"},
                {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"},
            ],
        },
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Let me check.", "annotations": []}],
        },
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city":"Oslo"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "12 C, rain"},
        {"type": "message", "role": "user", "content": "Thanks!"},
    ]
    assert sent["tools"] == [
        {
            "type": "function",
            "name": "get_weather",
            "description": "Weather by city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            "strict": False,
        }
    ]
    OpenAIResponsesDialect().check_messages(case)  # (expressible: no load error)


@pytest.mark.parametrize(
    ("messages", "problem"),
    [
        (
            ({"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "x"}}]},),
            "'input_audio' part",
        ),
        (({"role": "tool", "content": "x"},), "tool_call_id"),
        (({"role": "function", "name": "f", "content": "x"},), "role 'function'"),
    ],
)
def test_check_messages_names_what_cannot_go(messages: tuple[dict[str, Any], ...], problem: str) -> None:
    """What the Responses API cannot express is named, before any request."""
    with pytest.raises(ConfigError, match=problem):
        OpenAIResponsesDialect().check_messages(CaseSpec(id="c", messages=messages))


def test_check_messages_keys_the_part_at_fault() -> None:
    """check_messages (the load check's shape on main) names the case, the dialect and the part's key."""
    audio = {"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "x"}}]}
    dialect = OpenAIResponsesDialect()
    with pytest.raises(ConfigError) as caught:
        dialect.check_messages(CaseSpec(id="c", messages=({"role": "user", "content": "hi"}, audio)))
    assert caught.value.key == "messages[1].content[0]"
    assert "'c'" in str(caught.value)
    assert DIALECT in str(caught.value)
    assert dialect.param_problem("n", 2) is not None  # (the loader's: tests/job/test_expressible.py)
    dialect.check_messages(CaseSpec(id="c", messages=CONVERSATION))


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        pytest.param("auto", "auto", id="auto"),
        pytest.param("required", "required", id="required"),
        pytest.param("none", "none", id="none"),
        pytest.param(
            {"type": "function", "function": {"name": "get_weather"}},
            {"type": "function", "name": "get_weather"},
            id="named-function",
        ),
    ],
)
def test_tool_choice_translated(choice: object, expected: object) -> None:
    """Chat's tool_choice in the Responses shape: a named function is flat, as its tools are."""
    case = CaseSpec(
        id="c",
        messages=({"role": "user", "content": "hi"},),
        tools=(WEATHER,),
        params={"tool_choice": choice},
    )
    sent = json.loads(get_dialect(DIALECT).build_request(PROVIDER, case, api_key=None).body)
    assert sent["tool_choice"] == expected


SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


@pytest.mark.parametrize(
    ("response_format", "text_format"),
    [
        pytest.param({"type": "json_object"}, {"type": "json_object"}, id="json-object"),
        pytest.param(
            {"type": "json_schema", "json_schema": {"name": "city", "schema": SCHEMA, "strict": True}},
            {"type": "json_schema", "name": "city", "schema": SCHEMA, "strict": True},
            id="json-schema",
        ),
        pytest.param({"type": "text"}, {"type": "text"}, id="text"),
    ],
)
def test_response_format_is_text_format(response_format: object, text_format: object) -> None:
    """Chat's response_format is text.format in the Responses API (which refuses response_format)."""
    case = CaseSpec(
        id="c",
        messages=({"role": "user", "content": "hi"},),
        params={"response_format": response_format, "text": {"verbosity": "low"}},
    )
    sent = json.loads(get_dialect(DIALECT).build_request(PROVIDER, case, api_key=None).body)
    assert "response_format" not in sent
    assert sent["text"] == {"verbosity": "low", "format": text_format}


def test_reasoning_effort_is_reasoning_effort_in_its_object() -> None:
    """Chat's reasoning_effort is reasoning.effort in the Responses API (which refuses the flat name)."""
    case = CaseSpec(
        id="c",
        messages=({"role": "user", "content": "hi"},),
        params={"reasoning_effort": "low", "reasoning": {"summary": "auto"}},
    )
    sent = json.loads(get_dialect(DIALECT).build_request(PROVIDER, case, api_key=None).body)
    assert "reasoning_effort" not in sent
    assert sent["reasoning"] == {"effort": "low", "summary": "auto"}


@pytest.mark.parametrize(
    ("url", "what"),
    [
        pytest.param("ftp://x.test/a.png", "an image URL of scheme 'ftp'", id="ftp"),
        pytest.param("data:image/png,AAAA", "a data: URL image that is not base64", id="not-base64"),
        pytest.param("data:image/bmp;base64,AAAA", "an image of type 'image/bmp'", id="bmp"),
        pytest.param("data:;base64,AAAA", "an image of type None", id="no-type"),
    ],
)
def test_images_the_api_cannot_read_are_load_errors(url: str, what: str) -> None:
    """input_image takes an http(s) URL or a base64 data: URL of PNG, JPEG, WEBP or GIF."""
    image = {"type": "image_url", "image_url": {"url": url}}
    message = {"role": "user", "content": [{"type": "text", "text": "what is it?"}, image]}
    with pytest.raises(ConfigError, match=what) as caught:
        OpenAIResponsesDialect().check_messages(CaseSpec(id="c", messages=(message,)))
    assert caught.value.key == "messages[0].content[1]"


def _calls(*ids: str) -> dict[str, Any]:
    """An assistant turn calling ``f`` once per id."""
    calls = [{"id": i, "type": "function", "function": {"name": "f", "arguments": "{}"}} for i in ids]
    return {"role": "assistant", "content": None, "tool_calls": calls}


@pytest.mark.parametrize(
    ("messages", "key", "what"),
    [
        pytest.param(
            ({"role": "user", "content": "q"}, {"role": "tool", "tool_call_id": "zz", "content": "r"}),
            "messages[1].tool_call_id",
            "no tool call 'zz' before it",
            id="orphan-result",
        ),
        pytest.param(
            ({"role": "user", "content": "q"}, _calls("a"), {"role": "user", "content": "next"}),
            "messages[1].tool_calls[0]",
            "tool call 'a' has no tool result",
            id="unanswered-call",
        ),
        pytest.param(
            (
                {"role": "user", "content": "q"},
                _calls("a", "b"),
                {"role": "tool", "tool_call_id": "a", "content": "r"},
            ),
            "messages[1].tool_calls[1]",
            "tool call 'b' has no tool result",
            id="half-answered",
        ),
        pytest.param(
            (
                {"role": "user", "content": "q"},
                _calls("a"),
                {"role": "tool", "tool_call_id": "a", "content": "r"},
                _calls("b", "c"),
                {"role": "tool", "tool_call_id": "b", "content": "r"},
            ),
            "messages[3].tool_calls[1]",
            "tool call 'c' has no tool result",
            id="second-turn-half-answered",
        ),
    ],
)
def test_unpaired_tool_turns_are_load_errors(
    messages: tuple[dict[str, Any], ...], key: str, what: str
) -> None:
    """An output needs its function_call and a function_call its output, or the API answers 400."""
    case = CaseSpec(id="c", messages=messages)
    with pytest.raises(ConfigError, match=what) as caught:
        OpenAIResponsesDialect().check_messages(case)
    assert caught.value.key == key
    assert DIALECT in str(caught.value)


JOB = """
[[providers]]
name = "resp"
dialect = "openai-responses"
base_url = "https://api.openai.com/v1"
model = "gpt-4.1"

[[providers]]
name = "chat"
dialect = "openai-chat"
base_url = "https://api.openai.com/v1"
model = "gpt-4.1"

[[cases]]
id = "audio"
messages = [{role = "user", content = [{type = "input_audio", input_audio = {data = "AAA", format = "wav"}}]}]
"""


def test_job_load_fails_naming_the_case_and_dialect() -> None:
    """A case a dialect cannot express is a load error naming case, provider, dialect and place."""
    with pytest.raises(ConfigError) as caught:
        parse_job(JOB, path="job.toml")
    message = str(caught.value)
    assert "'audio'" in message
    assert "openai-responses" in message
    assert "'resp'" in message
    assert caught.value.line is not None


def test_job_load_passes_when_the_case_skips_that_provider() -> None:
    """The same case limited to the chat provider loads."""
    job = parse_job(JOB + 'providers = ["chat"]\n', path="job.toml")
    assert job.cases[0].id == "audio"


RESPONSES_STOP_JOB = """
[defaults.params]
temperature = 0
{defaults}
[[providers]]
name = "resp"
dialect = "openai-responses"
base_url = "https://api.openai.com/v1"
model = "gpt-4.1"
{own}
[[cases]]
id = "a"
prompt = "hi"
"""


@pytest.mark.parametrize("in_defaults", [pytest.param(False, id="own"), pytest.param(True, id="defaults")])
def test_a_provider_param_the_api_lacks_is_a_load_error(in_defaults: bool) -> None:
    """stop in a Responses provider's params (its own or the defaults') fails at load, not per unit."""
    stop = 'stop = ["END"]\n'
    own = "" if in_defaults else "[providers.params]\n" + stop
    text = RESPONSES_STOP_JOB.format(defaults=stop if in_defaults else "", own=own)
    with pytest.raises(ConfigError) as caught:
        parse_job(text, path="job.toml")
    # (a param written in the defaults is pointed at there, naming the provider)
    assert caught.value.key == ("defaults.params.stop" if in_defaults else "providers[0].params.stop")
    assert not in_defaults or "provider 'resp'" in str(caught.value)
    assert "openai-responses" in str(caught.value)
    assert "'stop'" in str(caught.value)
