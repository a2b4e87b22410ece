"""The openai-responses accumulator's fast path (TypedRun, msgspec) against its orjson path."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.wire.dialects.openai_responses import OpenAIResponsesAccumulator
from runner.wire.dialects.openai_responses_fast import decode_run, hot_decoder
from runner.wire.sse import SSEDecoder, TypedRun
from tests.wire.dialects.fastpath import (
    DUP,
    RAW,
    RAW_TOKENS,
    Signals,
    dump_with_placeholders,
    fed_event_by_event,
    fed_in_reads,
    fed_raw_in_reads,
)

# The shared RAW_TOKENS, more edge values, and a logprobs list as the Responses API sends one.
_RAW_TOKENS = [
    *RAW_TOKENS,
    b"1",
    b"[null]",
    b"-9223372036854775809",
    b'"a\x01"',
    b'"a\tb"',
    b'""',
    b'[{"token": "a", "logprob": -0.5, "bytes": [97], "top_logprobs": []}]',
]

_KINDS = [
    "response.output_text.delta",
    "response.output_text.delta",
    "response.output_text.delta",
    "response.function_call_arguments.delta",
    "response.reasoning_summary_text.delta",
    "response.reasoning_text.delta",
    "response.refusal.delta",
]
_text = st.text(max_size=5)
_INDEXES = ("output_index", "content_index", "summary_index", "sequence_number")
_ODD_KEYS = (*_INDEXES, "item_id", "delta", "logprobs", "obfuscation", "type", "annotations", "extra", DUP)
_small = st.sampled_from([0, 0, 0, 1, None, True, 1.5, "0", 2**64, RAW])


@st.composite
def _delta(draw: st.DrawFn, odd: bool) -> dict[str, Any]:
    """A delta event as a real stream sends it; ``odd``: with one odd value, key or field."""
    kind = draw(st.sampled_from(_KINDS))
    payload: dict[str, Any] = {"type": kind, "sequence_number": draw(st.integers(0, 99)), "item_id": "msg_1"}
    payload["output_index"] = draw(st.sampled_from([0, 0, 1]))
    payload["summary_index" if "summary" in kind else "content_index"] = draw(st.sampled_from([0, 0, 1]))
    payload["delta"] = draw(_text)
    if draw(st.booleans()):
        payload["logprobs"] = []
    if draw(st.booleans()):
        payload["obfuscation"] = "xyz"
    if odd:
        key = draw(st.sampled_from(_ODD_KEYS))
        if key in _INDEXES:
            payload[key] = draw(_small)
        elif key == DUP:
            payload[DUP] = "dup"
        else:
            payload[key] = draw(st.sampled_from([None, 5, "", [], "response.completed", RAW]))
    return payload


_others: st.SearchStrategy[dict[str, Any]] = st.sampled_from(
    [
        {"type": "response.created", "response": {"id": "r1", "model": "m"}},
        {"type": "response.output_item.added", "output_index": 0, "item": {"type": "message", "id": "msg_1"}},
        {
            "type": "response.output_item.added",
            "output_index": 1,
            "item": {"type": "function_call", "call_id": "c1", "name": "f", "arguments": ""},
        },
        {"type": "response.content_part.added", "output_index": 0, "content_index": 0},
        {"type": "response.output_text.done", "output_index": 0, "content_index": 0, "text": "done"},
        {"type": "response.function_call_arguments.done", "output_index": 1, "arguments": "{}"},
        {"type": "response.completed", "response": {"usage": {"input_tokens": 1, "output_tokens": 2}}},
        {"type": "error", "code": "server_error", "message": "boom"},
        {"type": "response.unknown_new_event", "x": 1},
        {"type": "response.completed"},
        {"delta": "no type"},
    ]
)


@st.composite
def _event(draw: st.DrawFn, odd_rate: int) -> bytes:
    """One SSE block: a delta with its own name; at ``odd_rate`` in 20, odd names, framing or data."""
    roll = draw(st.integers(0, 19)) if draw(st.integers(0, 19)) < odd_rate else 19
    payload: dict[str, Any] = draw(_others) if roll < 3 else draw(_delta(odd=roll == 9))
    data = dump_with_placeholders(payload, dup_key="delta", raw=draw(st.sampled_from(_RAW_TOKENS)))
    if roll == 3:
        data = data[: draw(st.integers(0, len(data)))]  # a cut payload: not JSON on its own
    if roll == 4:
        odd = [b"", b"[DONE]", b"[1]", b'{"type": "response.output_text.delta"}\t],[{}']
        data = draw(st.sampled_from(odd))
    name = payload.get("type") if isinstance(payload.get("type"), str) else "x"
    if roll == 5:
        name = draw(st.sampled_from(["", "message", "error", "response.output_text.delta", 'a"],["b']))
    lines = [b"event: " + str(name).encode(), b"data: " + data]
    if roll == 6:
        lines.insert(draw(st.integers(0, 2)), draw(st.sampled_from([b"id: 5", b": ping", b"retry: 10"])))
    if roll == 7 and b"," in data:
        # one payload on two data lines: joined by an LF, so not JSON as msgspec would read it
        cut = data.index(b",") + 1
        lines[1:] = [b"data: " + data[:cut], b"data: " + data[cut:]]
    if roll == 8:
        lines = [b"data: " + data]  # no event line: a message event
    return b"\n".join(lines) + b"\n\n"


@st.composite
def _stream(draw: st.DrawFn) -> bytes:
    """A message item, then deltas and other events: clean streams as often as odd ones."""
    odd_rate = draw(st.sampled_from([0, 0, 1, 3, 10, 20]))
    return _START + b"".join(draw(st.lists(_event(odd_rate), max_size=14)))


def general_path(body: bytes) -> Signals:
    """Every event of ``body`` decoded as text, one at a time, through the orjson path only."""
    return fed_event_by_event(OpenAIResponsesAccumulator(fast_path=False), body)


def fast_path(body: bytes, cuts: list[int]) -> Signals:
    """``body`` in reads split at ``cuts`` through feed_read (the attempt layer's way)."""
    return fed_in_reads(OpenAIResponsesAccumulator(), body, cuts)


_START = (  # (defined before use by _stream at draw time)
    b'event: response.output_item.added\ndata: {"type":"response.output_item.added","output_index":0,'
    b'"item":{"type":"message","id":"msg_1"}}\n\n'
)


@settings(max_examples=400, deadline=None)
@given(body=_stream(), data=st.data())
def test_fast_path_equals_the_orjson_path_for_any_split(body: bytes, data: st.DataObject) -> None:
    """Random event sequences (odd values, unknown fields, duplicate keys, cut payloads, odd
    names and framing), any split into reads: the same completion and signals as the orjson path."""
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(body)), max_size=6))))
    assert fast_path(body, cuts) == general_path(body)
    assert fed_raw_in_reads(OpenAIResponsesAccumulator(), body, cuts) == general_path(body)


@settings(max_examples=300, deadline=None)
@given(body=_stream())
def test_fast_path_equals_the_orjson_path_one_event_per_read(body: bytes) -> None:
    """Each event its own read (a server flushing each event): feed_read's path for them."""
    cuts = [end + 2 for end in range(len(body)) if body.startswith(b"\n\n", end)][:-1]
    assert fast_path(body, cuts) == general_path(body)


@settings(max_examples=300, deadline=None)
@given(events=st.lists(_event(0), max_size=12), odd=st.lists(_event(10), max_size=3))
def test_one_event_per_read_equals_the_orjson_path(events: list[bytes], odd: list[bytes]) -> None:
    """Each event its own read (the inline hot text delta of a TypedRun of one): the same completion
    and signals as the orjson path, odd events among them included."""
    stream = [_START, *events, *odd] if len(events) % 2 else [_START, *odd, *events]
    body = b"".join(stream)
    cuts = [sum(map(len, stream[: k + 1])) for k in range(len(stream))]
    assert fast_path(body, cuts) == general_path(body)


@settings(max_examples=200, deadline=None)
@given(body=_stream())
def test_whole_reads_take_the_run_path(body: bytes) -> None:
    """The stream as one read (one TypedRun when every block is two lines) gives the same answer."""
    assert fast_path(body, []) == general_path(body)


def _run(*payloads: bytes) -> TypedRun:
    body = b"".join(b"event: e\ndata: " + payload + b"\n\n" for payload in payloads)
    (run,) = SSEDecoder().feed_raw(body)
    assert isinstance(run, TypedRun)
    return run


DELTA = b'{"type":"response.output_text.delta","output_index":0,"content_index":0,"delta":"%s"}'


@pytest.mark.parametrize(
    "payloads",
    [
        # a payload cut in two across the joiner: each half alone is not JSON
        pytest.param(
            [b'{"type":"response.output_text.delta","delta":"a"', b'"item_id":"b"}'], id="object-split"
        ),
        pytest.param([b'{"type":"response.output_text.delta","logprobs":[', b"]}"], id="array-split"),
        pytest.param([b'{"type":"response.output_text.delta","delta":"a', b'b"}'], id="string-split"),
        # one payload holding two events' worth, another holding none
        pytest.param([DELTA % b"a" + b"\t],[" + DELTA % b"b", b""], id="two-in-one"),
        pytest.param([DELTA % b"a" + b"],[" + DELTA % b"b", DELTA % b"c"], id="joiner-inside"),
        pytest.param([DELTA % b"a", b" "], id="blank"),
    ],
)
def test_decode_run_refuses_what_is_not_one_delta_per_payload(payloads: list[bytes]) -> None:
    """A run whose payloads are not each one Delta is refused whole, however they would join up."""
    assert decode_run(_run(*payloads)) is None


def test_decode_run_reads_each_payload() -> None:
    """Each payload of a run is decoded on its own terms, in order."""
    decoded = decode_run(_run(DELTA % b"a", DELTA % b"\\u00fc", DELTA % b""))
    assert decoded is not None
    assert [event.delta for (event,) in decoded] == ["a", "\u00fc", ""]


def test_a_stream_whose_deltas_all_miss_stops_trying() -> None:
    """Deltas with a field msgspec does not know: the run path gives up after its budget of misses."""
    odd = b'{"type":"response.output_text.delta","output_index":0,"content_index":0,"delta":"x","new":1}'
    block = b"event: response.output_text.delta\ndata: " + odd + b"\n\n"
    acc = OpenAIResponsesAccumulator()
    for _ in range(40):
        acc.feed_many(SSEDecoder().feed_raw(block * 3))
    assert acc._fast_misses == 0  # (no public view: a budget spent is only speed)
    assert acc.result().choices[0].text == "x" * 120


@pytest.mark.parametrize("odd", [b"1.0", b"true"])
@pytest.mark.parametrize("fast", [True, False])
def test_an_index_equal_to_the_hot_one_but_no_int_names_its_own_part(odd: bytes, fast: bool) -> None:
    """A delta to output 1, then one whose output_index is 1.0 or true: the second reads as index 0
    (no int), as its handler has it, not as more of the part the first one made hot."""

    def delta(output: bytes, text: bytes) -> bytes:
        data = b'{"type":"response.output_text.delta","output_index":%s,"content_index":0,"delta":"%s"}'
        return b"event: response.output_text.delta\ndata: " + data % (output, text) + b"\n\n"

    body = _START + delta(b"1", b"a") + delta(odd, b"b") + delta(b"1", b"c")
    for cuts in ([], [len(_START), len(_START) + len(delta(b"1", b"a"))]):
        completion = fed_in_reads(OpenAIResponsesAccumulator(fast_path=fast), body, cuts)[0]
        assert completion.choices[0].text == "bac"
    assert general_path(body)[0].choices[0].text == "bac"


_HOT = b'{"type":"response.output_text.delta","output_index":0,"content_index":0,"delta":"a","logprobs":[]}'


@pytest.mark.parametrize(
    "odd",
    [
        pytest.param(_HOT.replace(b'"output_index":0', b'"output_index":1'), id="other-item"),
        pytest.param(_HOT.replace(b'"content_index":0', b'"content_index":1'), id="other-part"),
        pytest.param(_HOT.replace(b"output_text", b"refusal"), id="other-kind"),
        pytest.param(_HOT.replace(b'"delta":"a"', b'"delta":""'), id="empty-delta"),
        pytest.param(_HOT.replace(b'"output_index":0', b'"output_index":0.0'), id="float-index"),
        pytest.param(_HOT.replace(b'"output_index":0', b'"output_index":false'), id="bool-index"),
        pytest.param(_HOT.replace(b'"content_index":0,', b""), id="no-content-index"),
        pytest.param(_HOT.replace(b'"logprobs":[]', b'"logprobs":[],"new":1'), id="unknown-field"),
        pytest.param(_HOT.replace(b'"logprobs":[]', b'"logprobs":[null]'), id="logprobs"),
    ],
)
def test_the_hot_decoder_refuses_a_run_with_any_other_event(odd: bytes) -> None:
    """The hot part's decoder takes a run only when every event is a non-empty delta of its kind to
    its part, with no field Delta does not know: one other event and the whole run is refused
    (decode_run and the orjson path then read it)."""
    hot = hot_decoder("response.output_text.delta", 0, 0)
    assert hot is not None
    assert [event.delta for (event,) in hot(b"[[" + _run(_HOT, _HOT).datas + b"]]")] == ["a", "a"]
    with pytest.raises(ValueError, match="at `\\$\\[1\\]\\[0\\]"):
        hot(b"[[" + _run(_HOT, odd, _HOT).datas + b"]]")


def test_a_hot_part_without_indexes_takes_only_deltas_without_them() -> None:
    """Tool-call arguments name no content_index: null or absent is the hot part, 0 is not."""
    hot = hot_decoder("response.function_call_arguments.delta", 1, None)
    assert hot is not None
    args = b'{"type":"response.function_call_arguments.delta","output_index":1,%s"delta":"x"}'
    assert len(hot(b"[[" + _run(args % b"", args % b'"content_index":null,').datas + b"]]")) == 2
    with pytest.raises(ValueError, match="content_index"):
        hot(b"[[" + _run(args % b'"content_index":0,').datas + b"]]")


@pytest.mark.parametrize(
    "key",
    [("response.completed", 0, 0), (None, 0, 0), ("response.output_text.delta", 1.0, 0), ("x", 0, True)],
)
def test_no_hot_decoder_for_what_cannot_be_a_hot_part(key: tuple[object, object, object]) -> None:
    assert hot_decoder(*key) is None


def test_a_new_item_at_the_hot_index_takes_the_deltas_that_follow() -> None:
    """A hot run, then the item at its index replaced (output_item.added) and another run to the
    same indexes: the second run goes to the new item, as the orjson path has it, however cut."""

    def deltas(*texts: bytes) -> bytes:
        event = b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta",'
        data = b'"output_index":0,"content_index":0,"delta":"%s"}\n\n'
        return b"".join(event + data % text for text in texts)

    first = _START + deltas(b"a", b"b", b"c")
    body = first + _START + deltas(b"d", b"e", b"f")
    expected = general_path(body)
    assert expected[0].choices[0].text == "def"
    # (the last read: e and f, whole, after d made the same part of the new item hot)
    d_end = len(first + _START + deltas(b"d"))
    for cuts in ([len(_START) + 3, d_end], [len(_START), len(first), d_end], [len(_START) + 3], []):
        assert fast_path(body, cuts) == expected


def test_a_run_to_a_part_no_longer_hot_goes_to_that_part() -> None:
    """A run to content 0, one delta to content 1 (now hot), then a run to content 0 again: each
    delta goes to the part it names, as the orjson path has it (the hot decoder follows the hot
    part, never a part hot before)."""

    def deltas(content: int, *texts: bytes) -> bytes:
        event = b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta",'
        data = b'"output_index":0,"content_index":%d,"delta":"%s"}\n\n'
        return b"".join(event + data % (content, text) for text in texts)

    parts = [_START, deltas(0, b"a", b"b"), deltas(1, b"X"), deltas(0, b"c", b"d"), deltas(1, b"Y", b"Z")]
    body = b"".join(parts)
    expected = general_path(body)
    assert expected[0].choices[0].text == "abcdXYZ"
    each_part = [sum(map(len, parts[: k + 1])) for k in range(len(parts) - 1)]
    assert fast_path(body, each_part) == expected
