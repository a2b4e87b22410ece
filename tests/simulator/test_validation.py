"""The simulator refuses what the real APIs refuse (a wrongly translated conversation fails in tests as in
production) and lists its models at GET /v1/models in OpenAI's and Anthropic's shapes."""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import orjson
import pytest
import trio

from runner.simulator.server import SimulatorHandle
from tests.conftest import http_request, raw_exchange
from tests.conversations import PNG, tool_conversation

USE = {"type": "tool_use", "id": "t1", "name": "f", "input": {}}
RESULT = {"type": "tool_result", "tool_use_id": "t1", "content": "ok"}
USER = {"role": "user", "content": "q"}
IMAGE = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}


async def post(handle: SimulatorHandle, path: str, body: Any) -> tuple[int, Any]:
    response = await raw_exchange(handle.port, http_request(path, body))
    return response.status, orjson.loads(response.body) if response.status != 200 else None


def anthropic_body(messages: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 16, "messages": messages, **extra}


async def test_anthropic_refuses_the_openai_shaped_conversation(simulator: SimulatorHandle) -> None:
    """What runner used to send (tool role, tool_calls, image_url parts) is a 400, as at Anthropic."""
    status, error = await post(simulator, "/v1/messages", anthropic_body(tool_conversation()))
    assert status == 400
    assert error["type"] == "error"
    assert error["error"]["type"] == "invalid_request_error"
    assert error["error"]["message"].startswith("messages.")


@pytest.mark.parametrize(
    ("messages", "why"),
    [
        (
            [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
            "messages.0: Input should be",
        ),
        (
            [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
            "messages.1: roles must alternate",
        ),
        (
            [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}],
                }
            ],
            "messages.0: content.0: Input tag 'image_url'",
        ),
        ([{"role": "user", "content": [RESULT]}], "messages.0: unexpected tool_use_id"),
        (
            [
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": [USE]},
                {"role": "user", "content": "x"},
            ],
            "messages.2: tool_use ids were found without tool_result",
        ),
        ([{"role": "user", "content": ""}], "messages.0: content.0: text content blocks must be non-empty"),
        ([{"role": "user", "content": " \n"}], "messages.0: text content blocks must contain non-whitespace"),
        (
            [
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": []},
                {"role": "user", "content": "x"},
            ],
            "messages.1: all messages must have non-empty content",
        ),
        (
            [{"role": "user", "content": "q"}, {"role": "assistant", "content": "Sure, "}],
            "messages.1: final assistant content cannot end with trailing whitespace",
        ),
    ],
)
async def test_anthropic_refuses_what_the_api_refuses(
    simulator: SimulatorHandle, messages: list[dict[str, Any]], why: str
) -> None:
    status, error = await post(simulator, "/v1/messages", anthropic_body(messages))
    assert status == 400
    assert error["error"]["message"].startswith(why)


async def test_anthropic_accepts_a_well_formed_conversation(simulator: SimulatorHandle) -> None:
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": [{"type": "text", "text": "checking"}, USE]},
        {"role": "user", "content": [RESULT, {"type": "text", "text": "and this?"}, IMAGE]},
    ]
    status, _ = await post(simulator, "/v1/messages", anthropic_body(messages, system="be brief"))
    assert status == 200


async def test_anthropic_accepts_an_empty_final_assistant_turn(simulator: SimulatorHandle) -> None:
    """The optional final assistant message (a prefill) may be empty, as the API allows."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": "q"}, {"role": "assistant", "content": ""}]
    status, _ = await post(simulator, "/v1/messages", anthropic_body(messages))
    assert status == 200


@pytest.mark.parametrize(
    ("extra", "why"),
    [
        # OpenAI's names, sent untranslated: the Messages API has no such fields.
        ({"n": 2}, "n: Extra inputs are not permitted"),
        ({"stop": ["END"]}, "stop: Extra inputs are not permitted"),
        ({"response_format": {"type": "json_object"}}, "response_format: Extra inputs are not permitted"),
        ({"max_completion_tokens": 8}, "max_completion_tokens: Extra inputs are not permitted"),
        ({"metadata": {"user": "u"}}, "metadata.user: Extra inputs are not permitted"),
        # Known fields of the wrong type.
        ({"max_tokens": "16"}, "max_tokens: Input should be a valid integer"),
        ({"stop_sequences": "END"}, "stop_sequences: Input should be a valid list"),
        ({"temperature": "0"}, "temperature: Input should be a valid number"),
        ({"tool_choice": "auto"}, "tool_choice: Input should be a valid dictionary"),
        ({"tool_choice": {"type": "required"}}, "tool_choice: Input tag 'required'"),
    ],
)
async def test_anthropic_refuses_unknown_and_mistyped_fields(
    simulator: SimulatorHandle, extra: dict[str, Any], why: str
) -> None:
    """The Messages API validates the whole body (pydantic's "Extra inputs are not permitted"): a
    param runner forgot to translate or refuse is a 400 here too."""
    status, error = await post(simulator, "/v1/messages", anthropic_body([USER], **extra))
    assert status == 400
    assert error["error"]["type"] == "invalid_request_error"
    assert error["error"]["message"].startswith(why)


async def test_anthropic_accepts_its_documented_fields(simulator: SimulatorHandle) -> None:
    extra = {
        "temperature": 0.5,
        "top_p": 0.9,
        "top_k": 5,
        "stop_sequences": ["END"],
        "metadata": {"user_id": "u"},
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
        "service_tier": "auto",
        "stream": False,
    }
    status, _ = await post(simulator, "/v1/messages", anthropic_body([USER], system="s", **extra))
    assert status == 200


@pytest.mark.parametrize(
    ("extra", "why"),
    [
        # Chat Completions' names: "Unknown parameter: 'seed'." (code unknown_parameter).
        ({"seed": 7}, "Unknown parameter: 'seed'."),
        ({"max_tokens": 8}, "Unknown parameter: 'max_tokens'."),
        ({"frequency_penalty": 0.5}, "Unknown parameter: 'frequency_penalty'."),
        ({"stream_options": {"include_usage": True}}, "Unknown parameter: 'stream_options.include_usage'."),
        ({"reasoning": {"effort": "low", "budget": 5}}, "Unknown parameter: 'reasoning.budget'."),
        ({"text": {"verbosity": "low", "type": "text"}}, "Unknown parameter: 'text.type'."),
        # Known fields of the wrong type.
        ({"max_output_tokens": "64"}, "Invalid type for 'max_output_tokens': expected an integer"),
        ({"temperature": "0"}, "Invalid type for 'temperature': expected a number"),
        ({"instructions": ["s"]}, "Invalid type for 'instructions': expected a string"),
        ({"parallel_tool_calls": 1}, "Invalid type for 'parallel_tool_calls': expected a boolean"),
    ],
)
async def test_responses_refuses_unknown_and_mistyped_parameters(
    simulator: SimulatorHandle, extra: dict[str, Any], why: str
) -> None:
    """The Responses API answers 400 invalid_request_error to a parameter it does not know, nested
    ones included, and to a known one of the wrong type: a chat param runner forgot to translate
    or refuse fails here as it would in production."""
    body = {"model": "m", "input": "hi", "stream": True, **extra}
    status, error = await post(simulator, "/v1/responses", body)
    assert status == 400
    assert error["error"]["type"] == "invalid_request_error"
    assert error["error"]["message"].startswith(why)


async def test_responses_accepts_its_documented_parameters(simulator: SimulatorHandle) -> None:
    body = {
        "model": "m",
        "input": "hi",
        "instructions": "s",
        "max_output_tokens": 64,
        "temperature": 0.5,
        "top_p": 1,
        "top_logprobs": 2,
        "parallel_tool_calls": False,
        "reasoning": {"effort": "low", "summary": "auto"},
        "text": {"format": {"type": "text"}, "verbosity": "low"},
        "stream_options": {"include_obfuscation": False},
        "metadata": {"k": "v"},
        "store": False,
        "user": "u",
        "truncation": "auto",
        "include": ["reasoning.encrypted_content"],
        "stream": False,
    }
    status, _ = await post(simulator, "/v1/responses", body)
    assert status == 200


@pytest.mark.parametrize(
    ("message", "why"),
    [
        ({"role": "tool", "tool_call_id": "c", "content": "x"}, "messages[0].role"),
        ({"role": "user", "content": [{"type": "text", "text": "x"}]}, "messages[0].content"),
    ],
)
async def test_runware_refuses_what_its_text_task_cannot_take(
    simulator: SimulatorHandle, message: dict[str, Any], why: str
) -> None:
    task = {"taskType": "textInference", "taskUUID": "u", "model": "m", "messages": [message]}
    status, error = await post(simulator, "/v1", [task])
    assert status == 400
    assert error["errors"][0]["message"].startswith(why)


def list_models(handle: SimulatorHandle) -> tuple[list[str], list[str]]:
    with openai.OpenAI(base_url=handle.base_url("openai-chat"), api_key="k", max_retries=0) as client:
        ours = [model.id for model in client.models.list()]
    base = handle.base_url("anthropic-messages")
    with anthropic.Anthropic(base_url=base, api_key="k", max_retries=0) as client:
        theirs = [model.id for model in client.models.list()]
    return ours, theirs


async def test_models_list_in_both_sdks_shapes(simulator: SimulatorHandle) -> None:
    """The openai and anthropic SDKs (outside oracles) both read GET /v1/models."""
    openai_ids, anthropic_ids = await trio.to_thread.run_sync(list_models, simulator)
    assert openai_ids == anthropic_ids == ["sim-model"]
