"""The canonical conversation translated to Anthropic Messages: system, tool_use / tool_result, images."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from runner.errors import ConfigError
from runner.spec import CaseSpec, ProviderSpec
from runner.wire.dialects import get_dialect
from tests.conversations import PNG, WEATHER_TOOL, tool_conversation

PROVIDER = ProviderSpec(
    name="a", dialect="anthropic-messages", base_url="https://api.anthropic.com", model="m"
)


def sent(case: CaseSpec) -> dict[str, Any]:
    body: dict[str, Any] = orjson.loads(
        get_dialect("anthropic-messages").build_request(PROVIDER, case, api_key=None).body
    )
    return body


def test_tool_call_tool_result_and_image_translated() -> None:
    """tool_calls -> tool_use blocks; the tool result and the next user turn merge into one user turn."""
    case = CaseSpec(id="c", messages=tuple(tool_conversation()), system="be brief", tools=(WEATHER_TOOL,))
    body = sent(case)
    assert body["system"] == "be brief"
    assert body["messages"] == [
        {"role": "user", "content": "What's the weather in Paris?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "18 C, cloudy"},
                {"type": "text", "text": "And what is in this picture?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
            ],
        },
    ]
    assert body["tools"][0]["input_schema"] == WEATHER_TOOL["function"]["parameters"]  # type: ignore[index]


def test_system_messages_join_the_system_parameter_and_url_images_stay_urls() -> None:
    messages = (
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}]},
        {"role": "system", "content": "answer in French"},
        {"role": "user", "content": "what is it?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "t", "type": "function", "function": {"name": "f", "arguments": ""}}],
        },
    )
    body = sent(CaseSpec(id="c", messages=messages, system="be brief"))
    assert body["system"] == "be brief\n\nanswer in French"
    assert body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}},
                {"type": "text", "text": "what is it?"},
            ],
        },
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]},
    ]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"type": "auto"}),
        ("required", {"type": "any"}),
        ("none", {"type": "none"}),
        ({"type": "function", "function": {"name": "f"}}, {"type": "tool", "name": "f"}),
    ],
)
def test_tool_choice_translated(choice: object, expected: object) -> None:
    case = CaseSpec(id="c", messages=({"role": "user", "content": "hi"},), params={"tool_choice": choice})
    assert sent(case)["tool_choice"] == expected


@pytest.mark.parametrize(
    ("message", "key", "what"),
    [
        (
            {
                "role": "user",
                "content": [{"type": "image_url", "image_url": {"url": "data:image/bmp;base64,AA=="}}],
            },
            "messages[0].content[0]",
            "data: URL",
        ),
        (
            {
                "role": "user",
                "content": [{"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}],
            },
            "messages[0].content[0]",
            "'input_audio' content part",
        ),
        (
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"id": "t", "type": "function", "function": {"name": "f", "arguments": "[1]"}}
                ],
            },
            "messages[0].tool_calls[0].function.arguments",
            "not a JSON object",
        ),
        ({"role": "tool", "content": "x"}, "messages[0]", "without tool_call_id"),
        ({"role": "developer", "content": "x"}, "messages[0]", "role 'developer'"),
    ],
)
def test_what_anthropic_cannot_express_is_refused(message: dict[str, Any], key: str, what: str) -> None:
    case = CaseSpec(id="case-7", messages=(message,))
    with pytest.raises(ConfigError) as caught:
        get_dialect("anthropic-messages").check_messages(case)
    assert caught.value.key == key
    assert what in str(caught.value)
    assert "case 'case-7': anthropic-messages cannot express" in str(caught.value)


def test_the_canonical_conversation_is_accepted() -> None:
    case = CaseSpec(id="c", messages=tuple(tool_conversation()), tools=(WEATHER_TOOL,))
    get_dialect("anthropic-messages").check_messages(case)


def test_a_case_that_skipped_the_load_check_still_builds_a_request() -> None:
    """A run stored before the check (resumed later) gets the API's 400, not a crash in build_request."""
    call = {"id": "t", "type": "function", "function": {"name": "f", "arguments": "{not json"}}
    case = CaseSpec(id="c", messages=({"role": "assistant", "content": None, "tool_calls": [call]},))
    blocks = sent(case)["messages"][0]["content"]
    assert blocks == [{"type": "tool_use", "id": "t", "name": "f", "input": "{not json"}]


@pytest.mark.parametrize(
    ("messages", "key", "what"),
    [
        (
            tool_conversation()[:2] + tool_conversation()[3:],
            "messages[1].tool_calls",
            "without results: call_1",
        ),
        (
            [*tool_conversation()[:2], {"role": "tool", "tool_call_id": "other", "content": "x"}],
            "messages[2].tool_call_id",
            "unknown call 'other'",
        ),
        ([{"role": "user", "content": []}], "messages[0].content", "an empty user turn"),
        pytest.param(
            [
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": ""},
                {"role": "user", "content": "n"},
            ],
            "messages[1].content",
            "an empty assistant turn",
            id="empty-assistant-turn",
        ),
        pytest.param(
            [
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": None},
                {"role": "user", "content": "n"},
            ],
            "messages[1].content",
            "an empty assistant turn",
            id="assistant-turn-without-content-or-calls",
        ),
        pytest.param(
            [{"role": "user", "content": " \n"}],
            "messages[0].content",
            "a user turn of whitespace only",
            id="whitespace-user-turn",
        ),
        pytest.param(
            [
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": "  "},
                {"role": "user", "content": "n"},
            ],
            "messages[1].content",
            "an assistant turn of whitespace only",
            id="whitespace-assistant-turn",
        ),
        pytest.param(
            [{"role": "user", "content": "q"}, {"role": "assistant", "content": "Sure, "}],
            "messages[1].content",
            "a final assistant turn ending in whitespace",
            id="prefill-trailing-whitespace",
        ),
    ],
)
def test_unpaired_tool_turns_and_empty_turns_are_refused(
    messages: list[dict[str, Any]], key: str, what: str
) -> None:
    """What the Messages API refuses between turns is a load error too, not a 400 at run time."""
    with pytest.raises(ConfigError) as caught:
        get_dialect("anthropic-messages").check_messages(CaseSpec(id="c", messages=tuple(messages)))
    assert caught.value.key == key
    assert what in str(caught.value)


def test_empty_text_parts_are_left_out_of_a_user_turn() -> None:
    """An empty text part beside an image is dropped (the API refuses an empty text block)."""
    image = {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}
    case = CaseSpec(id="c", messages=({"role": "user", "content": [{"type": "text", "text": ""}, image]},))
    get_dialect("anthropic-messages").check_messages(case)
    assert sent(case)["messages"] == [
        {
            "role": "user",
            "content": [{"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}}],
        }
    ]


def test_a_final_assistant_turn_may_be_empty() -> None:
    """The API takes an empty final assistant turn (a prefill of nothing), so the load check does too."""
    case = CaseSpec(id="c", messages=({"role": "user", "content": "q"}, {"role": "assistant", "content": ""}))
    get_dialect("anthropic-messages").check_messages(case)
