"""The pieces the dialects share: the registry, extras merging, completeness, headers and token caps."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner.errors import ConfigError
from runner.model import Choice
from runner.spec import CaseSpec, ProviderSpec
from runner.wire.dialects import get_dialect, names, registry
from runner.wire.dialects.common import Extras, openai_messages, stream_complete
from runner.wire.dialects.openai_chat import OpenAIChatAccumulator

# JSON values, with the scalars Python's == mixes up (1, 1.0, True) and nested objects and arrays.
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.sampled_from([0, 1, 1.0, 0.0, 2]), st.sampled_from(["a", "b", "1"])
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["k", "u", "1"]), inner, max_size=3)
    ),
    max_leaves=8,
)


def _reference_merge(extras: dict[str, Any], key: str, value: Any) -> None:
    """The quadratic merge Extras replaced: its results are the specification."""
    if value is None:
        return
    current = extras.get(key)
    if isinstance(value, list) and isinstance(current, list):
        current.extend(item for item in value if item not in current)
    elif isinstance(value, list):
        extras[key] = list(value)
    else:
        extras[key] = value


@pytest.mark.slow
@given(
    st.lists(
        st.tuples(st.sampled_from(["citations", "search_results"]), st.one_of(_JSON, st.lists(_JSON))),
        max_size=12,
    )
)
def test_extras_merge_equals_the_quadratic_reference(merges: list[tuple[str, Any]]) -> None:
    """Any sequence of merges gives what the old item-by-item `in` scan gave, value for value."""
    extras = Extras()
    expected: dict[str, Any] = {}
    for key, value in merges:
        extras.merge(key, value)
        _reference_merge(expected, key, value)
    assert extras.values == expected
    # == would equate 1, 1.0 and True: compare the types too.
    assert repr(extras.values) == repr(expected)


def test_extras_merge_cumulative_lists_keep_each_item_once() -> None:
    """A list resent whole and grown on every chunk keeps each item once, in first-seen order."""
    extras = Extras()
    sent = [{"url": f"u{i}"} for i in range(500)]
    for end in range(1, len(sent) + 1):
        extras.merge("citations", sent[:end])
    assert extras.values == {"citations": sent}


def test_registry_is_the_one_list_of_names() -> None:
    """names() lists the registry's dialects in order; get_dialect finds each and names the known ones."""
    assert names() == ("openai-chat", "anthropic-messages", "runware", "gemini", "openai-responses")
    assert registry() is registry()  # built once
    assert all(get_dialect(name) is registry()[name] for name in names())
    with pytest.raises(ConfigError, match="unknown dialect 'nope'"):
        get_dialect("nope")


def _choice(raw: str | None, normalized: Any = None) -> Choice:
    return Choice(index=0, text="", raw_finish_reason=raw, finish_reason=normalized)


@pytest.mark.parametrize(
    ("choices", "saw_done", "error", "complete"),
    [
        pytest.param((), True, None, True, id="done-without-choices"),
        pytest.param((), False, None, False, id="no-choices"),
        pytest.param((_choice("stop", "stop"),), False, None, True, id="finished"),
        pytest.param((_choice("stop", "stop"), _choice(None)), False, None, False, id="one-unfinished"),
        pytest.param((_choice("error", "error"),), False, None, False, id="finished-with-error"),
        pytest.param((_choice("stop", "stop"),), False, "error", False, id="error-seen"),
    ],
)
def test_stream_complete(choices: tuple[Choice, ...], saw_done: bool, error: Any, complete: bool) -> None:
    """Complete after [DONE], or when every choice finished well and no error was seen."""
    from runner.model import CompletionError

    seen = CompletionError(type="x", message="y") if error else None
    assert stream_complete(choices, saw_done=saw_done, error=seen) is complete


def test_openai_messages_put_the_system_prompt_first() -> None:
    """The system prompt becomes the first message; the case's messages are copied, not shared."""
    message = {"role": "user", "content": "hi"}
    case = CaseSpec(id="c", system="be brief", messages=(message,))
    built = openai_messages(case)
    assert built == [{"role": "system", "content": "be brief"}, message]
    assert built[1] is not message


@pytest.mark.parametrize(
    ("dialect", "key_header", "key_value"),
    [
        pytest.param("openai-chat", "Authorization", "Bearer k", id="openai-chat"),
        pytest.param("runware", "Authorization", "Bearer k", id="runware"),
        pytest.param("anthropic-messages", "x-api-key", "k", id="anthropic-messages"),
    ],
)
def test_request_headers_keep_the_key_over_provider_headers(
    dialect: str, key_header: str, key_value: str
) -> None:
    """Provider headers may override the defaults but never the API key, which is set last."""
    provider = ProviderSpec(
        name="p",
        dialect=dialect,
        base_url="https://x.test/v1",
        model="m",
        headers={"Accept": "text/plain", key_header: "spoofed"},
    )
    case = CaseSpec(id="c", messages=({"role": "user", "content": "hi"},))
    headers = get_dialect(dialect).build_request(provider, case, api_key="k").headers
    assert headers["Accept"] == "text/plain"
    assert headers[key_header] == key_value
    assert next(iter(headers)) == "Content-Type"
    without_key = get_dialect(dialect).build_request(provider, case, api_key=None).headers
    assert without_key[key_header] == "spoofed"


@pytest.mark.parametrize(
    ("dialect", "params", "cap"),
    [
        pytest.param("openai-chat", {}, None, id="openai-unset"),
        pytest.param("openai-chat", {"max_completion_tokens": 7, "temperature": 0}, 7, id="openai-set"),
        pytest.param("openai-chat", {"max_tokens": True}, None, id="openai-bool-is-no-count"),
        pytest.param("openai-chat", {"settings": {"maxTokens": 9}}, None, id="openai-ignores-settings"),
        pytest.param("anthropic-messages", {}, 1024, id="anthropic-default"),
        pytest.param("anthropic-messages", {"max_tokens": 5}, 5, id="anthropic-set"),
        pytest.param("runware", {"settings": {"maxTokens": 50}}, 50, id="runware-settings"),
        pytest.param("runware", {"max_tokens": 3, "settings": {"maxTokens": 50}}, 3, id="runware-top-first"),
        pytest.param("runware", {"settings": "x"}, None, id="runware-bad-settings"),
    ],
)
def test_max_output_tokens(dialect: str, params: dict[str, Any], cap: int | None) -> None:
    """Each dialect finds the output-token cap where its request carries it."""
    assert get_dialect(dialect).max_output_tokens(params) == cap


def test_general_path_accumulator_never_tries_msgspec() -> None:
    """fast_path=False leaves no msgspec budget, and the result is the same as the fast paths'."""
    body = b'data: {"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"a"}}]}\n\n'
    general = OpenAIChatAccumulator(fast_path=False)
    assert general.msgspec_misses == 0
    fast = OpenAIChatAccumulator()
    for acc in (general, fast):
        acc.feed_many([body[6:-2], body[6:-2]])
    assert general.result() == fast.result()
    assert general.result().choices[0].text == "aa"
