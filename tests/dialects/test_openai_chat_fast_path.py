"""The openai-chat accumulator's fast paths (raw bytes in, feed_many) against its general path."""

from __future__ import annotations

import json
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.dialects.openai_chat import _SKIP, OpenAIChatAccumulator
from runner.model import Completion
from runner.parse import accumulate
from runner.sse import SSEDecoder, decode_all
from tests.streams import chunk, delta


def general_path(body: bytes) -> tuple[Completion, bool, bool]:
    """Every event of ``body`` through the general path only (_full), as feed() read it before."""
    acc = OpenAIChatAccumulator()
    for event in decode_all(body):
        if acc.is_done:
            break
        try:
            parsed = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            parsed = acc._not_json(event.data)
            if parsed is _SKIP:
                continue
        acc._full(parsed, event.event, event.data)
    return acc.result(), acc.has_reasoning, acc.has_answer


def fast_path(body: bytes, cuts: list[int]) -> tuple[Completion, bool, bool]:
    """``body`` in reads split at ``cuts``, through feed_raw and feed_many (the attempt layer's way)."""
    acc = OpenAIChatAccumulator()
    pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    return accumulate(acc, pieces), acc.has_reasoning, acc.has_answer


_text = st.text(max_size=6)
_index = st.sampled_from([0, 0, 0, 1, True, 1.0, None, [0], "0", 2**70])
_delta = st.one_of(
    _text.map(lambda text: {"content": text}),
    _text.map(lambda text: {"role": "assistant", "content": text}),
    _text.map(lambda text: {"reasoning_content": text}),
    _text.map(lambda text: {"tool_calls": [{"index": 0, "function": {"arguments": text}}]}),
    st.sampled_from([{}, None, "x", {"content": 5}, {"content": None}, {"refusal": "no"}]),
)


@st.composite
def _choice(draw: st.DrawFn) -> Any:
    choice: dict[str, Any] = {"delta": draw(_delta)}
    if draw(st.booleans()):
        choice["index"] = draw(_index)
    finish = draw(st.sampled_from(["absent", None, None, "stop", ""]))
    if finish != "absent":
        choice["finish_reason"] = finish
    if draw(st.booleans()):
        choice["logprobs"] = None
    if draw(st.integers(0, 5)) == 0:
        choice[draw(st.sampled_from(["citations", "error", "x"]))] = ["c"]
    return choice


@st.composite
def _payload(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 19))
    if kind == 0:
        return b"[DONE]"
    if kind == 1:
        return draw(st.sampled_from([b"not json", b"[1, 2]", b'"s"', b"{", b"\xef\xbb\xbf{}"]))
    payload: dict[str, Any] = {"choices": draw(st.lists(_choice(), min_size=1, max_size=2))}
    for key, values in (
        ("object", ["chat.completion.chunk"] * 4 + ["", "error", 5, "absent"]),
        ("id", ["c1", "c2", "", None, "absent"]),
        ("model", ["m", "", "absent"]),
        ("usage", ["absent", None, None, {}, {"prompt_tokens": 1}]),
    ):
        value = draw(st.sampled_from(values))
        if value != "absent":
            payload[key] = value
    if draw(st.integers(0, 6)) == 0:
        payload[draw(st.sampled_from(["error", "x_groq", "citations", "search_results"]))] = {"usage": {}}
    raw = json.dumps(payload, ensure_ascii=False).encode()
    if kind == 2 and b'"content": "' in raw:  # invalid UTF-8 inside a content string
        raw = raw.replace(b'"content": "', b'"content": "\xff', 1)
    return raw


@st.composite
def _stream(draw: st.DrawFn) -> bytes:
    parts = []
    for payload in draw(st.lists(_payload(), max_size=12)):
        event = draw(
            st.sampled_from([b"", b"", b"", b"", b"event: error\n", b"event: message\n", b"event: other\n"])
        )
        parts.append(event + b"data: " + payload + b"\n\n")
    return b"".join(parts)


@settings(max_examples=400, deadline=None)
@given(body=_stream(), data=st.data())
def test_fast_paths_equal_the_general_path(body: bytes, data: st.DataObject) -> None:
    """Any chunk shapes, any split into reads: feed_many on raw bytes gives the general path's result."""
    cuts = sorted(data.draw(st.lists(st.integers(0, len(body)), max_size=10)))
    assert fast_path(body, cuts) == general_path(body)


@settings(max_examples=200, deadline=None)
@given(body=_stream())
def test_feed_one_event_at_a_time_equals_the_general_path(body: bytes) -> None:
    """feed(event), the one-event entry point, gives the general path's result too."""
    acc = OpenAIChatAccumulator()
    for event in decode_all(body):
        acc.feed(event)
    assert (acc.result(), acc.has_reasoning, acc.has_answer) == general_path(body)


def _sse(*payloads: Any) -> bytes:
    return b"".join(b"data: " + json.dumps(payload).encode() + b"\n\n" for payload in payloads)


def test_invalid_utf8_in_raw_bytes_becomes_replacement_characters() -> None:
    """Raw bytes orjson rejects as invalid UTF-8 are read as their U+FFFD-decoded text."""
    first = _sse(chunk(delta(role="assistant", content="")))
    bad = b'data: {"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"a\xffb"}}]}\n\n'
    completion, _, has_answer = fast_path(first + bad, [])
    assert completion.choices[0].text == "a\ufffdb"
    assert has_answer


def test_odd_indexes_go_where_the_general_path_puts_them() -> None:
    """A bool, float or list index is read as choice 0 by both paths, and never raises."""
    stream = _sse(
        chunk(delta(0, content="zero")),
        chunk(delta(1, content="one")),
        *(chunk({"index": index, "delta": {"content": f"-{index}"}}) for index in (True, 1.0, [0])),
    )
    completion, _, _ = fast_path(stream, [])
    assert [(choice.index, choice.text) for choice in completion.choices] == [
        (0, "zero-True-1.0-[0]"),
        (1, "one"),
    ]
    assert fast_path(stream, []) == general_path(stream)


def test_an_id_and_model_sent_late_are_kept() -> None:
    """An id and model first sent on a later content chunk are taken from it, as _chunk would."""
    first = {"object": "chat.completion.chunk", "choices": [delta(role="assistant", content="")]}
    later = chunk(delta(content="a"), id="late-id", model="late-model")
    completion, _, _ = fast_path(_sse(first, later), [])
    assert (completion.id, completion.model) == ("late-id", "late-model")


def test_tool_call_fragments_and_reasoning_on_the_fast_path() -> None:
    """Tool-call argument fragments and reasoning deltas on known choices rebuild exactly."""
    start = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}
    stream = (
        _sse(
            chunk(delta(role="assistant", content="")),
            chunk(delta(reasoning_content="think")),
            chunk(delta(tool_calls=[start])),
            *(
                chunk(delta(tool_calls=[{"index": 0, "function": {"arguments": piece}}]))
                for piece in ('{"a"', ": 1}")
            ),
            chunk(delta(finish="tool_calls")),
        )
        + b"data: [DONE]\n\n"
    )
    completion, has_reasoning, has_answer = fast_path(stream, [])
    assert completion.choices[0].reasoning == "think"
    assert [(call.id, call.name, call.arguments) for call in completion.choices[0].tool_calls] == [
        ("call_1", "f", '{"a": 1}')
    ]
    assert completion.complete
    assert has_reasoning
    assert has_answer


def test_events_after_done_are_ignored_within_one_read() -> None:
    """feed_many stops at [DONE] even when later events arrive in the same read."""
    stream = _sse(chunk(delta(content="a"))) + b"data: [DONE]\n\n" + _sse(chunk(delta(content="late")))
    acc = OpenAIChatAccumulator()
    acc.feed_many(SSEDecoder().feed_raw(stream))
    assert acc.is_done
    assert acc.result().choices[0].text == "a"


def test_non_string_content_and_refusal_are_ignored() -> None:
    """A number where text belongs is skipped on every path; result() used to raise on it."""
    stream = _sse(
        chunk(delta(role="assistant", content="a")),
        chunk(delta(content=5)),
        chunk(delta(content=5, refusal=7)),
        chunk(delta(content="b")),
    )
    completion, _, _ = fast_path(stream, [])
    assert completion.choices[0].text == "ab"
    assert completion.choices[0].refusal == ""
    assert fast_path(stream, []) == general_path(stream)
