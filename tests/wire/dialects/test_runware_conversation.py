"""The canonical conversation sent to Runware: text turns only, the rest refused at load."""

from __future__ import annotations

import orjson
import pytest

from runner.errors import ConfigError
from runner.spec import CaseSpec, ProviderSpec
from runner.wire.dialects import get_dialect
from tests.conversations import WEATHER_TOOL, tool_conversation

PROVIDER = ProviderSpec(name="rw", dialect="runware", base_url="https://api.runware.ai/v1", model="m")


def test_text_parts_are_joined_into_one_string() -> None:
    """Runware documents a string content: text parts become one, the system prompt a system turn."""
    messages = (
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "c"},
    )
    case = CaseSpec(id="c", messages=messages, system="be brief")
    get_dialect("runware").check_messages(case)
    task = orjson.loads(get_dialect("runware").build_request(PROVIDER, case, api_key=None).body)[0]
    assert task["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "a\n\nb"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "c"},
    ]
    assert "tools" not in task


@pytest.mark.parametrize(
    ("case", "key", "what"),
    [
        (CaseSpec(id="k", messages=tuple(tool_conversation()[:1]), tools=(WEATHER_TOOL,)), "tools", "tools"),
        (CaseSpec(id="k", messages=tuple(tool_conversation()[:2])), "messages[1].tool_calls", "tool calls"),
        (CaseSpec(id="k", messages=tuple(tool_conversation()[2:3])), "messages[0]", "a 'tool' message"),
        (CaseSpec(id="k", messages=tuple(tool_conversation()[3:])), "messages[0].content", "images"),
    ],
)
def test_what_runware_cannot_express_is_refused(case: CaseSpec, key: str, what: str) -> None:
    with pytest.raises(ConfigError) as caught:
        get_dialect("runware").check_messages(case)
    assert caught.value.key == key
    assert f"case 'k': runware cannot express {what}" in str(caught.value)
