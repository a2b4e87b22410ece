"""The gemini accumulator's msgspec fast path (a read's events in one call) against its orjson path."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.wire.dialects.gemini import GeminiAccumulator
from runner.wire.dialects.gemini_fast import decode_events
from tests.wire.dialects.fastpath import (
    DUP,
    RAW,
    RAW_TOKENS,
    Signals,
    dump_with_placeholders,
    fed_event_by_event,
    fed_in_reads,
)

_RAW_TOKENS = [
    *RAW_TOKENS,
    b"[[]]",
    b'"a\tb"',
    b'[{"modality": "TEXT", "tokenCount": 3}]',
]

_text = st.text(max_size=5)


@st.composite
def _part(draw: st.DrawFn, odd: bool) -> dict[str, Any]:
    part: dict[str, Any] = {"text": draw(_text)}
    if draw(st.integers(0, 3)) == 0:
        part["thought"] = draw(st.sampled_from([True, True, False]))
    if draw(st.integers(0, 5)) == 0:
        part["thoughtSignature"] = draw(st.sampled_from(["sig", ""]))
    if odd:
        key = draw(st.sampled_from(["text", "thought", "thoughtSignature", "functionCall", DUP]))
        part[key] = draw(st.sampled_from([None, 1, "", True, {"name": "f", "args": {}}, RAW, "dup"]))
    return part


@st.composite
def _response(draw: st.DrawFn, odd: bool) -> dict[str, Any]:
    """A GenerateContentResponse as Gemini streams it; ``odd``: one odd value or key somewhere."""
    where = draw(st.sampled_from(["part", "candidate", "usage", "top"])) if odd else ""
    parts = draw(st.lists(_part(odd=where == "part"), max_size=2))
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
    if draw(st.booleans()):
        candidate["index"] = draw(st.sampled_from([0, 0, 1]))
    if draw(st.integers(0, 5)) == 0:
        candidate["finishReason"] = draw(st.sampled_from(["STOP", "MAX_TOKENS", "SAFETY", ""]))
    if where == "candidate":
        key = draw(st.sampled_from(["index", "content", "finishReason", "safetyRatings", "citationMetadata"]))
        candidate[key] = draw(st.sampled_from([None, True, 1.0, 2**64, "0", {}, {"parts": None}, RAW]))
    usage: dict[str, Any] = {"promptTokenCount": 9, "candidatesTokenCount": draw(st.integers(0, 99))}
    usage["totalTokenCount"] = 120
    if draw(st.booleans()):
        usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": 9}]
    if draw(st.booleans()):
        usage["thoughtsTokenCount"] = 4
    if where == "usage":
        key = draw(st.sampled_from(["promptTokenCount", "trafficType", "cachedContentTokenCount", "x"]))
        usage[key] = draw(st.sampled_from([None, 1.5, "ON_DEMAND", [], [1], [{"a": {}}], RAW, 2**63]))
    response: dict[str, Any] = {"candidates": [candidate], "usageMetadata": usage}
    response["modelVersion"] = draw(st.sampled_from(["gemini-2.5-flash", "", "m2"]))
    response["responseId"] = draw(st.sampled_from(["r1", "", "r2"]))
    if where == "top":
        key = draw(st.sampled_from(["candidates", "usageMetadata", "responseId", "promptFeedback", "error"]))
        response[key] = draw(
            st.sampled_from([None, [], 5, "", {"blockReason": "SAFETY"}, {"code": 503}, RAW])
        )
    return response


@st.composite
def _event(draw: st.DrawFn, odd_rate: int) -> bytes:
    """One CRLF event: a clean response; at ``odd_rate`` in 20 an odd one, odd bytes or framing."""
    roll = draw(st.integers(0, 9)) if draw(st.integers(0, 19)) < odd_rate else 9
    response = draw(_response(odd=roll == 0))
    data = dump_with_placeholders(response, dup_key="text", raw=draw(st.sampled_from(_RAW_TOKENS)))
    if roll == 1:
        data = data[: draw(st.integers(0, len(data)))]  # cut: not JSON on its own
    if roll == 2:
        data = draw(st.sampled_from([b"", b"[]", b"[{}]", b"{}\t],[{}", b'{"error": {"code": 503}}']))
    if roll == 3 and b"," in data:
        cut = data.index(b",") + 1
        return b"data: " + data[:cut] + b"\r\ndata: " + data[cut:] + b"\r\n\r\n"
    if roll == 4:
        return b"event: x\r\ndata: " + data + b"\r\n\r\n"
    if roll == 5:
        return b": keep-alive\r\n\r\n"
    return b"data: " + data + b"\r\n\r\n"


@st.composite
def _stream(draw: st.DrawFn) -> bytes:
    odd_rate = draw(st.sampled_from([0, 0, 1, 3, 10, 20]))
    return b"".join(draw(st.lists(_event(odd_rate), max_size=12)))


def general_path(body: bytes) -> Signals:
    """Every event of ``body`` decoded as text, one at a time, through the orjson path only."""
    return fed_event_by_event(GeminiAccumulator(fast_path=False), body)


def fast_path(body: bytes, cuts: list[int]) -> Signals:
    """``body`` in reads split at ``cuts`` through feed_raw and feed_many (the attempt layer's way)."""
    return fed_in_reads(GeminiAccumulator(), body, cuts)


@settings(max_examples=400, deadline=None)
@given(body=_stream(), data=st.data())
def test_fast_path_equals_the_orjson_path_for_any_split(body: bytes, data: st.DataObject) -> None:
    """Random streams (odd values, unknown keys, duplicate keys, cut payloads, odd framing), any
    split into reads: the same completion (usage dict included) and signals as the orjson path."""
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(body)), max_size=6))))
    assert fast_path(body, cuts) == general_path(body)


@settings(max_examples=300, deadline=None)
@given(events=st.lists(_event(0), min_size=1, max_size=12), odd=st.lists(_event(10), max_size=3))
def test_one_event_per_read_equals_the_orjson_path(events: list[bytes], odd: list[bytes]) -> None:
    """Each event its own read (feed_many's inline text part, a candidate's first part, a finish):
    the same completion and signals as the orjson path, odd events among them included."""
    stream = [*events, *odd] if len(events) % 2 else [*odd, *events]
    body = b"".join(stream)
    cuts = [sum(map(len, stream[: k + 1])) for k in range(len(stream))]
    assert fast_path(body, cuts) == general_path(body)


@settings(max_examples=200, deadline=None)
@given(body=_stream())
def test_whole_reads_decode_in_one_call(body: bytes) -> None:
    """The stream as one read: all of its events in one msgspec call, or none of them."""
    assert fast_path(body, []) == general_path(body)


R = b'{"candidates":[{"content":{"parts":[{"text":"%s"}]}}]}'


@pytest.mark.parametrize(
    "events",
    [
        pytest.param([b'{"candidates":[{"content":{"parts":[{"text":"a"}', b"]}}]}"], id="object-split"),
        pytest.param([b'{"candidates":[', b"]}"], id="array-split"),
        pytest.param([b'{"responseId":"a', b'b"}'], id="string-split"),
        pytest.param([R % b"a" + b"\t],[" + R % b"b", b""], id="two-in-one"),
        pytest.param([R % b"a" + b"],[" + R % b"b", R % b"c"], id="joiner-inside"),
        pytest.param([R % b"a", b" "], id="blank"),
    ],
)
def test_decode_events_refuses_what_is_not_one_response_per_event(events: list[bytes]) -> None:
    """Payloads that are not each one Response are refused whole, however they would join up."""
    assert decode_events(events) is None


def test_the_usage_dict_is_kept_as_sent() -> None:
    """usageMetadata read by the fast path comes out as the dict orjson gives, in the order sent."""
    payload = b'{"usageMetadata":{"totalTokenCount":3,"promptTokenCount":1,"trafficType":"ON_DEMAND"}}'
    assert decode_events([payload]) is not None  # (the fast path takes it)
    for reads in ([payload], [payload, payload]):
        acc = GeminiAccumulator()
        acc.feed_many(reads)
        usage = acc.result().usage
        assert usage is not None
        assert list(usage.raw.items()) == [
            ("totalTokenCount", 3),
            ("promptTokenCount", 1),
            ("trafficType", "ON_DEMAND"),
        ]


def _usage_event(count: int, *, odd: bool = False) -> bytes:
    """A text event whose usageMetadata the Struct knows, or (odd) holds a key it does not."""
    extra = ',"new":1' if odd else ""
    usage = f'{{"promptTokenCount":1,"candidatesTokenCount":{count}{extra}}}'.encode()
    text = b'{"candidates":[{"content":{"parts":[{"text":"x"}]},"index":0}],"usageMetadata":'
    return b"data: " + text + usage + b"}\r\n\r\n"


@pytest.mark.parametrize(
    "counts",
    [
        pytest.param([(1, False), (2, True), (3, False)], id="fast-orjson-fast"),
        pytest.param([(1, True), (2, False)], id="orjson-fast"),
        pytest.param([(1, False), (2, True)], id="fast-orjson"),
    ],
)
def test_the_last_usage_wins_whichever_path_read_it(counts: list[tuple[int, bool]]) -> None:
    """usageMetadata read by msgspec (kept as its payload) or by orjson (an unknown usage key): the
    last one sent is the result's, one event per read and all in one read alike."""
    events = [_usage_event(count, odd=odd) for count, odd in counts]
    body = b"".join(events)
    expected = general_path(body)
    assert expected[0].usage is not None
    assert expected[0].usage.raw["candidatesTokenCount"] == counts[-1][0]
    cuts = [sum(map(len, events[: k + 1])) for k in range(len(events))]
    assert fast_path(body, cuts) == expected
    assert fast_path(body, []) == expected
