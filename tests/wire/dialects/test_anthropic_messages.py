"""Tests of the anthropic-messages dialect: seed fixtures and PROTOCOLS.md edge cases 30-36."""

from __future__ import annotations

import orjson
import pytest

from runner.model import PROTOCOL_ERROR, Completion
from runner.pricing import compute_cost
from runner.run.retry import classify_completion
from runner.spec import CaseSpec, Price, ProviderSpec
from runner.wire.dialects import get_dialect
from runner.wire.replay import parse_stream
from tests.streams import body, fixture

START = (
    "message_start",
    {
        "type": "message_start",
        "message": {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": "claude",
            "usage": {
                "input_tokens": 10,
                "cache_creation_input_tokens": 20,
                "cache_read_input_tokens": 30,
                "output_tokens": 2,
            },
        },
    },
)
TEXT0 = (
    "content_block_start",
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
)
STOP = ("message_stop", {"type": "message_stop"})


def text_delta(text: str, index: int = 0) -> tuple[str, dict[str, object]]:
    """A text_delta event for block ``index``."""
    return (
        "content_block_delta",
        {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}},
    )


def message_delta(stop: str | None = "end_turn", **usage: object) -> tuple[str, dict[str, object]]:
    """A message_delta event with a stop reason and usage fields."""
    return ("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop}, "usage": usage})


def anthropic(*payloads: object) -> Completion:
    """Parse payloads as an anthropic-messages stream."""
    return parse_stream("anthropic-messages", body(*payloads))


def test_melious_messages_seed() -> None:
    """Melious' Messages-shape stream rebuilds text, stop reason and usage, ignoring the ping."""
    completion = parse_stream("anthropic-messages", fixture("melious_messages.sse"))
    assert completion.complete
    assert completion.id == "msg_mel1"
    assert completion.choices[0].text == "Hamburg harbor, grey gulls\nwind"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.input_tokens, completion.usage.output_tokens) == (14, 12)


def test_minimal_stream_from_protocols() -> None:
    """The minimal valid stream of PROTOCOLS.md 4.6: input 10 from start, output 5 replacing 1."""
    completion = parse_stream("anthropic-messages", fixture("anthropic_minimal.sse"))
    assert completion.choices[0].text == "Hi"
    assert completion.usage is not None
    assert (completion.usage.input_tokens, completion.usage.output_tokens, completion.usage.total_tokens) == (
        10,
        5,
        15,
    )


def test_usage_overwrites_never_adds() -> None:
    """Case 30: input counts sum the three kinds; message_delta overwrites non-null fields only."""
    completion = anthropic(
        START,
        TEXT0,
        text_delta("x"),
        message_delta(output_tokens=50, input_tokens=12, cache_read_input_tokens=None),
        STOP,
    )
    usage = completion.usage
    assert usage is not None
    assert usage.input_tokens == 12 + 20 + 30
    assert (usage.cached_input_tokens, usage.cache_write_tokens, usage.output_tokens) == (30, 20, 50)
    assert usage.raw["cache_read_input_tokens"] == 30


def test_early_output_tokens_are_replaced() -> None:
    """Case 31: message_start's early output_tokens is not the final count."""
    usage = anthropic(START, TEXT0, text_delta("x"), message_delta(output_tokens=77), STOP).usage
    assert usage is not None
    assert usage.output_tokens == 77


def test_thinking_tokens_are_the_reasoning_tokens() -> None:
    """The Messages API breaks output_tokens down in output_tokens_details.thinking_tokens (the
    anthropic SDK's OutputTokensDetails), inside output_tokens: they are the reasoning tokens, and the
    cost still counts output_tokens once."""
    thinking = (
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}},
    )
    completion = anthropic(
        START,
        thinking,
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        message_delta(output_tokens=120, output_tokens_details={"thinking_tokens": 80}),
        STOP,
    )
    usage = completion.usage
    assert usage is not None
    assert (usage.output_tokens, usage.reasoning_tokens) == (120, 80)
    cost = compute_cost(usage, Price(input=3.0, output=15.0, cached_input=0.3, cache_write=3.75))
    assert cost == pytest.approx((10 * 3.0 + 30 * 0.3 + 20 * 3.75 + 120 * 15.0) / 1e6)


def test_input_json_pieces_joined_and_empty_means_object() -> None:
    """Case 32: input_json_delta pieces join (first often ""), and an empty buffer means {}."""
    completion = parse_stream("anthropic-messages", fixture("anthropic_tool_use.sse"))
    calls = [(c.id, c.name, c.arguments) for c in completion.choices[0].tool_calls]
    assert calls == [("toolu_01A", "get_weather", '{"location": "Paris"}'), ("toolu_01B", "get_time", "{}")]
    assert completion.choices[0].text == "I'll check the weather in Paris."
    assert completion.choices[0].finish_reason == "tool_calls"


def test_max_tokens_inside_tool_input_keeps_partial_json() -> None:
    """Case 33: max_tokens inside a tool input keeps the partial string and reports length."""
    completion = parse_stream("anthropic-messages", fixture("anthropic_max_tokens_in_tool.sse"))
    (call,) = completion.choices[0].tool_calls
    assert call.arguments == '{"cities": ["Paris", "Lon'
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None
    assert completion.usage.output_tokens == 124


def test_thinking_signature_and_redacted_thinking() -> None:
    """Case 34: thinking deltas append, signature_delta replaces, redacted_thinking is kept whole."""
    completion = parse_stream("anthropic-messages", fixture("anthropic_thinking.sse"))
    assert completion.choices[0].reasoning == "Let me add: 2+2=4."
    assert completion.choices[0].text == "4"
    assert completion.extras["signatures"] == ["EqQBCgIYAhIM1gbcDa9GJwZA2b3h"]
    assert completion.extras["blocks"] == [
        {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4a"}
    ]


def test_second_signature_delta_replaces_the_first() -> None:
    """Case 34: a later signature_delta replaces the earlier one instead of appending."""
    thinking = {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "thinking", "thinking": ""},
    }
    completion = anthropic(
        START,
        ("content_block_start", thinking),
        *(
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "signature_delta", "signature": s},
                },
            )
            for s in ("one", "two")
        ),
        STOP,
    )
    assert completion.extras["signatures"] == ["two"]


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("anthropic_overloaded.sse", id="anthropic"),
        pytest.param("melious_messages_error.sse", id="melious"),
    ],
)
def test_error_event_after_200(name: str) -> None:
    """Case 35: an overloaded_error event mid-stream becomes the error, with the partial text kept."""
    completion = parse_stream("anthropic-messages", fixture(name))
    assert completion.error is not None
    assert (completion.error.type, completion.error.message) == ("overloaded_error", "Overloaded")
    assert not completion.complete
    assert completion.choices[0].text in {"Partial", "Ham"}


def test_rate_limit_error_event_is_rate_limited() -> None:
    """Anthropic's rate_limit_error is its 429's type: sent in the stream after the 200, it counts as
    the 429 would (PROTOCOLS.md C18): rate_limited, retried, and the provider's concurrency backs off."""
    error = {"type": "error", "error": {"type": "rate_limit_error", "message": "Rate limit exceeded"}}
    completion = anthropic(START, TEXT0, text_delta("Part"), ("error", error))
    decision = classify_completion(completion)
    assert decision is not None
    assert (decision.kind, decision.retryable) == ("rate_limited", True)


def test_an_invalid_request_error_event_is_not_retried() -> None:
    """invalid_request_error is the type of Anthropic's 400: sent in the stream after the 200, the
    same request would get it again, so it is a client_error, not retried."""
    error = {"type": "error", "error": {"type": "invalid_request_error", "message": "prompt is too long"}}
    decision = classify_completion(anthropic(START, TEXT0, ("error", error)))
    assert decision is not None
    assert (decision.kind, decision.retryable) == ("client_error", False)


def test_ping_and_unknown_events_ignored_blocks_keyed_by_index() -> None:
    """Case 36: ping and unknown events are ignored; blocks are keyed by index, not arrival order."""
    completion = anthropic(
        START,
        ("ping", {"type": "ping"}),
        (
            "content_block_start",
            {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
        ),
        TEXT0,
        text_delta("world", 1),
        ("brand_new_event", {"type": "brand_new_event", "x": 1}),
        text_delta("hello ", 0),
        message_delta(),
        STOP,
    )
    assert completion.choices[0].text == "hello world"
    assert completion.complete


def test_no_event_names_dispatch_on_type() -> None:
    """Without `event:` lines the data's own type is used (some gateways drop the names)."""
    completion = anthropic(START[1], TEXT0[1], text_delta("ok")[1], message_delta()[1], STOP[1])
    assert completion.choices[0].text == "ok"
    assert completion.complete


@pytest.mark.parametrize(
    "payloads",
    [
        pytest.param([TEXT0], id="block-before-message-start"),
        pytest.param([START, text_delta("x", 3)], id="delta-for-unknown-block"),
        pytest.param([START, ("content_block_delta", "{not json")], id="malformed-json"),
    ],
)
def test_out_of_order_or_malformed_is_protocol_error(payloads: list[object]) -> None:
    """Events before message_start, deltas for unknown blocks and bad JSON are protocol errors."""
    completion = anthropic(*payloads)
    assert completion.error is not None
    assert completion.error.type == PROTOCOL_ERROR


def test_eof_after_message_delta_is_complete_but_without_it_is_not() -> None:
    """A stop reason counts as the terminal signal (SDK fixtures); a stream cut before it does not."""
    assert anthropic(START, TEXT0, text_delta("x"), message_delta()).complete
    assert not anthropic(START, TEXT0, text_delta("x")).complete


def test_build_request() -> None:
    """The request posts to base_url/v1/messages with x-api-key, version, system, tools and defaults."""
    provider = ProviderSpec(
        name="mel", dialect="anthropic-messages", base_url="https://api.melious.ai", model="claude-sonnet-4"
    )
    tool = {
        "type": "function",
        "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object"}},
    }
    case = CaseSpec(
        id="c",
        messages=({"role": "user", "content": "hi"},),
        system="be brief",
        tools=(tool,),
        params={"stop": "END", "temperature": 0},
    )
    request = get_dialect("anthropic-messages").build_request(provider, case, api_key="sk-mel")
    assert request.url == "https://api.melious.ai/v1/messages"
    assert request.headers["x-api-key"] == "sk-mel"
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.headers["Accept"] == "text/event-stream"
    sent = orjson.loads(request.body)
    assert sent["max_tokens"] == 1024
    assert sent["system"] == "be brief"
    assert sent["stream"] is True
    assert sent["stop_sequences"] == ["END"]
    assert sent["tools"] == [
        {"name": "get_weather", "description": "Weather", "input_schema": {"type": "object"}}
    ]
    assert sent["messages"] == [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("name", ["max_tokens", "max_completion_tokens", "max_output_tokens"])
def test_every_cap_name_runner_counts_is_sent_as_max_tokens(name: str) -> None:
    """The output cap runner reserves TPM for (max_output_tokens included, the Responses and Gemini
    name) is the one sent: the Messages API knows only max_tokens and refuses other fields ("Extra
    inputs are not permitted")."""
    provider = ProviderSpec(
        name="c", dialect="anthropic-messages", base_url="https://x.test", model="m", params={name: 64}
    )
    dialect = get_dialect("anthropic-messages")
    case = CaseSpec(id="c", messages=({"role": "user", "content": "hi"},))
    sent = orjson.loads(dialect.build_request(provider, case, api_key=None).body)
    assert sent["max_tokens"] == 64
    assert {"max_completion_tokens", "max_output_tokens"}.isdisjoint(sent)
    assert dialect.max_output_tokens(provider.params) == 64


@pytest.mark.parametrize("strict", [True, False])
def test_a_strict_tool_stays_strict(strict: bool) -> None:
    """Chat's function.strict (arguments that follow the schema exactly) is the Messages API's
    tool-level strict: dropping it let the model send arguments the schema forbids."""
    function = {"name": "f", "parameters": {"type": "object", "properties": {}}, "strict": strict}
    case = CaseSpec(
        id="c",
        messages=({"role": "user", "content": "hi"},),
        tools=({"type": "function", "function": function},),
    )
    provider = ProviderSpec(name="c", dialect="anthropic-messages", base_url="https://x.test", model="m")
    sent = orjson.loads(get_dialect("anthropic-messages").build_request(provider, case, api_key=None).body)
    assert sent["tools"] == [
        {"name": "f", "input_schema": {"type": "object", "properties": {}}, "strict": strict}
    ]


def test_parse_error_body() -> None:
    """An Anthropic JSON error body becomes a CompletionError."""
    error = get_dialect("anthropic-messages").parse_error_body(
        529, b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
    )
    assert error is not None
    assert (error.type, error.message) == ("overloaded_error", "Overloaded")
