"""The official openai and anthropic SDKs (outside oracles) rebuild exactly what the simulator sent.

openai-responses: the SDK's Responses stream helper, and our own request for a whole conversation.
"""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import openai
import orjson
import pytest
import trio

from runner.simulator import SimulatorConfig, expected_output
from runner.simulator.server import SimulatorHandle
from runner.spec import CaseSpec, ProviderSpec
from runner.wire.dialects import get_dialect
from runner.wire.replay import parse_stream
from runner.wire.sse import SSEDecoder
from tests.conftest import StartSimulator
from tests.wire.dialects.test_openai_responses import CONVERSATION

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        },
    },
}
MESSAGES = [{"role": "user", "content": "What's the weather in Tokyo?"}]


def openai_stream(handle: SimulatorHandle, request: dict[str, Any]) -> dict[str, Any]:
    """Consume an openai-chat stream with the SDK; rebuild text, reasoning, tool calls, usage per choice."""
    texts: dict[int, str] = {}
    reasoning: dict[int, str] = {}
    calls: dict[tuple[int, int], dict[str, str]] = {}
    finish: dict[int, str] = {}
    usage = None
    base = handle.base_url("openai-chat")
    with openai.OpenAI(base_url=base, api_key="sk-test", max_retries=0) as client:
        for chunk in client.chat.completions.create(**request):
            if chunk.usage is not None:
                usage = chunk.usage.model_dump(exclude_none=True)
            for choice in chunk.choices:
                delta = choice.delta
                texts[choice.index] = texts.get(choice.index, "") + (delta.content or "")
                extra = (delta.model_extra or {}).get("reasoning_content") or ""
                reasoning[choice.index] = reasoning.get(choice.index, "") + extra
                for call in delta.tool_calls or []:
                    slot = calls.setdefault(
                        (choice.index, call.index), {"id": "", "name": "", "arguments": ""}
                    )
                    slot["id"] += call.id or ""
                    if call.function is not None:
                        slot["name"] += call.function.name or ""
                        slot["arguments"] += call.function.arguments or ""
                if choice.finish_reason:
                    finish[choice.index] = choice.finish_reason
    return {"texts": texts, "reasoning": reasoning, "calls": calls, "finish": finish, "usage": usage}


@pytest.mark.parametrize(
    "request_extra",
    [
        pytest.param({}, id="plain"),
        pytest.param({"stream_options": {"include_usage": True}}, id="include_usage"),
        pytest.param({"n": 3, "stream_options": {"include_usage": True}}, id="n3"),
        pytest.param({"reasoning_effort": "low"}, id="reasoning_content"),
        pytest.param({"max_tokens": 5}, id="length"),
    ],
)
async def test_openai_sdk_rebuilds_text_and_usage(
    simulator: SimulatorHandle, request_extra: dict[str, Any]
) -> None:
    """The openai SDK rebuilds every choice's text, reasoning, finish reason and usage exactly."""
    request = {"model": "gpt-sim", "messages": MESSAGES, "stream": True, **request_extra}
    with trio.fail_after(20):
        got = await trio.to_thread.run_sync(openai_stream, simulator, request)
    expected = expected_output("openai-chat", request, simulator.config)
    assert got["texts"] == {c.index: c.text for c in expected.choices}
    assert got["reasoning"] == {c.index: c.reasoning for c in expected.choices}
    assert got["finish"] == {c.index: c.finish_reason for c in expected.choices}
    assert got["usage"] == expected.usage
    assert all(len(c.text_tokens) == 5 for c in expected.choices) or "max_tokens" not in request


async def test_openai_sdk_rebuilds_parallel_tool_calls(start_simulator: StartSimulator) -> None:
    """Tool calls arrive as fragments of several parallel calls and rebuild to the exact argument strings."""
    handle = await start_simulator(tool_calls=3, cost=True)
    request = {"model": "gpt-sim", "messages": MESSAGES, "stream": True, "tools": [WEATHER]}
    request["stream_options"] = {"include_usage": True}
    with trio.fail_after(20):
        got = await trio.to_thread.run_sync(openai_stream, handle, request)
    expected = expected_output("openai-chat", request, handle.config)
    calls = expected.choices[0].tool_calls
    assert len(calls) == 3
    assert got["calls"] == {
        (0, k): {"id": c.id, "name": c.name, "arguments": c.arguments} for k, c in enumerate(calls)
    }
    assert got["texts"] == {0: ""}
    assert got["finish"] == {0: "tool_calls"}
    assert expected.cost is not None
    assert got["usage"]["cost"] == expected.cost > 0


async def test_openai_sdk_non_streaming(simulator: SimulatorHandle) -> None:
    """A request without stream gets a chat.completion body the SDK parses into the same answer."""
    request: dict[str, Any] = {"model": "gpt-sim", "messages": MESSAGES, "n": 2}

    def call() -> Any:
        with openai.OpenAI(base_url=simulator.base_url("openai-chat"), api_key="k", max_retries=0) as client:
            return client.chat.completions.create(**request)

    with trio.fail_after(20):
        completion = await trio.to_thread.run_sync(call)
    expected = expected_output("openai-chat", request, simulator.config)
    assert [c.message.content for c in completion.choices] == [c.text for c in expected.choices]
    assert completion.usage.model_dump(exclude_none=True) == expected.usage


@pytest.mark.parametrize(
    "flavor",
    [pytest.param("solrouter", id="solrouter"), pytest.param("miromind", id="miromind")],
)
async def test_openai_flavors_put_usage_on_the_finish_chunk(
    start_simulator: StartSimulator, flavor: str
) -> None:
    """SolRouter and MiroMind send usage on the finish chunk unasked; MiroMind adds steps and heartbeats."""
    handle = await start_simulator(flavor=flavor)
    request = {"model": "m", "messages": MESSAGES, "stream": True}
    decoder = SSEDecoder()
    events = []
    with trio.fail_after(10):
        async with (
            httpx.AsyncClient() as client,
            client.stream(
                "POST", handle.base_url("openai-chat") + "/chat/completions", json=request
            ) as response,
        ):
            assert response.headers["x-accel-buffering"] == "no"
            async for piece in response.aiter_raw():
                events.extend(decoder.feed(piece))
    expected = expected_output("openai-chat", request, handle.config)
    assert events[-1].data == "[DONE]"
    chunks = [orjson.loads(e.data) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == expected.choices[0].text
    assert chunks[-1]["usage"] == expected.usage
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    steps = [s for c in chunks for s in c["choices"][0]["delta"].get("reasoning_steps", [])]
    assert steps == list(expected.steps)
    if flavor == "miromind":
        assert decoder.comments == len(expected.steps) // 2 > 0
        assert chunks[-1]["citations"] == list(expected.citations)
        assert expected.usage is not None
        assert expected.usage["num_search_queries"] == len(expected.citations)
    else:
        assert expected.usage is not None
        assert expected.usage["cost"] == expected.cost


def anthropic_stream(handle: SimulatorHandle, request: dict[str, Any]) -> Any:
    """Consume an anthropic-messages stream with the SDK's accumulating helper."""
    with (
        anthropic.Anthropic(
            base_url=handle.base_url("anthropic-messages"), api_key="k", max_retries=0
        ) as client,
        client.messages.stream(**request) as stream,
    ):
        return stream.get_final_message()


@pytest.mark.parametrize(
    "request_extra",
    [
        pytest.param({}, id="text"),
        pytest.param({"thinking": {"type": "enabled", "budget_tokens": 1024}}, id="thinking"),
        pytest.param(
            {
                "tools": [
                    {
                        "name": "lookup",
                        "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
                    }
                ]
            },
            id="tool_use",
        ),
        pytest.param({"tools": [{"name": "noargs", "input_schema": {"type": "object"}}]}, id="tool_no_args"),
        pytest.param({"max_tokens": 4}, id="max_tokens"),
    ],
)
async def test_anthropic_sdk_rebuilds_blocks_and_usage(
    simulator: SimulatorHandle, request_extra: dict[str, Any]
) -> None:
    """The anthropic SDK rebuilds thinking (with signature), text, tool input and final usage exactly."""
    request = {"model": "claude-sim", "max_tokens": 512, "messages": MESSAGES, **request_extra}
    with trio.fail_after(20):
        message = await trio.to_thread.run_sync(anthropic_stream, simulator, request)
    expected = expected_output("anthropic-messages", {**request, "stream": True}, simulator.config)
    choice = expected.choices[0]
    blocks = [
        b.model_dump(include={"type", "thinking", "signature", "text", "id", "name", "input"})
        for b in message.content
    ]
    want: list[dict[str, Any]] = []
    if choice.reasoning_tokens:
        want.append({"type": "thinking", "thinking": choice.reasoning, "signature": choice.signature})
    if choice.text_tokens:
        want.append({"type": "text", "text": choice.text})
    want += [
        {"type": "tool_use", "id": c.id, "name": c.name, "input": orjson.loads(c.arguments)}
        for c in choice.tool_calls
    ]
    assert blocks == want
    assert (
        message.stop_reason
        == {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}[choice.finish_reason]
    )
    assert message.usage.input_tokens == expected.prompt_tokens
    assert message.usage.output_tokens == expected.completion_tokens


async def test_anthropic_sdk_non_streaming(simulator: SimulatorHandle) -> None:
    """A request without stream gets a message body the SDK parses into the same text."""
    request: dict[str, Any] = {"model": "claude-sim", "max_tokens": 512, "messages": MESSAGES}

    def call() -> Any:
        with anthropic.Anthropic(
            base_url=simulator.base_url("anthropic-messages"), api_key="k", max_retries=0
        ) as c:
            return c.messages.create(**request)

    with trio.fail_after(20):
        message = await trio.to_thread.run_sync(call)
    expected = expected_output("anthropic-messages", request, simulator.config)
    assert message.content[0].text == expected.choices[0].text
    assert message.usage.output_tokens == expected.completion_tokens


@pytest.mark.parametrize(
    ("task_extra", "reasoning"),
    [
        pytest.param({}, False, id="plain"),
        pytest.param(
            {"numberResults": 3, "includeUsage": True, "includeCost": True}, False, id="three_results"
        ),
        pytest.param({"includeUsage": True}, True, id="reasoning"),
    ],
)
async def test_runware_stream_rebuilds_per_result(
    start_simulator: StartSimulator, task_extra: dict[str, Any], reasoning: bool
) -> None:
    """SSEDecoder + orjson rebuild each Runware result's text and reasoning, and the usage and cost."""
    handle = await start_simulator(SimulatorConfig(reasoning=reasoning))
    task = {
        "taskType": "textInference",
        "taskUUID": "a770f077-f413-47de-9dac-be0b26a35da6",
        "model": "minimax:m2.7@0",
        "deliveryMethod": "stream",
        "messages": MESSAGES,
        **task_extra,
    }
    decoder = SSEDecoder()
    events = []
    with trio.fail_after(10):
        async with (
            httpx.AsyncClient() as client,
            client.stream("POST", handle.base_url("runware"), json=[task]) as response,
        ):
            assert response.headers["content-type"].startswith("text/event-stream")
            async for piece in response.aiter_raw():
                events.extend(decoder.feed(piece))
    expected = expected_output("runware", [task], handle.config)
    assert events[-1].data == "[DONE]"
    assert decoder.comments >= 1  # the opening ": ping"
    texts: dict[int, str] = {}
    thoughts: dict[int, str] = {}
    finish: dict[int, str] = {}
    last: dict[str, Any] = {}
    for event in events[:-1]:
        last = orjson.loads(event.data)
        assert last["taskUUID"] == task["taskUUID"]
        index = last.get("resultIndex", 0)
        texts[index] = texts.get(index, "") + last["delta"].get("text", "")
        thoughts[index] = thoughts.get(index, "") + last["delta"].get("reasoningContent", "")
        if last["finishReason"]:
            finish[index] = last["finishReason"]
    assert texts == {c.index: c.text for c in expected.choices}
    assert thoughts == {c.index: c.reasoning for c in expected.choices}
    assert finish == {c.index: "stop" for c in expected.choices}
    assert last.get("usage") == expected.usage
    assert last.get("cost") == expected.cost


RESPONSES_TOOL = {
    "type": "function",
    "name": "get_weather",
    "parameters": WEATHER["function"]["parameters"],  # type: ignore[index]
    "strict": False,
}


def responses_stream(
    handle: SimulatorHandle, request: dict[str, Any]
) -> tuple[Any, dict[int, str], list[str]]:
    """Consume an openai-responses stream with the SDK's stream helper: final response, text and argument
    snapshots by output index, and the terminal event's type."""
    snapshots: dict[int, str] = {}
    terminal: list[str] = []
    base = handle.base_url("openai-responses")
    with (
        openai.OpenAI(base_url=base, api_key="sk-test", max_retries=0) as client,
        client.responses.stream(**request) as stream,
    ):
        for event in stream:
            if event.type in ("response.output_text.delta", "response.function_call_arguments.delta"):
                snapshots[event.output_index] = event.snapshot
            elif event.type in ("response.completed", "response.incomplete"):
                terminal.append(event.type)
        final = stream.get_final_response() if terminal == ["response.completed"] else None
    return final, snapshots, terminal


@pytest.mark.parametrize(
    ("config", "request_extra"),
    [
        pytest.param({}, {}, id="plain"),
        pytest.param({"tool_calls": 3}, {"tools": [RESPONSES_TOOL]}, id="tool-calls"),
        pytest.param({}, {"reasoning": {"effort": "low", "summary": "auto"}}, id="reasoning"),
    ],
)
async def test_openai_sdk_responses_rebuilds_items_and_usage(
    start_simulator: StartSimulator, config: dict[str, Any], request_extra: dict[str, Any]
) -> None:
    """The openai SDK's Responses helper rebuilds the simulator's text, reasoning summary, calls and usage."""
    handle = await start_simulator(**config)
    request = {"model": "gpt-sim", "input": MESSAGES, **request_extra}
    with trio.fail_after(20):
        final, snapshots, terminal = await trio.to_thread.run_sync(responses_stream, handle, request)
    expected = expected_output("openai-responses", {**request, "stream": True}, handle.config)
    choice = expected.choices[0]
    assert terminal == ["response.completed"]
    assert final.output_text == choice.text
    calls = [(i.call_id, i.name, i.arguments) for i in final.output if i.type == "function_call"]
    assert calls == [(c.id, c.name, c.arguments) for c in choice.tool_calls]
    # The SDK's own delta accumulation (not just the final response) agrees.
    assert [snapshots[i] for i in sorted(snapshots)] == [
        *([choice.text] if choice.text_tokens else []),
        *(c.arguments for c in choice.tool_calls),
    ]
    summaries = [s.text for i in final.output if i.type == "reasoning" for s in i.summary]
    assert "".join(summaries) == choice.reasoning
    assert final.usage.model_dump(exclude_none=True) == expected.usage


async def test_openai_sdk_responses_incomplete_at_max_output_tokens(simulator: SimulatorHandle) -> None:
    """A cap on output ends in response.incomplete with the text streamed so far."""
    request = {"model": "gpt-sim", "input": "Tell me a story", "max_output_tokens": 3}
    with trio.fail_after(20):
        _, snapshots, terminal = await trio.to_thread.run_sync(responses_stream, simulator, request)
    expected = expected_output("openai-responses", {**request, "stream": True}, simulator.config)
    assert terminal == ["response.incomplete"]
    assert expected.choices[0].finish_reason == "length"
    assert snapshots == {0: expected.choices[0].text}


async def test_translated_conversation_is_accepted_and_rebuilt(start_simulator: StartSimulator) -> None:
    """Our openai-responses request for a whole conversation (image, tool call, tool result, tools)
    passes the simulator's strict checks, and our accumulator rebuilds exactly what it sent."""
    handle = await start_simulator(tool_calls=2)
    provider = ProviderSpec(
        name="p", dialect="openai-responses", base_url=handle.base_url("openai-responses"), model="gpt-sim"
    )
    case = CaseSpec(id="c", messages=CONVERSATION, system="Be brief.", tools=(WEATHER,))
    request = get_dialect("openai-responses").build_request(provider, case, api_key="sk-test")

    def post() -> httpx.Response:
        return httpx.post(request.url, headers=request.headers, content=request.body, timeout=10)

    with trio.fail_after(20):
        response = await trio.to_thread.run_sync(post)
    assert response.status_code == 200, response.text
    completion = parse_stream("openai-responses", response.content)
    expected = expected_output("openai-responses", orjson.loads(request.body), handle.config)
    (choice,) = completion.choices
    assert completion.complete
    assert completion.error is None
    assert [(c.id, c.name, c.arguments) for c in choice.tool_calls] == [
        (c.id, c.name, c.arguments) for c in expected.choices[0].tool_calls
    ]
    assert choice.finish_reason == "tool_calls"
    assert completion.usage is not None
    assert completion.usage.input_tokens == expected.prompt_tokens
