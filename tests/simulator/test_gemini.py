"""The simulator's gemini emitter: routing by path, strict request checks, streams our dialect rebuilds."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import trio
from google import genai
from google.genai import types

from runner.simulator import expected_output
from runner.simulator.emitters.gemini import GeminiEmitter
from runner.simulator.script import answer
from runner.simulator.server import SimulatorHandle
from runner.spec import CaseSpec, ProviderSpec
from runner.wire.dialects import get_dialect
from runner.wire.replay import parse_stream
from tests.conftest import http_request, raw_exchange
from tests.wire.dialects.test_gemini import CONVERSATION, TOOL

EMITTER = GeminiEmitter()
USER = {"role": "user", "parts": [{"text": "hi"}]}
WEATHER = {
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}},
}


CALL = {"functionCall": {"name": "f", "args": {}}}
ANSWER = {"functionResponse": {"name": "f", "response": {}}}


def _model(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"role": "model", "parts": list(parts)}


def _user(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "parts": list(parts)}


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({}, id="no-contents"),
        pytest.param({"contents": []}, id="empty-contents"),
        pytest.param({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}, id="assistant-role"),
        pytest.param({"contents": [{"role": "user", "content": "hi"}]}, id="openai-message"),
        pytest.param({"contents": [USER], "messages": []}, id="unknown-field"),
        pytest.param({"contents": [USER], "generationConfig": {"max_tokens": 5}}, id="openai-param"),
        pytest.param({"contents": [{"role": "user", "parts": []}]}, id="no-parts"),
        pytest.param(
            {"contents": [{"role": "user", "parts": [{"text": "a", "inlineData": {}}]}]}, id="two-kinds"
        ),
        pytest.param(
            {"contents": [{"role": "user", "parts": [{"functionResponse": {"name": "f", "response": "x"}}]}]},
            id="response-not-object",
        ),
        pytest.param(
            {"contents": [USER], "tools": [{"type": "function", "function": {"name": "f"}}]}, id="openai-tool"
        ),
        pytest.param({"contents": [USER], "tools": [{"functionDeclarations": [{"n": 1}]}]}, id="bad-decl"),
        # Nested messages are checked too: an unknown name is "Cannot find field", a wrong type
        # "Invalid value", an enum value Google does not have "Invalid value at ... (TYPE_ENUM)".
        pytest.param(
            {"contents": [USER], "generationConfig": {"thinkingConfig": {"budget": 5}}}, id="thinking-field"
        ),
        # (proto3 JSON takes a number as a string, "5"; not as a list or a bool)
        pytest.param({"contents": [USER], "generationConfig": {"maxOutputTokens": [5]}}, id="tokens-list"),
        pytest.param({"contents": [USER], "generationConfig": {"temperature": True}}, id="temperature-bool"),
        pytest.param({"contents": [USER], "generationConfig": {"stopSequences": "x"}}, id="stop-string"),
        pytest.param(
            {"contents": [USER], "toolConfig": {"functionCallingConfig": {"mode": "REQUIRED"}}}, id="bad-mode"
        ),
        pytest.param(
            {"contents": [USER], "toolConfig": {"functionCallingConfig": {"mode": "ANY", "names": ["f"]}}},
            id="calling-field",
        ),
        pytest.param({"contents": [USER], "toolConfig": {"mode": "ANY"}}, id="tool-config-field"),
        # "Please ensure that function call turn comes immediately after a user turn or after a
        # function response turn" / "... function response turn comes immediately after a function
        # call turn" / "... the number of function response parts is equal to the number of function
        # call parts of the function call turn"
        pytest.param({"contents": [_model(CALL), _user(ANSWER)]}, id="call-turn-first"),
        pytest.param({"contents": [USER, _model({"text": "x"}), _user(ANSWER)]}, id="answer-without-call"),
        pytest.param({"contents": [USER, _model(CALL, CALL), _user(ANSWER)]}, id="half-answered"),
        pytest.param({"contents": [USER, _model(CALL), USER]}, id="unanswered-call"),
    ],
)
def test_read_refuses_what_google_refuses(body: Any) -> None:
    """A body Google answers 400 reads as no task (an OpenAI-shaped conversation among them)."""
    assert EMITTER.read(body) is None
    with pytest.raises(ValueError, match="refuses"):
        expected_output("gemini", body)


def test_read_task_fields() -> None:
    """candidateCount, maxOutputTokens, thinkingConfig.includeThoughts and functionDeclarations are read."""
    body = {
        "contents": [USER],
        "generationConfig": {
            "candidateCount": 2,
            "maxOutputTokens": 7,
            "thinkingConfig": {"includeThoughts": True},
        },
        "tools": [{"functionDeclarations": [WEATHER]}, {"googleSearch": {}}],
    }
    task = EMITTER.read_for(body, model="gemini-x", stream=False)
    assert task is not None
    assert (task.model, task.stream, task.choices, task.max_tokens, task.reasoning) == (
        "gemini-x",
        False,
        2,
        7,
        True,
    )
    assert task.tools == (("get_weather", WEATHER["parameters"]),)
    none = {**body, "toolConfig": {"functionCallingConfig": {"mode": "NONE"}}}
    assert EMITTER.read(none) is not None
    assert EMITTER.read(none).tools == ()  # type: ignore[union-attr]


def test_read_takes_proto_field_names() -> None:
    """snake_case field names (as google-genai sends them) read as their lowerCamelCase twins, as
    Google's proto3 JSON parser reads them; free-form data (args, schemas) keeps its keys."""
    schema = {"type": "object", "properties": {"max_days": {"type": "integer"}}}
    call = {"name": "f", "args": {"some_arg": 1}}
    camel = {
        "contents": [USER, {"role": "model", "parts": [{"functionCall": call, "thoughtSignature": "s"}]}],
        "systemInstruction": {"role": "user", "parts": [{"text": "Be brief."}]},
        "generationConfig": {"candidateCount": 2, "thinkingConfig": {"includeThoughts": True}},
        "tools": [{"functionDeclarations": [{"name": "f", "parametersJsonSchema": schema}]}],
        "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
    }
    snake = {
        "contents": [USER, {"role": "model", "parts": [{"function_call": call, "thought_signature": "s"}]}],
        "system_instruction": {"role": "user", "parts": [{"text": "Be brief."}]},
        "generation_config": {"candidate_count": 2, "thinking_config": {"include_thoughts": True}},
        "tools": [{"function_declarations": [{"name": "f", "parameters_json_schema": schema}]}],
        "tool_config": {"function_calling_config": {"mode": "AUTO"}},
    }
    read = EMITTER.read(snake)
    assert read is not None
    assert read == EMITTER.read(camel)
    assert (read.choices, read.reasoning, read.tools) == (2, True, (("f", schema),))
    assert EMITTER.read({"contents": [USER], "generation_config": {"max_tokens": 5}}) is None


def events(raw: bytes) -> list[Any]:
    body = raw.split(b"\r\n\r\n", 1)[1] if raw.startswith(b"HTTP/") else raw
    return [orjson.loads(line[6:]) for line in body.split(b"\r\n") if line.startswith(b"data: ")]


async def _post(handle: SimulatorHandle, path: str, body: Any) -> tuple[int, bytes]:
    with trio.fail_after(10):
        response = await raw_exchange(handle.port, http_request(path, body))
    return response.status, response.body


@pytest.mark.parametrize("version", ["v1", "v1beta"])
async def test_routes_by_path_and_streams_crlf(simulator: SimulatorHandle, version: str) -> None:
    """``/{version}/models/{model}:streamGenerateContent`` is served: the model comes from the path."""
    body = {"contents": [USER]}
    status, raw = await _post(simulator, f"/{version}/models/gemini-sim:streamGenerateContent?alt=sse", body)
    assert status == 200
    assert b"\r\n\r\n" in raw
    completion = parse_stream("gemini", raw)
    assert completion.complete
    assert completion.model == "gemini-sim"
    assert [entry.dialect for entry in simulator.log] == ["gemini"]


async def test_generate_content_is_one_json_body(simulator: SimulatorHandle) -> None:
    """``:generateContent`` (not streamed) answers one GenerateContentResponse."""
    status, raw = await _post(simulator, "/v1/models/gemini-sim:generateContent", {"contents": [USER]})
    assert status == 200
    answer = orjson.loads(raw)
    assert answer["candidates"][0]["finishReason"] == "STOP"
    assert answer["usageMetadata"]["promptTokenCount"] >= 1


async def test_refusal_and_unknown_path(simulator: SimulatorHandle) -> None:
    """A refused body gets Google's error shape; a path no dialect serves is a 404."""
    bad = {"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}
    status, raw = await _post(simulator, "/v1/models/m:streamGenerateContent", bad)
    assert status == 400
    assert orjson.loads(raw)["error"]["status"] == "INVALID_ARGUMENT"
    status, _ = await _post(simulator, "/v2/models/m:streamGenerateContent", {"contents": [USER]})
    assert status == 404


async def test_translated_conversation_is_accepted_and_rebuilt(simulator: SimulatorHandle) -> None:
    """The dialect's translation of a conversation with tool calls, results and images passes the strict
    checks, and the stream it gets back is rebuilt to exactly what the simulator meant to send."""
    provider = ProviderSpec(
        name="g",
        dialect="gemini",
        base_url=simulator.base_url("gemini"),
        model="gemini-sim",
        params={"generationConfig": {"thinkingConfig": {"includeThoughts": True}}, "n": 2},
    )
    case = CaseSpec(id="conv", messages=CONVERSATION, tools=(TOOL,))
    request = get_dialect("gemini").build_request(provider, case, api_key="k")
    path = request.url.removeprefix(simulator.origin)
    body = orjson.loads(request.body)
    status, raw = await _post(simulator, path, body)
    assert status == 200, raw
    completion = parse_stream("gemini", raw)
    # What the server meant to send: the script's answer to the task as the server read it.
    task = EMITTER.read_for(body, model="gemini-sim", stream=True)
    assert task is not None
    expected = answer(EMITTER, task, simulator.config)
    assert any(c.tool_calls for c in expected.choices)
    assert all(c.reasoning for c in expected.choices)
    assert completion.complete
    assert [c.text for c in completion.choices] == [c.text for c in expected.choices]
    assert [c.reasoning for c in completion.choices] == [c.reasoning for c in expected.choices]
    assert [[(t.id, t.name, t.arguments) for t in c.tool_calls] for c in completion.choices] == [
        [(t.id, t.name, t.arguments) for t in c.tool_calls] for c in expected.choices
    ]
    assert [c.finish_reason for c in completion.choices] == [c.finish_reason for c in expected.choices]
    assert completion.usage is not None
    assert completion.usage.output_tokens == expected.completion_tokens
    assert completion.usage.reasoning_tokens == expected.reasoning_tokens
    assert completion.usage.input_tokens == expected.prompt_tokens


@pytest.mark.parametrize("model", ["gemini-3-flash-preview", "gemini-3.1-pro-preview", "gemini-2.5-flash"])
async def test_a_translated_tool_call_turn_passes_gemini_3s_signature_check(
    simulator: SimulatorHandle, model: str
) -> None:
    """Gemini 3 models refuse a function call of the current turn without its thoughtSignature
    ("Function call is missing a thought_signature in functionCall parts"). A case's tool calls
    were never made by Gemini, so they carry the validator-skipping signature Google documents for
    such histories; older models take it too."""
    provider = ProviderSpec(name="g", dialect="gemini", base_url=simulator.base_url("gemini"), model=model)
    # Up to the tool results: the calls are the current turn's, the model answers them next.
    case = CaseSpec(id="conv", messages=CONVERSATION[:-2], tools=(TOOL,))
    request = get_dialect("gemini").build_request(provider, case, api_key="k")
    status, raw = await _post(
        simulator, request.url.removeprefix(simulator.origin), orjson.loads(request.body)
    )
    assert status == 200, raw


async def test_gemini_3_refuses_an_unsigned_call_of_the_current_turn(simulator: SimulatorHandle) -> None:
    unsigned = {"contents": [USER, _model(CALL), _user(ANSWER)]}
    path = "/v1/models/gemini-3-flash-preview:streamGenerateContent"
    status, raw = await _post(simulator, path, unsigned)
    assert status == 400
    assert "thought_signature" in orjson.loads(raw)["error"]["message"]
    # An older turn (before the last user text) needs none; a 2.5 model checks none.
    earlier = {"contents": [USER, _model(CALL), _user(ANSWER), _model({"text": "ok"}), USER]}
    assert (await _post(simulator, path, earlier))[0] == 200
    assert (await _post(simulator, "/v1/models/gemini-2.5-flash:streamGenerateContent", unsigned))[0] == 200


def genai_stream(handle: SimulatorHandle, model: str, config: dict[str, Any]) -> list[Any]:
    """Consume a gemini stream with google-genai (its default api_version, v1), in a worker thread."""

    options = types.HttpOptions(base_url=handle.base_url("gemini"))
    client = genai.Client(api_key="test-key", http_options=options)
    return list(
        client.models.generate_content_stream(
            model=model, contents="What's the weather in Tokyo?", config=types.GenerateContentConfig(**config)
        )
    )


@pytest.mark.parametrize(
    "config",
    [
        pytest.param({}, id="plain"),
        pytest.param({"candidate_count": 3}, id="three-candidates"),
        pytest.param({"thinking_config": {"include_thoughts": True}}, id="thoughts"),
        pytest.param({"max_output_tokens": 3}, id="max-tokens"),
        pytest.param(
            {
                "tools": [{"function_declarations": [WEATHER]}],
                "automatic_function_calling": {"disable": True},
            },
            id="function-calls",
        ),
    ],
)
async def test_google_genai_rebuilds_what_the_simulator_sent(
    simulator: SimulatorHandle, config: dict[str, Any]
) -> None:
    """google-genai accepts the simulator's streams, and its chunks add up to the scripted answer."""
    with trio.fail_after(20):
        chunks = await trio.to_thread.run_sync(genai_stream, simulator, "gemini-sim", config)
    (entry,) = simulator.log
    assert entry.path == "/v1/models/gemini-sim:streamGenerateContent"
    assert entry.headers.get("x-goog-api-key") is None  # the key never reaches the log
    task = EMITTER.read_for(entry.body, model="gemini-sim", stream=True)
    assert task is not None
    expected = answer(EMITTER, task, simulator.config)
    texts: dict[int, str] = {}
    thoughts: dict[int, str] = {}
    calls: dict[int, list[tuple[str | None, str | None, Any]]] = {}
    finish: dict[int, str] = {}
    for chunk in chunks:
        for candidate in chunk.candidates or ():
            index = candidate.index or 0
            for part in (candidate.content.parts if candidate.content else None) or ():
                if part.function_call is not None:
                    call = part.function_call
                    calls.setdefault(index, []).append((call.id, call.name, call.args))
                elif part.thought:
                    thoughts[index] = thoughts.get(index, "") + (part.text or "")
                else:
                    texts[index] = texts.get(index, "") + (part.text or "")
            if candidate.finish_reason is not None:
                finish[index] = candidate.finish_reason.value
    assert texts == {c.index: c.text for c in expected.choices if c.text}
    assert thoughts == {c.index: c.reasoning for c in expected.choices if c.reasoning}
    assert calls == {
        c.index: [(t.id, t.name, orjson.loads(t.arguments)) for t in c.tool_calls]
        for c in expected.choices
        if c.tool_calls
    }
    assert finish == {
        c.index: {"length": "MAX_TOKENS"}.get(c.finish_reason, "STOP") for c in expected.choices
    }
    usage = chunks[-1].usage_metadata
    assert usage is not None
    assert usage.prompt_token_count == expected.prompt_tokens
    assert (usage.candidates_token_count or 0) + (
        usage.thoughts_token_count or 0
    ) == expected.completion_tokens
