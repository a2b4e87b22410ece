"""The openai-chat accumulator's fast paths (raw bytes in, feed_many) against its general path."""

from __future__ import annotations

import json
import os
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.model import Completion
from runner.wire.dialects.openai_chat import OpenAIChatAccumulator
from runner.wire.dialects.openai_chat_fast import FAST_DECODE_MISSES, decode_chunk
from runner.wire.sse import SSEDecoder, decode_all
from tests.streams import chunk, delta
from tests.wire.dialects.fastpath import DUP, RAW, RAW_TOKENS, fed_event_by_event, fed_in_reads


def general_path(body: bytes) -> tuple[Completion, bool, bool]:
    """Every event of ``body``, decoded as text, one at a time through the general path only."""
    return fed_event_by_event(OpenAIChatAccumulator(fast_path=False), body)[:3]


def fast_path(
    body: bytes, cuts: list[int], misses: int = FAST_DECODE_MISSES
) -> tuple[Completion, bool, bool]:
    """``body`` in reads split at ``cuts``, through feed_raw and feed_many (the attempt layer's way).

    ``misses``: the msgspec fast path's budget (0: the orjson fast path only; a small budget runs
    out mid-stream, so both fast paths meet in one stream).
    """
    return fed_in_reads(OpenAIChatAccumulator(msgspec_misses=misses), body, cuts)[:3]


# Beyond the shared RAW_TOKENS: bools, exponents, Infinity, more lone surrogates and invalid UTF-8,
# raw control characters. Nesting accepted by both stays under 255 levels: deeper, orjson.dumps
# raises in the general path (error_from_payload, object arguments), a crash of its own, not this
# test's subject.
_RAW_TOKENS = [
    *RAW_TOKENS,
    b"1",
    b"1E2",
    b"false",
    b"-9223372036854775809",
    b"-1e400",
    b"1e308",
    b"1e-400",
    b"Infinity",
    b"-Infinity",
    b'"\\udc00"',
    b'"\\ud83d\\u0041"',
    b'"\\ufffe"',
    b'"\xc0\x80"',
    b'"\xf4\x90\x80\x80"',
    b'"a\x01"',
    b"[" * 200 + b"]" * 200,
    b'""',
    b'{"a": 1e400}',
]

_text = st.text(max_size=6)
_maybe_raw = st.one_of(_text, _text, st.just(RAW))
_index = st.sampled_from([0, 0, 0, 1, True, 1.0, None, [0], "0", 2**70, 2**63, -(2**63) - 1, RAW])
_fragment = st.fixed_dictionaries(
    {},
    optional={
        "index": st.sampled_from([0, 0, 1, None, True, 1.0, RAW]),
        "id": st.sampled_from(["call_1", "call_2", "", None, 5, RAW]),
        "type": st.sampled_from(["function", None, 3]),
        "function": st.one_of(
            st.none(),
            st.fixed_dictionaries(
                {},
                optional={
                    "name": st.sampled_from(["f", "g", "", None, 1, RAW]),
                    "arguments": st.one_of(_maybe_raw, st.just({"a": 1}), st.none()),
                },
            ),
        ),
        "x": st.just(1),
    },
)
_delta = st.one_of(
    _maybe_raw.map(lambda text: {"content": text}),
    _text.map(lambda text: {"role": "assistant", "content": text}),
    _text.map(lambda text: {"role": "assistant", "content": text, "refusal": None}),
    _maybe_raw.map(lambda text: {"reasoning_content": text}),
    st.tuples(st.sampled_from(["", None, "r", 0]), _maybe_raw).map(
        lambda pair: {"reasoning_content": pair[0], "reasoning": pair[1]}
    ),
    _maybe_raw.map(lambda text: {"tool_calls": [{"index": 0, "function": {"arguments": text}}]}),
    st.lists(_fragment, max_size=2).map(lambda calls: {"tool_calls": calls}),
    _text.map(lambda text: {"content": text, DUP: "dup"}),
    _text.map(lambda text: {DUP: "dup", "content": text}),
    st.sampled_from(
        [{}, None, "x", {"content": 5}, {"content": None}, {"refusal": "no"}, {"tool_calls": None}, {"x": 1}]
    ),
    # keys _delta reads that the Structs do not hold: each must miss the msgspec path
    st.sampled_from(
        [
            {"content": "c", "citations": ["u"]},
            {"search_results": [{"url": "u"}]},
            {"reasoning_steps": [{"thought": "t"}]},
            {"reasoning_details": [{"text": "d"}]},
            {"function_call": {"name": "f", "arguments": "{}"}},
            {"tool_calls": [{"index": 0, "function": {"arguments": "a", "extra": 1}, "extra": 2}]},
        ]
    ),
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
        choice["logprobs"] = draw(st.sampled_from([None, None, {}, RAW]))
    if draw(st.integers(0, 5)) == 0:
        choice[draw(st.sampled_from(["citations", "error", "x"]))] = ["c"]
    return choice


@st.composite
def _common_payload(draw: st.DrawFn) -> dict[str, Any]:
    # The shape of nearly every chunk of a real stream (the msgspec path's), any delta, and at most
    # one odd top-level value: the odd shapes of _payload alone rarely reach the fast paths.
    choice = {"index": draw(st.sampled_from([0, 0, 1])), "delta": draw(_delta), "finish_reason": None}
    if draw(st.booleans()):
        choice["logprobs"] = None
    payload: dict[str, Any] = {
        "id": draw(st.sampled_from(["c1", "c1", "", None])),
        "object": "chat.completion.chunk",
        "created": 1732201200,
        "model": draw(st.sampled_from(["m", "m", "", None])),
        "choices": [choice],
    }
    if draw(st.booleans()):
        payload["usage"] = None
    if draw(st.integers(0, 3)) == 0:
        key = draw(
            st.sampled_from(["id", "created", "obfuscation", "system_fingerprint", "usage", "provider"])
        )
        payload[key] = RAW
    return payload


@st.composite
def _payload(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 19))
    if kind == 0:
        return b"[DONE]"
    if kind == 1:
        return draw(st.sampled_from([b"not json", b"[1, 2]", b'"s"', b"{", b"\xef\xbb\xbf{}"]))
    if kind >= 10:
        payload = draw(_common_payload())
    else:
        payload = {"choices": draw(st.lists(_choice(), min_size=1, max_size=2))}
        for key, values in (
            ("object", ["chat.completion.chunk"] * 4 + ["", "error", 5, "absent"]),
            ("id", ["c1", "c2", "", None, "absent", RAW]),
            ("model", ["m", "", "absent"]),
            ("usage", ["absent", None, None, {}, {"prompt_tokens": 1}]),
            ("created", ["absent", 1732201200, 1.5, RAW]),
            ("system_fingerprint", ["absent", "fp", None]),
            ("obfuscation", ["absent", "xyz", RAW]),
        ):
            value = draw(st.sampled_from(values))
            if value != "absent":
                payload[key] = value
    if kind < 10 and draw(st.integers(0, 6)) == 0:
        payload[draw(st.sampled_from(["error", "x_groq", "citations", "search_results", "provider"]))] = {
            "usage": {}
        }
    raw = json.dumps(payload, ensure_ascii=False).encode()
    if kind % 10 == 2 and b'"content": "' in raw:  # invalid UTF-8 inside a content string
        raw = raw.replace(b'"content": "', b'"content": "\xff', 1)
    while f'"{RAW}"'.encode() in raw:
        raw = raw.replace(f'"{RAW}"'.encode(), draw(st.sampled_from(_RAW_TOKENS)), 1)
    if kind % 10 == 3:  # a duplicate key for any key (the last one wins in orjson)
        raw = raw.replace(b'"index"', b'"index": 7, "index"', 1).replace(
            b'"choices"', b'"choices": [], "choices"', 1
        )
    return raw.replace(f'"{DUP}"'.encode(), b'"content"')


@st.composite
def _stream(draw: st.DrawFn) -> bytes:
    parts = []
    for payload in draw(st.lists(_payload(), max_size=12)):
        event = draw(
            st.sampled_from([b"", b"", b"", b"", b"event: error\n", b"event: message\n", b"event: other\n"])
        )
        parts.append(event + b"data: " + payload + b"\n\n")
    return b"".join(parts)


# RUNNER_FAST_PATH_EXAMPLES=5000 for a longer local run.
_EXAMPLES = int(os.environ.get("RUNNER_FAST_PATH_EXAMPLES", "400"))


@pytest.mark.slow
@settings(max_examples=_EXAMPLES, deadline=None)
@given(body=_stream(), data=st.data())
def test_fast_paths_equal_the_general_path(body: bytes, data: st.DataObject) -> None:
    """Any chunk shapes, any split into reads: feed_many on raw bytes gives the general path's result."""
    cuts = sorted(data.draw(st.lists(st.integers(0, len(body)), max_size=10)))
    misses = data.draw(st.sampled_from([FAST_DECODE_MISSES, FAST_DECODE_MISSES, 0, 1, 2]))
    assert fast_path(body, cuts, misses) == general_path(body)


@pytest.mark.slow
@settings(max_examples=_EXAMPLES, deadline=None)
@given(
    fragments=st.lists(st.lists(_fragment, max_size=3), min_size=1, max_size=4),
    tokens=st.lists(st.sampled_from(_RAW_TOKENS), min_size=8, max_size=8),
)
def test_tool_call_fragments_equal_the_general_path(fragments: list[Any], tokens: list[bytes]) -> None:
    """Tool-call fragments of any shape, after a chunk without content (has_answer still false)."""
    first = chunk(delta(role="assistant", content=""))
    del first["id"], first["model"]  # the fast path must take them from a later chunk
    raw = _sse(first, *(chunk(delta(tool_calls=calls)) for calls in fragments))
    for token in tokens:
        raw = raw.replace(f'"{RAW}"'.encode(), token, 1)
    raw = raw.replace(f'"{RAW}"'.encode(), b'"x"')
    assert fast_path(raw, []) == general_path(raw)


@pytest.mark.slow
@settings(max_examples=max(200, _EXAMPLES // 2), deadline=None)
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


def _same_values(struct: Any, value: Any) -> bool:
    """A decoded Struct equals orjson's object: the same keys (an absent key is a null field), and
    the same values of the same types (1, 1.0 and True are all == but are not the same value)."""
    if isinstance(struct, msgspec.Struct):
        fields = struct.__struct_fields__
        return (
            type(value) is dict
            and set(value) <= set(fields)
            and all(_same_values(getattr(struct, name), value.get(name)) for name in fields)
        )
    if isinstance(struct, list):
        return (
            type(value) is list
            and len(struct) == len(value)
            and all(_same_values(a, b) for a, b in zip(struct, value, strict=True))
        )
    return type(struct) is type(value) and struct == value


# Each position a Struct field takes a value from, with the raw token to put there.
_POSITIONS = [
    b'{"id":%s,"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"a"}}]}',
    b'{"created":%s,"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"a"}}]}',
    b'{"obfuscation":%s,"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"a"}}]}',
    b'{"usage":%s,"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"a"}}]}',
    b'{"unknown":%s,"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"a"}}]}',
    b'{"object":"chat.completion.chunk","choices":[{"index":%s,"delta":{"content":"a"}}]}',
    b'{"object":"chat.completion.chunk","choices":[{"index":0,"unknown":%s,"delta":{"content":"a"}}]}',
    b'{"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"a","unknown":%s}}]}',
    b'{"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"tool_calls":[{"unknown":%s}]}}]}',
    b'{"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"tool_calls":[{"function":{"x":%s}}]}}]}',
    b'{"object":"chat.completion.chunk","choices":[{"index":0,"logprobs":%s,"delta":{"content":"a"}}]}',
    b'{"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":%s}}]}',
    b'{"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"a","content":%s}}]}',
    b'{"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":%s,"content":"a"}}]}',
    b'{"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"reasoning":%s}}]}',
    b'{"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"tool_calls":[{"index":%s}]}}]}',
    b'{"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"tool_calls":[{"id":%s}]}}]}',
    b'{"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"tool_calls":[{"function":%s}]}}]}',
    b'{"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"tool_calls":[{"function":{"arguments":%s}}]}}]}',
]


@pytest.mark.parametrize("position", _POSITIONS)
@pytest.mark.parametrize("token", _RAW_TOKENS, ids=repr)
def test_msgspec_accepts_nothing_orjson_reads_otherwise(position: bytes, token: bytes) -> None:
    """Whatever the fast path's msgspec decoder accepts, orjson accepts and reads as the same values."""
    data = position % token
    try:
        struct = decode_chunk(data)
    except ValueError:
        return  # a miss: the orjson path decides
    assert _same_values(struct, orjson.loads(data)), data


@pytest.mark.parametrize("position", _POSITIONS)
@pytest.mark.parametrize("token", _RAW_TOKENS, ids=repr)
def test_odd_values_give_the_general_paths_result(position: bytes, token: bytes) -> None:
    """Each odd value in each position, after a chunk that creates choice 0: the same result."""
    first = (
        b'data: {"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant"}}]}\n\n'
    )
    stream = first + b"data: " + position % token + b"\n\ndata: [DONE]\n\n"
    assert fast_path(stream, []) == general_path(stream)


def test_extras_on_a_full_choice_are_kept() -> None:
    """citations on a choice that has all four usual keys: kept by both paths (a Struct field it is not)."""
    citations = {
        "index": 0,
        "delta": {"content": "a"},
        "finish_reason": None,
        "logprobs": None,
        "citations": ["u"],
    }
    stream = _sse(chunk(delta(role="assistant", content="")), chunk(citations))
    completion, _, _ = fast_path(stream, [])
    assert completion.extras == {"citations": ["u"]}
    assert fast_path(stream, []) == general_path(stream)


def test_a_stream_of_unknown_shapes_stops_trying_msgspec() -> None:
    """A provider field on every chunk: msgspec misses FAST_DECODE_MISSES times, then is not tried."""
    chunks = [chunk(delta(role="assistant", content=""), provider="p")]
    chunks += [chunk(delta(content=str(i)), provider="p") for i in range(FAST_DECODE_MISSES * 2)]
    stream = _sse(*chunks)
    acc = OpenAIChatAccumulator()
    acc.feed_many(SSEDecoder().feed_raw(stream))
    assert acc.msgspec_misses == 0
    assert acc.result().choices[0].text == "".join(str(i) for i in range(FAST_DECODE_MISSES * 2))
    assert fast_path(stream, []) == general_path(stream)


def test_common_chunks_take_the_msgspec_path() -> None:
    """Content, reasoning and tool-call chunks of a known choice cost no miss (the budget is intact)."""
    start = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}
    chunks = [
        chunk(delta(role="assistant", content="", refusal=None), created=1, system_fingerprint="fp"),
        chunk(delta(content="a"), created=1, obfuscation="xy", usage=None),
        chunk({**delta(content="b"), "logprobs": None}),
        chunk(delta(reasoning_content="r")),
        chunk(delta(reasoning="s")),
        chunk(delta(tool_calls=[start])),
        chunk(delta(tool_calls=[{"index": 0, "function": {"arguments": "{}"}}])),
    ]
    acc = OpenAIChatAccumulator()
    acc.feed_many(SSEDecoder().feed_raw(_sse(*chunks)))
    assert acc.msgspec_misses == FAST_DECODE_MISSES - 1  # the first chunk: choice 0 did not exist yet
    built = acc.result().choices[0]
    assert (built.text, built.reasoning, built.tool_calls[0].arguments) == ("ab", "rs", "{}")


@pytest.mark.parametrize(
    "choice",
    [
        delta(content="c", citations=["u"]),
        delta(search_results=[{"url": "u"}]),
        delta(reasoning_steps=[{"thought": "t"}]),
        delta(reasoning_details=[{"text": "d"}]),
        delta(function_call={"name": "f", "arguments": "{}"}),
        delta(refusal="no"),
        delta(refusal=""),
        delta(refusal=5),
        delta(content=5),
        delta(content=""),
        delta(content=None),
        delta(reasoning_content="", reasoning="r"),
        delta(reasoning_content=None, reasoning="r"),
        delta(reasoning_content=0, reasoning="r"),
        delta(reasoning_content="a", reasoning="r"),
        delta(tool_calls=[{"index": 0, "function": None}]),
        delta(tool_calls=[{"index": 0, "function": {}}]),
        delta(tool_calls=[{"index": 0, "id": "", "function": {"name": ""}}]),
        delta(tool_calls=[{"function": {"arguments": "a", "x": 1}}]),
        delta(tool_calls=[{"function": {"arguments": {"a": 1}}}]),
        delta(tool_calls=[{"id": "call", "x": 1}]),
        delta(tool_calls=[]),
        {**delta(content="a"), "logprobs": {"content": []}},
        {**delta(content="a"), "citations": ["u"]},
        {**delta(content="a"), "x": 1},
        {"index": 0, "delta": {}},
        {"index": 0, "delta": None},
        {"delta": {"content": "a"}},
    ],
)
def test_each_delta_shape_gives_the_general_paths_result(choice: dict[str, Any]) -> None:
    """Every delta key _delta reads, each odd value, on a known choice: fast path == general path."""
    first = chunk(delta(role="assistant", content=""))
    del first["id"], first["model"]
    for later in ({}, {"model": ""}, {"id": None}):
        stream = _sse(first, chunk(choice, **later)) + b"data: [DONE]\n\n"
        assert fast_path(stream, []) == general_path(stream)
