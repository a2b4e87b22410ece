"""Tests of the openai-chat dialect: seed fixtures and PROTOCOLS.md edge cases 13-26 and 28."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from runner.model import PROTOCOL_ERROR
from runner.spec import CaseSpec, ProviderSpec
from runner.wire.dialects import get_dialect
from runner.wire.replay import parse_stream
from runner.wire.sse import ServerSentEvent
from tests.streams import body, chunk, delta, fixture, openai

TOOL_START = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}


def test_miromind_chunk_format_seed() -> None:
    """MiroMind's documented chunk example rebuilds text, finish reason and usage."""
    completion = parse_stream("openai-chat", fixture("miromind_chunk_format.sse"))
    assert completion.complete
    assert completion.id == "chatcmpl-abc"
    assert completion.model == "mirothinker-1-7-deepresearch-mini"
    assert completion.choices[0].text == "Hello"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.input_tokens, completion.usage.output_tokens) == (10, 100)


def test_miromind_lifecycle_keeps_steps_citations_and_search_results() -> None:
    """MiroMind reasoning steps stay in order, thoughts join the reasoning, extensions land in extras."""
    completion = parse_stream("openai-chat", fixture("miromind_lifecycle.sse"))
    choice = completion.choices[0]
    assert [step["type"] for step in choice.reasoning_steps] == [
        "thinking",
        "web_search",
        "fetch_url_content",
        "thinking",
        "execute_python",
    ]
    assert choice.reasoning == (
        "The user asks for the boiling point of water at altitude.\n\nAbout 90 C at 3000 m."
    )
    assert choice.text == "At 3000 m water boils at about 90 \u00b0C [1]."
    assert completion.extras["citations"][0]["url"] == "https://example.org/boiling"
    assert completion.extras["search_results"][0]["title"] == "Boiling point and altitude"
    assert completion.usage is not None
    assert completion.usage.reasoning_tokens == 380
    assert completion.usage.raw["num_search_queries"] == 1


@pytest.mark.parametrize(
    ("name", "raw", "error_type"),
    [
        pytest.param("miromind_error.sse", "error", "workflow_error", id="error"),
        pytest.param("miromind_cancelled.sse", "cancelled", "cancelled", id="cancelled"),
    ],
)
def test_miromind_error_and_cancelled(name: str, raw: str, error_type: str) -> None:
    """Case 24 (MiroMind): an error / cancelled finish sets the error; the [DONE] after it completes."""
    completion = parse_stream("openai-chat", fixture(name))
    assert completion.error is not None
    assert completion.error.type == error_type
    assert completion.choices[0].raw_finish_reason == raw
    assert completion.choices[0].finish_reason == raw
    assert completion.complete  # the stream's terminal signal was seen (issue 10, item 12)


def test_solrouter_typical_seed_with_cost() -> None:
    """SolRouter's documented stream: text in the finish chunk and usage with cost."""
    completion = parse_stream("openai-chat", fixture("solrouter_typical.sse"))
    assert completion.complete
    assert completion.choices[0].text == "Low latency feels like magic."
    assert completion.usage is not None
    assert completion.usage.cost == pytest.approx(0.0000027)
    assert completion.usage.total_tokens == 20


def test_solrouter_tool_chunks_seed() -> None:
    """Case 16: SolRouter's tool fragments rebuild one call; every choice finished means complete."""
    completion = parse_stream("openai-chat", fixture("solrouter_tool_chunks.sse"))
    (call,) = completion.choices[0].tool_calls
    assert (call.id, call.name, call.arguments) == ("call_1", "get_weather", '{"city":"Tokyo"}')
    assert completion.choices[0].finish_reason == "tool_calls"
    assert completion.complete


def test_melious_seeds() -> None:
    """Melious' lone chunk is an incomplete answer; its include_usage stream keeps U+2028 in the text."""
    lone = parse_stream("openai-chat", fixture("melious_openai_chunk.sse"))
    assert lone.choices[0].text == "The"
    assert not lone.complete
    full = parse_stream("openai-chat", fixture("melious_openai_usage.sse"))
    assert full.choices[0].text == "Harbor cranes sleep in fog\u2028Elbe hums"
    assert full.usage is not None
    assert full.usage.cached_input_tokens == 0
    error = parse_stream("openai-chat", fixture("melious_openai_error.sse"))
    assert error.error is not None
    assert (error.error.type, error.error.code) == ("upstream_error", 502)
    assert error.choices[0].text == "Hamburg"


def test_done_ends_the_stream() -> None:
    """Case 13: [DONE] completes the stream and later events are ignored."""
    acc = get_dialect("openai-chat").new_accumulator()
    acc.feed(ServerSentEvent(json.dumps(chunk(delta(content="a")))))
    acc.feed(ServerSentEvent("[DONE]"))
    assert acc.is_done
    acc.feed(ServerSentEvent(json.dumps(chunk(delta(content="late")))))
    assert acc.result().complete
    assert acc.result().choices[0].text == "a"


def test_every_choice_finished_completes_without_done() -> None:
    """Case 13: a server that never sends [DONE] still completes once every choice has finished."""
    completion = openai(chunk(delta(content="hi")), chunk(delta(finish="stop")))
    assert completion.complete


def test_finished_choices_and_usage_make_the_accumulator_done() -> None:
    """Case 13: with every choice finished and usage seen, the reader need not wait for [DONE]."""
    acc = get_dialect("openai-chat").new_accumulator()
    acc.feed(ServerSentEvent(json.dumps(chunk(delta(finish="stop")))))
    assert not acc.is_done  # an include_usage chunk may still come
    acc.feed(ServerSentEvent(json.dumps(chunk(usage={"prompt_tokens": 1}))))
    assert not acc.is_done  # usage arrived after the finish chunk: only [DONE] or EOF ends it now
    acc2 = get_dialect("openai-chat").new_accumulator()
    acc2.feed(ServerSentEvent(json.dumps(chunk(delta(finish="stop"), usage={"prompt_tokens": 1}))))
    assert acc2.is_done


def test_clean_eof_without_terminal_is_incomplete() -> None:
    """Case 14: EOF without [DONE] or a finish reason is truncation, not success."""
    completion = openai(chunk(delta(content="half an ans")))
    assert not completion.complete
    assert completion.error is None
    assert completion.choices[0].text == "half an ans"


def test_empty_choices_null_delta_and_azure_records() -> None:
    """Case 15: choices [], delta null and Azure object "" records are normal and ignored."""
    completion = openai(
        {"id": "", "object": "", "model": "", "choices": [], "prompt_filter_results": []},
        chunk(delta(content="ok")),
        {"id": "", "object": "", "choices": [{"index": 0, "delta": None, "content_filter_results": {}}]},
        chunk({"index": 0, "delta": None, "finish_reason": None}),
        chunk(delta(finish="stop")),
        "[DONE]",
    )
    assert completion.choices[0].text == "ok"
    assert completion.id == "c1"
    assert completion.complete


def test_tool_calls_index_in_every_piece() -> None:
    """Case 16: fragments are joined by index; id and name come once."""
    completion = openai(
        chunk(delta(tool_calls=[TOOL_START])),
        chunk(delta(tool_calls=[{"index": 0, "function": {"arguments": '{"a"'}}])),
        chunk(delta(tool_calls=[{"index": 1, "id": "call_2", "function": {"name": "g", "arguments": "{}"}}])),
        chunk(delta(tool_calls=[{"index": 0, "function": {"arguments": ":1}"}}])),
        chunk(delta(finish="tool_calls")),
    )
    calls = [(c.id, c.name, c.arguments) for c in completion.choices[0].tool_calls]
    assert calls == [("call_1", "f", '{"a":1}'), ("call_2", "g", "{}")]


@pytest.mark.parametrize(
    ("fragments", "expected"),
    [
        pytest.param(
            [
                {"id": "call_1", "function": {"name": "f", "arguments": '{"x"'}},
                {"function": {"arguments": ":1}"}},
                {"id": "call_2", "function": {"name": "g", "arguments": "{}"}},
            ],
            [("call_1", "f", '{"x":1}'), ("call_2", "g", "{}")],
            id="index-missing",
        ),
        pytest.param(
            [
                {"index": 0, "id": "call_1", "function": {"name": "f", "arguments": "{}"}},
                {"index": 0, "id": "call_2", "function": {"name": "g", "arguments": "[]"}},
            ],
            [("call_1", "f", "{}"), ("call_2", "g", "[]")],
            id="index-restarts-at-zero",
        ),
    ],
)
def test_tool_call_index_missing_or_restarting(
    fragments: list[dict[str, object]], expected: list[tuple[str, str, str]]
) -> None:
    """Case 17: a missing index is inferred from the id; a reused index with a new id is a new call."""
    completion = openai(*(chunk(delta(tool_calls=[f])) for f in fragments))
    assert [(c.id, c.name, c.arguments) for c in completion.choices[0].tool_calls] == expected


def test_repeated_id_and_name_are_not_concatenated() -> None:
    """Case 18: id and name repeated in every fragment (Fireworks, NIM) are deduplicated."""
    pieces = ['{"path":', '"a.txt"', "}"]
    completion = openai(
        *(
            chunk(
                delta(
                    tool_calls=[
                        {"index": 0, "id": "call_x", "function": {"name": "read_file", "arguments": p}}
                    ]
                )
            )
            for p in pieces
        )
    )
    (call,) = completion.choices[0].tool_calls
    assert (call.id, call.name, call.arguments) == ("call_x", "read_file", '{"path":"a.txt"}')


def test_name_split_across_fragments_is_joined() -> None:
    """Case 19: a function name genuinely split across fragments (Mistral) is appended."""
    completion = openai(
        chunk(delta(tool_calls=[{"index": 0, "id": "c", "function": {"name": "get_wea", "arguments": ""}}])),
        chunk(delta(tool_calls=[{"index": 0, "function": {"name": "ther", "arguments": "{}"}}])),
    )
    assert completion.choices[0].tool_calls[0].name == "get_weather"


def test_n_greater_than_one_interleaved() -> None:
    """Case 20: choices interleave by index, each with its own finish reason, one usage at the end."""
    completion = parse_stream("openai-chat", fixture("openai_n3_interleaved.sse"))
    assert [c.text for c in completion.choices] == ["Red sky", "Blue sea", "Green leaf falls"]
    assert [c.finish_reason for c in completion.choices] == ["stop", "length", "stop"]
    assert completion.usage is not None
    assert completion.usage.total_tokens == 16


def test_usage_final_chunk_last_non_null_wins() -> None:
    """Case 21: usage in a final empty-choices chunk is kept even when a later chunk has usage null."""
    completion = openai(
        chunk(delta(content="x"), usage=None),
        chunk(delta(finish="stop"), usage=None),
        chunk(usage={"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}),
        chunk(usage=None),
        "[DONE]",
    )
    assert completion.usage is not None
    assert completion.usage.total_tokens == 4


@pytest.mark.parametrize(
    "payloads",
    [
        pytest.param(
            [
                chunk(
                    delta(finish="stop"),
                    x_groq={"id": "req", "usage": {"prompt_tokens": 5, "total_tokens": 9}},
                )
            ],
            id="x_groq",
        ),
        pytest.param(
            [
                chunk(delta(content="a"), usage={"prompt_tokens": 5, "total_tokens": 9}),
                chunk(delta(finish="stop")),
            ],
            id="second-to-last",
        ),
        pytest.param(
            [chunk(delta(content="a", finish="stop"), usage={"prompt_tokens": 5, "total_tokens": 9})],
            id="last-content-chunk",
        ),
    ],
)
def test_usage_elsewhere(payloads: list[object]) -> None:
    """Case 22: usage in x_groq.usage, on the second-to-last chunk or on a content chunk is found."""
    completion = openai(*payloads)
    assert completion.usage is not None
    assert (completion.usage.input_tokens, completion.usage.total_tokens) == (5, 9)


def test_cumulative_usage_is_never_summed() -> None:
    """Case 23: cumulative usage repeated on several chunks keeps the last value."""
    completion = openai(
        *(chunk(delta(content="t"), usage={"prompt_tokens": 7, "completion_tokens": n}) for n in (1, 2, 3)),
        chunk(delta(finish="stop"), usage={"prompt_tokens": 7, "completion_tokens": 4, "total_tokens": 11}),
    )
    assert completion.usage is not None
    assert (completion.usage.input_tokens, completion.usage.output_tokens) == (7, 4)


@pytest.mark.parametrize(
    ("payloads", "expected"),
    [
        pytest.param(
            [{"error": {"message": "boom", "type": "server_error", "param": None, "code": "x"}}],
            ("server_error", "boom", "x"),
            id="openai-error-key",
        ),
        pytest.param(
            [{"object": "error", "message": "bad", "type": "BadRequestError", "code": 400}],
            ("BadRequestError", "bad", 400),
            id="vllm-object-error",
        ),
        pytest.param(
            [("error", {"code": 400, "details": "guardrail"}), "[DONE]"],
            ("error", "guardrail", 400),
            id="event-error-custom-body",
        ),
        pytest.param(
            [{"error": "Input validation error", "error_type": "validation"}],
            ("validation", "Input validation error", None),
            id="tgi-string-error",
        ),
        pytest.param(
            [chunk(delta(finish="error"), error={"message": "upstream died", "code": 502})],
            ("502", "upstream died", 502),
            id="openrouter-finish-error",
        ),
    ],
)
def test_mid_stream_error_shapes(payloads: list[object], expected: tuple[str, str, object]) -> None:
    """Case 24: every mid-stream error shape becomes Completion.error and ends the stream."""
    completion = openai(chunk(delta(content="partial")), *payloads)
    assert completion.error is not None
    assert (completion.error.type, completion.error.message, completion.error.code) == expected
    assert completion.choices[0].text == "partial"


def test_responses_style_error_event_without_error_key() -> None:
    """Case 28: an `event: error` whose body has no top-level error key is still an error."""
    completion = openai(("error", {"type": "error", "code": "server_error", "message": "overloaded"}))
    assert completion.error is not None
    assert completion.error.message == "overloaded"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param({"reasoning_content": "think"}, "think", id="reasoning_content"),
        pytest.param({"reasoning": "think"}, "think", id="reasoning"),
        pytest.param({"reasoning_content": "think", "reasoning": "think"}, "think", id="both-not-doubled"),
    ],
)
def test_reasoning_field_names(fields: dict[str, Any], expected: str) -> None:
    """Case 25: reasoning_content then reasoning; never counted as content."""
    completion = openai(chunk(delta(**fields)), chunk(delta(content="answer", finish="stop")))
    assert completion.choices[0].reasoning == expected
    assert completion.choices[0].text == "answer"


def test_reasoning_details_kept() -> None:
    """Case 25: OpenRouter's reasoning_details are kept as sent."""
    details = [{"type": "reasoning.text", "text": "t", "signature": "s"}]
    completion = openai(chunk(delta(reasoning="t", reasoning_details=details)))
    assert completion.extras["reasoning_details"] == details


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        pytest.param("stop", "stop", id="stop"),
        pytest.param("length", "length", id="length"),
        pytest.param("content_filter", "content_filter", id="content_filter"),
        pytest.param("function_call", "tool_calls", id="function_call"),
        pytest.param("insufficient_system_resource", None, id="deepseek-unknown"),
        pytest.param("STOP", None, id="gemini-upper-case-unknown"),
    ],
)
def test_finish_reason_open_set(raw: str, normalized: str | None) -> None:
    """Case 26: finish reasons map to the normalized set; unknown ones keep the raw string only."""
    choice = openai(chunk(delta(finish=raw))).choices[0]
    assert (choice.finish_reason, choice.raw_finish_reason) == (normalized, raw)


def test_refusal() -> None:
    """A refusal is rebuilt separately from the text."""
    choice = parse_stream("openai-chat", fixture("openai_refusal.sse")).choices[0]
    assert choice.refusal == "I'm sorry, I can't help with that."
    assert choice.text == ""


def test_deprecated_function_call_delta() -> None:
    """The deprecated function_call delta becomes one tool call."""
    completion = openai(
        chunk(delta(function_call={"name": "f", "arguments": '{"a"'})),
        chunk(delta(function_call={"arguments": ":1}"})),
    )
    assert completion.choices[0].tool_calls[0].arguments == '{"a":1}'


@pytest.mark.parametrize(
    "data",
    [
        pytest.param('{"choices": [', id="truncated-json"),
        pytest.param("[1, 2]", id="not-an-object"),
        pytest.param("hello", id="plain-text"),
    ],
)
def test_malformed_chunk_is_a_protocol_error(data: str) -> None:
    """A chunk that is not a JSON object becomes a protocol error, never an exception."""
    acc = get_dialect("openai-chat").new_accumulator()
    acc.feed(ServerSentEvent(data))
    assert acc.is_done
    error = acc.result().error
    assert error is not None
    assert error.type == PROTOCOL_ERROR


def test_has_reasoning_and_answer_flags() -> None:
    """has_reasoning and has_answer flip at the first reasoning and answer tokens."""
    acc = get_dialect("openai-chat").new_accumulator()

    def flags() -> tuple[bool, bool]:
        return acc.has_reasoning, acc.has_answer

    acc.feed(ServerSentEvent(json.dumps(chunk(delta(role="assistant", content="")))))
    assert flags() == (False, False)
    acc.feed(ServerSentEvent(json.dumps(chunk(delta(reasoning_content="r")))))
    assert flags() == (True, False)
    acc.feed(ServerSentEvent(json.dumps(chunk(delta(content="a")))))
    assert flags() == (True, True)


def test_build_request() -> None:
    """The request posts to base_url/chat/completions with auth, SSE accept, merged params and tools."""
    provider = ProviderSpec(
        name="sol",
        dialect="openai-chat",
        base_url="https://api.solrouter.io/ai/",
        model="openai/gpt-4o-mini",
        params={"temperature": 0.2, "max_tokens": 100},
        headers={"X-Title": "runner"},
    )
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    case = CaseSpec(
        id="c",
        messages=({"role": "user", "content": "hi"},),
        system="be brief",
        tools=(tool,),
        params={"max_tokens": 5},
    )
    request = get_dialect("openai-chat").build_request(provider, case, api_key="sk-test")
    assert request.url == "https://api.solrouter.io/ai/chat/completions"
    assert request.headers["Authorization"] == "Bearer sk-test"
    assert request.headers["Accept"] == "text/event-stream"
    assert request.headers["X-Title"] == "runner"
    sent = orjson.loads(request.body)
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}
    assert sent["messages"][0] == {"role": "system", "content": "be brief"}
    assert (sent["max_tokens"], sent["temperature"]) == (5, 0.2)
    assert sent["tools"] == [tool]
    assert "sk-test" not in repr(request)


def test_build_request_params_override_stream_options() -> None:
    """Params may override stream_options but never turn streaming off."""
    provider = ProviderSpec(name="p", dialect="openai-chat", base_url="http://x/v1", model="m")
    case = CaseSpec(id="c", messages=(), params={"stream_options": {"include_usage": False}, "stream": False})
    sent = orjson.loads(get_dialect("openai-chat").build_request(provider, case, api_key=None).body)
    assert sent["stream_options"] == {"include_usage": False}
    assert sent["stream"] is True


def test_parse_error_body() -> None:
    """An OpenAI JSON error body becomes a CompletionError; other bodies give None."""
    dialect = get_dialect("openai-chat")
    error = dialect.parse_error_body(
        429, b'{"error":{"message":"Rate limit","type":"rate_limit_error","code":"rate_limit_exceeded"}}'
    )
    assert error is not None
    assert (error.type, error.message, error.code) == (
        "rate_limit_error",
        "Rate limit",
        "rate_limit_exceeded",
    )
    assert dialect.parse_error_body(502, b"<html>bad gateway</html>") is None
    assert body() == b""


def test_params_merge_deeply_like_the_reuse_hash() -> None:
    """Provider and case params merge table by table: adding stream_options keeps include_usage."""
    from runner.spec import CaseSpec, ProviderSpec, request_params
    from runner.wire.dialects import get_dialect

    provider = ProviderSpec(
        name="p",
        dialect="openai-chat",
        base_url="https://api.example.com/v1",
        model="m",
        params={"stream_options": {"include_obfuscation": False}, "temperature": 0},
    )
    case = CaseSpec(
        id="c", messages=({"role": "user", "content": "hi"},), params={"stream_options": {"x": 1}}
    )
    body = orjson.loads(get_dialect("openai-chat").build_request(provider, case, api_key=None).body)
    assert body["stream_options"] == {"include_usage": True, "include_obfuscation": False, "x": 1}
    assert body["temperature"] == 0
    assert request_params(provider, case)["stream_options"] == {"include_obfuscation": False, "x": 1}


@pytest.mark.parametrize(
    "choice_extra",
    [
        pytest.param({}, id="choice-with-delta-only"),
        pytest.param({"finish_reason": None}, id="choice-with-finish-reason"),
    ],
)
def test_citations_on_a_small_choice_are_kept(choice_extra: dict[str, Any]) -> None:
    """MiroMind citations on a choice that has only a delta beside them still reach extras."""
    from runner.wire.replay import parse_stream

    citation = {"url": "https://example.org/a", "title": "A"}
    chunk = {
        "id": "c",
        "object": "chat.completion.chunk",
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": "x"}, "citations": [citation], **choice_extra}],
    }
    body = b"data: " + orjson.dumps(chunk) + b"\n\ndata: [DONE]\n\n"
    completion = parse_stream("openai-chat", body)
    assert completion.extras.get("citations") == [citation]
    assert completion.choices[0].text == "x"
