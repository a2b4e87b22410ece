"""Tests of the sans-IO SSE decoder against WHATWG §9.2 and PROTOCOLS.md edge cases 1-12."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.errors import ResponseTooLargeError
from runner.wire.sse import (
    RawEvent,
    ServerSentEvent,
    SSEDecoder,
    TypedRun,
    as_event,
    decode_all,
    single_events,
)


def feed_in_pieces(body: bytes, cuts: list[int]) -> tuple[list[ServerSentEvent], SSEDecoder]:
    """Feed ``body`` split at ``cuts`` (sorted offsets), then close; return events and decoder."""
    decoder = SSEDecoder()
    events: list[ServerSentEvent] = []
    start = 0
    for cut in [*sorted(set(cuts)), len(body)]:
        events.extend(decoder.feed(body[start:cut]))
        start = cut
    events.extend(decoder.close())
    return events, decoder


def datas(body: bytes) -> list[str]:
    """The data of every event decoded from ``body`` in one read."""
    return [event.data for event in decode_all(body)]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(b"data: YHOO\ndata: +2\ndata: 10\n\n", ["YHOO\n+2\n10"], id="whatwg-multiline"),
        pytest.param(b"data\n\n", [""], id="bare-data-line-fires-empty"),
        pytest.param(b"data\ndata\n\n", ["\n"], id="two-bare-data-lines"),
        pytest.param(b"data:test\n\ndata: test\n\n", ["test", "test"], id="space-optional"),
        pytest.param(b"data:  two\n\n", [" two"], id="only-one-space-stripped"),
        pytest.param(b"data: x\n", [], id="unterminated-last-event-dropped"),
        pytest.param(b"data: a\r\n\r\ndata: b\r\rdata: c\n\n", ["a", "b", "c"], id="cr-lf-crlf"),
        pytest.param(b": keep-alive\n\ndata: x\n\n", ["x"], id="comment-skipped"),
        pytest.param(b"event: ping\n\nretry: 3000\n\nid: 7\n\n", [], id="no-data-no-event"),
        pytest.param(b"DATA: x\n\n", [], id="field-names-case-sensitive"),
        pytest.param(b"\xef\xbb\xbfdata: first\n\n", ["first"], id="bom-stripped"),
        pytest.param(b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\n", [], id="only-one-bom-stripped"),
        pytest.param(b"data: \xff\xfeok\n\n", ["\ufffd\ufffdok"], id="invalid-utf8-replaced"),
        pytest.param(
            'data: {"t":"a\u2028b\u2029c\u0085d"}\n\n'.encode(),
            ['{"t":"a\u2028b\u2029c\u0085d"}'],
            id="unicode-separators-never-split",
        ),
        pytest.param(
            b'data: {\ndata: "foo":\ndata: \ndata:\ndata: true}\n\n', ['{\n"foo":\n\n\ntrue}'], id="sdk-multi"
        ),
        pytest.param(b'data: {"a":"x\\n\\ny"}\n\n', ['{"a":"x\\n\\ny"}'], id="escaped-newlines-not-boundary"),
    ],
)
def test_spec_examples(body: bytes, expected: list[str]) -> None:
    """Each WHATWG / SDK-suite example decodes to exactly the listed event data."""
    assert datas(body) == expected


def test_event_type_and_sticky_id() -> None:
    """The event name resets per event; the id is sticky and extra blank lines fire nothing."""
    events = decode_all(b"event: content_block_delta\nid: 5\ndata: a\n\n\n\ndata: b\n\n")
    assert events == [
        ServerSentEvent("a", "content_block_delta", "5", None),
        ServerSentEvent("b", "message", "5", None),
    ]


def test_id_with_nul_ignored_and_bare_id_resets() -> None:
    """An id holding NUL is ignored; a bare ``id`` line resets the id to empty."""
    events = decode_all(b"id: 1\ndata: a\n\nid: x\x00y\ndata: b\n\nid\ndata: c\n\n")
    assert [e.id for e in events] == ["1", "1", ""]


def test_retry_digits_only() -> None:
    """``retry`` takes ASCII digits only; ``12a`` and ``+5`` are ignored."""
    decoder = SSEDecoder()
    decoder.feed(b"retry: 1500\n\nretry: 12a\n\nretry: +5\n\n")
    assert decoder.retry == 1500


def test_comments_are_counted() -> None:
    """Heartbeat comments are skipped but counted, because they prove the connection is alive."""
    decoder = SSEDecoder()
    events = decoder.feed(b": heartbeat\n\n: ping\ndata: x\n\n:\n")
    assert [e.data for e in events] == ["x"]
    assert decoder.comments == 3


def test_openai_framing_fixture_byte_by_byte() -> None:
    """The openai-python framing case: sticky id, LF+lone-CR, and a dropped unfinished tail."""
    body = "id:one\r\ndata:известни\r\n\ndata:two\n\rdata:unfinished".encode()
    events, _ = feed_in_pieces(body, list(range(1, len(body))))
    assert [(e.data, e.id) for e in events] == [("известни", "one"), ("two", "one")]


@pytest.mark.parametrize("ending", [b"\n", b"\r", b"\r\n"], ids=["lf", "cr", "crlf"])
def test_every_split_offset_gives_one_event(ending: bytes) -> None:
    """``data:ok`` plus two line endings gives one event at every split offset, with empty reads."""
    body = b"data:ok" + ending + ending
    for cut in range(len(body) + 1):
        decoder = SSEDecoder()
        events = decoder.feed(body[:cut]) + decoder.feed(b"") + decoder.feed(body[cut:])
        events += decoder.close()
        assert [e.data for e in events] == ["ok"], cut


def test_crlf_split_across_reads_is_one_line_ending() -> None:
    """A CR closing one read and an LF opening the next make one line ending, not two."""
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\ndata: b\r\n\r") == [ServerSentEvent("a\nb")]
    assert decoder.feed(b"\ndata: c\n\n") == [ServerSentEvent("c")]


def test_bom_split_across_reads() -> None:
    """A BOM whose three bytes arrive in three reads is still stripped once."""
    events, _ = feed_in_pieces(b"\xef\xbb\xbfdata: x\n\n", [1, 2, 3])
    assert [e.data for e in events] == ["x"]


@pytest.mark.slow
def test_large_event_has_no_size_limit() -> None:
    """A 4 MiB event in 4093-byte pieces comes out whole (legitimate multi-MiB events exist)."""
    payload = ("x" * 1000 + "ж\u2028") * 4000
    body = f"data: {payload}\r\n\r\n".encode()
    events, _ = feed_in_pieces(body, list(range(4093, len(body), 4093)))
    assert [e.data for e in events] == [payload]


def test_many_events_in_one_read() -> None:
    """2000 complete events in one read give 2000 events in order."""
    body = b"".join(b"data: %d\n\n" % i for i in range(2000))
    assert datas(body) == [str(i) for i in range(2000)]


def test_close_resets_state() -> None:
    """After close, a half-built event is forgotten and the decoder starts clean."""
    decoder = SSEDecoder()
    decoder.feed(b"data: half\n")
    assert decoder.close() == []
    assert decoder.feed(b"data: new\n\n") == [ServerSentEvent("new")]


# -- properties --------------------------------------------------------------------------------

_line_text = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n"), max_size=20
)
_field_line = st.one_of(
    _line_text.map(lambda s: "data: " + s),
    _line_text.map(lambda s: "data:" + s),
    _line_text.map(lambda s: ": " + s),
    _line_text.map(lambda s: "event: " + s),
    st.just("id: 42"),
    st.just("retry: 100"),
    st.just(""),
    st.just("data"),
)
_streams = st.lists(_field_line, max_size=30)


def _join(lines: list[str], ending: str) -> bytes:
    return "".join(line + ending for line in lines).encode()


@settings(max_examples=300, deadline=None)
@given(lines=_streams, data=st.data())
def test_any_split_gives_the_same_events(lines: list[str], data: st.DataObject) -> None:
    """For any split of a stream's bytes into reads (down to one byte), the events are identical."""
    body = _join(lines, "\n")
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=len(body) + 1))
    events, _ = feed_in_pieces(body, cuts)
    assert events == decode_all(body)


@settings(max_examples=200, deadline=None)
@given(lines=_streams)
def test_cr_lf_crlf_are_equivalent(lines: list[str]) -> None:
    """The same lines with CR, LF or CRLF endings decode to the same events."""
    expected = decode_all(_join(lines, "\n"))
    assert decode_all(_join(lines, "\r")) == expected
    assert decode_all(_join(lines, "\r\n")) == expected


@settings(max_examples=200, deadline=None)
@given(payloads=st.lists(st.text(alphabet=st.characters(blacklist_categories=["Cs"])), max_size=10))
def test_encode_then_decode_round_trips(payloads: list[str]) -> None:
    """Any text, written as SSE data lines (split at its own line breaks), decodes back exactly."""
    body = b""
    expected = []
    for text in payloads:
        normalized = text.replace("\r\n", "\n").replace("\r", "\n")
        body += "".join(f"data: {line}\n" for line in normalized.split("\n")).encode() + b"\n"
        expected.append(normalized)
    assert datas(body) == expected


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=200), data=st.data())
def test_arbitrary_bytes_never_raise(body: bytes, data: st.DataObject) -> None:
    """Arbitrary bytes in arbitrary reads never raise, and the split never changes the result."""
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=8))
    events, _ = feed_in_pieces(body, cuts)
    assert events == decode_all(body)


# -- feed_raw: message events as raw bytes --------------------------------------------------------


def feed_raw_in_pieces(body: bytes, cuts: list[int]) -> list[RawEvent]:
    """Feed ``body`` to ``feed_raw`` split at ``cuts`` (offsets), then close; return the items."""
    decoder = SSEDecoder()
    items: list[RawEvent] = []
    start = 0
    for cut in [*sorted(set(cuts)), len(body)]:
        items.extend(decoder.feed_raw(body[start:cut]))
        start = cut
    items.extend(decoder.close())
    return items


def same_events(raw_items: list[RawEvent], events: list[ServerSentEvent]) -> bool:
    """feed_raw's items say what feed's events say: bytes exactly for message events, same data.

    A TypedRun stands for its events (TypedRun.events() is checked against feed here too).
    """
    items = single_events(raw_items)
    return len(items) == len(events) and all(
        isinstance(item, bytes) == (event.event == "message") and as_event(item)[:2] == event[:2]
        for item, event in zip(items, events, strict=True)
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(b"data: a\n\ndata: b\n\n", [b"a", b"b"], id="whole-read-split"),
        pytest.param(
            b"data: a\n\ndata: b\ndata: c\n\ndata: d\n\n", [b"a", b"b\nc", b"d"], id="multiline-mid-read"
        ),
        pytest.param(b"data: a\n\n: ping\n\ndata: b\n\n", [b"a", b"b"], id="comment-mid-read"),
        pytest.param(b"data: a\n\ndata: \n\ndata:\n\n", [b"a", b"", b""], id="empty-data"),
        pytest.param(b"data: a\n\n\n\ndata: b\n\n", [b"a", b"b"], id="extra-blank-lines"),
        pytest.param(b"event: message\ndata: a\n\n", [b"a"], id="named-message-is-raw"),
        pytest.param(b"event: error\ndata: a\n\n", [ServerSentEvent("a", "error")], id="named-event"),
        pytest.param(b"data: \xff\n\n", [b"\xff"], id="invalid-utf8-left-to-the-reader"),
        pytest.param(b"data: a\r\n\r\ndata: b\n\n", [b"a", b"b"], id="crlf"),
        pytest.param(b"data: a\n\ndata: b\n\ndata: partial", [b"a", b"b"], id="tail-kept"),
    ],
)
def test_feed_raw_examples(body: bytes, expected: list[RawEvent]) -> None:
    """feed_raw hands message data over as bytes, other events as ServerSentEvent (or in a TypedRun)."""
    assert single_events(feed_raw_in_pieces(body, [])) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            b"event: a\ndata: 1\n\n", [TypedRun(b"event: a\ndata: 1\n\n", 1, "", None, b"1")], id="one"
        ),
        pytest.param(
            b"event: a\ndata: 1\n\nevent: b\ndata: 2\n\nevent: c\nda",
            [TypedRun(b"event: a\ndata: 1\n\nevent: b\ndata: 2\n\n", 2, "", None, b"1\t],[2")],
            id="two-and-a-tail",
        ),
        pytest.param(
            b"event: a\ndata: 1\n\nevent: b\n\nevent: c\ndata: 2\ndata: 3\n\n",
            [ServerSentEvent("1", "a"), ServerSentEvent("2\n3", "c")],
            id="a-block-without-data-and-one-with-two-are-no-run",
        ),
        pytest.param(
            b"event: a\ndata: 1\n\nid: 7\nevent: b\ndata: 2\n\n",
            [ServerSentEvent("1", "a"), ServerSentEvent("2", "b", "7")],
            id="an-id-line-is-no-run",
        ),
        pytest.param(
            b"event: a\ndata: 1\n\n: ping\n\nevent: b\ndata: 2\n\n",
            [ServerSentEvent("1", "a"), ServerSentEvent("2", "b")],
            id="a-comment-is-no-run",
        ),
    ],
)
def test_feed_raw_typed_runs(body: bytes, expected: list[RawEvent]) -> None:
    """A read's whole `event:` + `data:` blocks come out as one TypedRun; anything else in them, not."""
    items = feed_raw_in_pieces(body, [])
    assert items == expected
    assert single_events(items) == single_events(expected)
    assert [as_event(item)[:2] for item in single_events(items)] == [event[:2] for event in decode_all(body)]


def test_feed_keeps_the_id_of_each_event_in_a_split_read() -> None:
    """An id line between two simple events of one read applies from the second one on."""
    events = decode_all(b"data: a\n\nid: 5\ndata: b\n\ndata: c\n\n")
    assert [(event.data, event.id) for event in events] == [("a", ""), ("b", "5"), ("c", "5")]


@settings(max_examples=300, deadline=None)
@given(lines=_streams, data=st.data())
def test_feed_raw_agrees_with_feed_for_any_split(lines: list[str], data: st.DataObject) -> None:
    """For any stream and any split, feed_raw's items are feed's events (data, type) in order."""
    body = _join(lines, data.draw(st.sampled_from(["\n", "\r\n", "\r"])))
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=len(body) + 1))
    assert same_events(feed_raw_in_pieces(body, cuts), decode_all(body))


@settings(max_examples=300, deadline=None)
@given(
    events=st.lists(
        st.one_of(
            st.binary(max_size=30).map(lambda data: b"data: " + data.replace(b"\n", b"").replace(b"\r", b"")),
            st.sampled_from([b": ping", b"id: 1", b"event: x", b"data", b"data:x", b"data: a\ndata: b"]),
        ),
        max_size=12,
    ),
    data=st.data(),
)
def test_feed_raw_fast_paths_agree_with_feed(events: list[bytes], data: st.DataObject) -> None:
    """Mostly single-line data events (the fast paths), any bytes, any split: same as feed."""
    body = b"".join(event + b"\n\n" for event in events)
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=8))
    assert same_events(feed_raw_in_pieces(body, cuts), decode_all(body))


_typed_block = st.one_of(
    st.builds(
        lambda name, data: b"event: " + name + b"\ndata: " + data + b"\n\n",
        st.sampled_from([b"response.output_text.delta", b"e", b"", b"message"]),
        st.binary(max_size=30).map(lambda data: data.replace(b"\n", b"").replace(b"\r", b"")),
    ),
    st.sampled_from(
        [
            b"event: e\ndata: a\ndata: b\n\n",
            b"event: e\nid: 7\ndata: x\n\n",
            b"event: e\n: ping\ndata: x\n\n",
            b"event: e\nretry: 5\ndata: x\n\n",
            b"event: e\r\ndata: x\r\n\r\n",
            b"event: e\rdata: x\r\r",
            b"event: e\n\n",
            b"data: x\n\n",
            b"event: e\ndata: x\n\n\n",
            b"event: e\ndata:x\n\n",
        ]
    ),
)


@settings(max_examples=400, deadline=None)
@given(blocks=st.lists(_typed_block, max_size=14), data=st.data())
def test_feed_raw_typed_reads_cut_anywhere_agree_with_feed(blocks: list[bytes], data: st.DataObject) -> None:
    """Typed blocks (mostly two lines; odd ones: more data lines, id, retry, comments, CR and CRLF
    endings) in reads cut anywhere, through the path for a read that goes on with a data line whose
    event line came in the read before: the same events as feed."""
    body = b"".join(blocks)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(body)), max_size=10)))
    assert same_events(feed_raw_in_pieces(body, cuts), decode_all(body))


def test_a_read_that_goes_on_with_a_data_line_is_one_typed_run() -> None:
    """A read that starts inside a data line whose event line came before it: one TypedRun of the
    blocks it completes, the event line it ends in carried to the next read."""
    block = b'event: response.output_text.delta\ndata: {"delta":"x"}\n\n'
    body = block * 3
    cut = len(block) + 40  # inside the second block's data line
    decoder = SSEDecoder()
    first = decoder.feed_raw(body[:cut])
    second = decoder.feed_raw(body[cut : len(body) - 10])
    assert [type(item) for item in (*first, *second)] == [TypedRun, TypedRun]
    assert [run.blocks for run in (*first, *second) if isinstance(run, TypedRun)] == [1, 1]
    assert same_events([*first, *second, *decoder.feed_raw(body[len(body) - 10 :])], decode_all(body))


_crlf_block = st.one_of(
    st.binary(max_size=30).map(
        lambda data: b"data: " + data.replace(b"\n", b"").replace(b"\r", b"") + b"\r\n\r\n"
    ),
    st.sampled_from(
        [
            b"data: a\r\ndata: b\r\n\r\n",
            b": ping\r\n\r\n",
            b"id: 1\r\ndata: x\r\n\r\n",
            b"event: e\r\ndata: x\r\n\r\n",
            b"data: x\r\r",
            b"data: x\n\n",
            b"data: x\r\n\n",
            b"data:x\r\n\r\n",
            b"\r\n",
        ]
    ),
)


@settings(max_examples=400, deadline=None)
@given(blocks=st.lists(_crlf_block, max_size=14), data=st.data())
def test_feed_raw_crlf_reads_cut_anywhere_agree_with_feed(blocks: list[bytes], data: st.DataObject) -> None:
    """CRLF events (mostly one data line; odd ones: more lines, comments, id, event, CR-only and
    LF endings) in reads cut anywhere, a CRLF split across two reads included, through the path
    for a read that goes on with a data line: the same events as feed."""
    body = b"".join(blocks)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(body)), max_size=10)))
    assert same_events(feed_raw_in_pieces(body, cuts), decode_all(body))


# One read that is (nearly) one whole event: feed_raw's single-read fast paths and their near misses.
_OPENINGS = [
    b"data: ",
    b"data:",
    b"data:  ",
    b"event: e\ndata: ",
    b"event: \ndata: ",
    b"event:e\ndata: ",
    b"event: e\ndata:",
    b"event: e\nid: 1\ndata: ",
    b"event: e\rdata: ",
    b"event: a\ndata: b\nevent: c\ndata: ",
    b"event: e\ndata: x\ndata: ",
    b"id: 1\ndata: ",
]
_ENDINGS = [b"\n\n", b"\r\n\r\n", b"\r\n\n", b"\n\r\n", b"\r\r", b"\n", b"\r\n", b"", b"\n\n\n"]
_one_read = st.builds(
    lambda opening, data, ending: opening + data + ending,
    st.sampled_from(_OPENINGS),
    st.one_of(
        st.binary(max_size=12),
        st.sampled_from([b"{}", b"a\rb", b"a\nb", b"\r", b"\n", b"\ndata: x", b"\r\n", b"x\r\n\r\ndata: y"]),
    ),
    st.sampled_from(_ENDINGS),
)


@settings(max_examples=500, deadline=None)
@given(reads=st.lists(_one_read, max_size=6))
def test_feed_raw_one_event_per_read_agrees_with_feed(reads: list[bytes]) -> None:
    """Reads of one event each (LF, CRLF and typed), and near misses of those shapes, read one by
    one: feed_raw's single-read fast paths give feed's events."""
    body = b"".join(reads)
    cuts = [sum(map(len, reads[: k + 1])) for k in range(len(reads))]
    assert same_events(feed_raw_in_pieces(body, cuts), decode_all(body))


@pytest.mark.parametrize(
    ("read", "expected"),
    [
        pytest.param(b"data: x\n\n", [b"x"], id="lf"),
        pytest.param(b"data: \n\n", [b""], id="lf-empty"),
        pytest.param(b"data: x\r\n\r\n", [b"x"], id="crlf"),
        pytest.param(b"data: \r\n\r\n", [b""], id="crlf-empty"),
        pytest.param(
            b"event: e\ndata: x\n\n", [TypedRun(b"event: e\ndata: x\n\n", 1, "", None, b"x")], id="typed"
        ),
        pytest.param(
            b"event: e\ndata: \n\n", [TypedRun(b"event: e\ndata: \n\n", 1, "", None, b"")], id="typed-empty"
        ),
    ],
)
def test_feed_raw_single_read_shapes(read: bytes, expected: list[RawEvent]) -> None:
    """A fresh decoder hands one whole event of each common shape out as its fast path does."""
    assert SSEDecoder().feed_raw(read) == expected


@pytest.mark.parametrize(
    "read",
    [
        pytest.param(b"data: a\rb\n\n", id="lf-cr-inside"),
        pytest.param(b"data: a\rb\r\n\r\n", id="crlf-cr-inside"),
        pytest.param(b"data: a\nb\r\n\r\n", id="crlf-lf-inside"),
        pytest.param(b"data: a\r\n\n", id="crlf-then-lf"),
        pytest.param(b"event: e\ndata: a\rb\n\n", id="typed-cr-inside"),
        pytest.param(b"event: e\rx\ndata: a\n\n", id="typed-cr-in-name"),
        pytest.param(b"event: e\nid: 1\ndata: a\n\n", id="typed-id-line"),
        pytest.param(b"event: e\ndata: a\ndata: b\n\n", id="typed-two-data-lines"),
        pytest.param(b"event: e\ndata: a\n\n\n", id="typed-extra-blank"),
    ],
)
def test_feed_raw_near_misses_of_the_single_read_shapes(read: bytes) -> None:
    """A read one byte away from a fast-path shape gives feed's events (the line rules decide)."""
    assert same_events(SSEDecoder().feed_raw(read), decode_all(read))


def _taking_typed(reads: list[bytes], decoder: SSEDecoder) -> list[list[RawEvent]]:
    """Each read through ``take_typed``, or ``feed_raw`` when it takes nothing: the items per read,
    a taken read as the one-event TypedRun feed_raw hands out for it."""
    items: list[list[RawEvent]] = []
    for read in reads:
        data = decoder.take_typed(read)
        if data is None:
            items.append(decoder.feed_raw(read))
        else:
            items.append([TypedRun(read, 1, decoder.last_event_id, decoder.retry, data)])
    return items


@settings(max_examples=500, deadline=None)
@given(
    reads=st.lists(st.one_of(_one_read, _typed_block), max_size=8),
    cut=st.booleans(),
    data=st.data(),
)
def test_take_typed_takes_a_read_exactly_as_feed_raw_would(
    reads: list[bytes], cut: bool, data: st.DataObject
) -> None:
    """Reads of one event each (typed, LF, CRLF and near misses) or reads cut anywhere: where
    take_typed takes a read, feed_raw would have handed out that same one-event TypedRun, and the
    decoder is left as feed_raw leaves it (the reads after it, and close, agree)."""
    if cut:
        body = b"".join(reads)
        cuts = sorted(set(data.draw(st.lists(st.integers(0, len(body)), max_size=8))))
        reads = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    plain, taking = SSEDecoder(), SSEDecoder()
    assert _taking_typed(reads, taking) == [plain.feed_raw(read) for read in reads]
    assert taking.close() == plain.close()


@pytest.mark.parametrize(
    ("carried", "read"),
    [
        pytest.param(b"", b"data: x\n\n", id="untyped"),
        pytest.param(b"", b"event: e\ndata: a\ndata: b\n\n", id="two-data-lines"),
        pytest.param(b"", b"event: e\ndata: a\r\n\r\n", id="crlf"),
        pytest.param(b"", b"event: e\ndata: a\n\nevent: e\ndata: b\n\n", id="two-events"),
        pytest.param(b"", b"event: e\ndata: a\n", id="unfinished"),
        pytest.param(b"event: e\n", b"event: e\ndata: a\n\n", id="event-half-built"),
        pytest.param(b"data: a", b"event: e\ndata: a\n\n", id="line-carried"),
    ],
)
def test_take_typed_takes_nothing_but_one_whole_typed_event(carried: bytes, read: bytes) -> None:
    """Anything but exactly one two-line typed event, or anything carried from the last read: None,
    and the decoder is untouched (feed_raw then reads the read as it always does)."""
    decoder, plain = SSEDecoder(), SSEDecoder()
    decoder.feed_raw(carried)
    plain.feed_raw(carried)
    assert decoder.take_typed(read) is None
    assert decoder.feed_raw(read) == plain.feed_raw(read)


def test_take_typed_leaves_an_event_past_the_bound_to_feed_raw() -> None:
    """A typed event larger than max_event_bytes is not taken: feed_raw raises for it, as ever."""
    read = b"event: e\ndata: " + b"x" * 200 + b"\n\n"
    decoder = SSEDecoder(max_event_bytes=100)
    assert decoder.take_typed(read) is None
    with pytest.raises(ResponseTooLargeError):
        decoder.feed_raw(read)
    assert SSEDecoder(max_event_bytes=300).take_typed(read) == b"x" * 200


def _taking_runs(reads: list[bytes], decoder: SSEDecoder) -> list[list[RawEvent]]:
    """Each read through ``take_run``, or ``feed_raw`` when it takes nothing: the items per read."""
    items: list[list[RawEvent]] = []
    for read in reads:
        run = decoder.take_run(read)
        items.append(decoder.feed_raw(read) if run is None else [run])
    return items


@settings(max_examples=500, deadline=None)
@given(blocks=st.lists(st.one_of(_typed_block, _typed_block, _one_read), max_size=10), data=st.data())
def test_take_run_takes_a_read_exactly_as_feed_raw_would(blocks: list[bytes], data: st.DataObject) -> None:
    """Typed blocks (and near misses, and other shapes) in reads cut anywhere: where take_run takes
    a read, feed_raw would have handed out that same TypedRun, and the decoder is left as feed_raw
    leaves it (the reads after it, and close, agree)."""
    body = b"".join(blocks)
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(body)), max_size=8))))
    reads = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    plain, taking = SSEDecoder(), SSEDecoder()
    assert _taking_runs(reads, taking) == [plain.feed_raw(read) for read in reads]
    assert taking.close() == plain.close()


def _typed_stream(count: int) -> bytes:
    return b"".join(b'event: e%d\ndata: {"n":%d}\n\n' % (n % 2, n) for n in range(count))


@pytest.mark.parametrize("cut", [3, 10, 16, 20, 25, 33], ids=lambda cut: f"cut-{cut}")
def test_take_run_takes_the_reads_of_a_typed_stream_cut_anywhere(cut: int) -> None:
    """After the first read, each read of a typed stream (one ending in an event line, after it, in
    its data line, at a block's end) is taken: one TypedRun of the blocks it ends, as feed_raw's."""
    body = _typed_stream(12)
    reads = [body[:cut], *(body[start : start + 40] for start in range(cut, len(body), 40))]
    plain, taking = SSEDecoder(), SSEDecoder()
    taking.feed_raw(reads[0])
    plain.feed_raw(reads[0])
    for read in reads[1:]:
        expected = plain.feed_raw(read)
        run = taking.take_run(read)
        assert run is not None
        assert [run] == expected
    assert taking.close() == plain.close() == []


@pytest.mark.parametrize(
    ("carried", "read"),
    [
        pytest.param(b"", b"event: e\ndata: a\n\n", id="first-read"),  # (the BOM check is owed)
        pytest.param(b"event: e\ndata: a\n\n", b"data: x\n\n", id="untyped"),
        pytest.param(b"event: e\ndata: a\n\n", b"event: e\ndata: a\r\n\r\n", id="crlf"),
        pytest.param(b"event: e\ndata: a\n\nevent: e\ndata: ", b"a\ndata: b\n\n", id="two-data-lines"),
        pytest.param(b"event: e\ndata: a\n\nevent: e\nid: 1", b"\ndata: a\n\n", id="id-line"),
        pytest.param(b"event: e\ndata: a\n\nevent: e\ndata: ", b"a\n\nid: 5\nevent: e\nda", id="id-after"),
        pytest.param(b"event: e\ndata: a\n\nevent: e\ndata: ", b"a\n", id="no-blank-line"),
        pytest.param(b"event: e\ndata: a\n\nevent: e\n", b"\n", id="no-data"),
    ],
)
def test_take_run_takes_nothing_but_whole_typed_blocks(carried: bytes, read: bytes) -> None:
    """A read that is not typed blocks up to its last blank line, or a decoder not at a line start
    of such a stream: None, and the decoder is untouched (feed_raw then reads the read as ever)."""
    decoder, plain = SSEDecoder(), SSEDecoder()
    decoder.feed_raw(carried)
    plain.feed_raw(carried)
    assert decoder.take_run(read) is None
    assert decoder.feed_raw(read) == plain.feed_raw(read)
    assert decoder.close() == plain.close()


def test_take_run_leaves_a_read_past_the_bound_to_feed_raw() -> None:
    """A read larger than max_event_bytes is not taken: feed_raw checks what it hands out."""
    decoder = SSEDecoder(max_event_bytes=100)
    decoder.feed_raw(b"event: e\ndata: a\n\nevent: e\ndata: ")
    read = b"x" * 200 + b"\n\n"
    assert decoder.take_run(read) is None
    with pytest.raises(ResponseTooLargeError):
        decoder.feed_raw(read)


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=200), data=st.data())
def test_feed_raw_arbitrary_bytes_never_raise(body: bytes, data: st.DataObject) -> None:
    """Arbitrary bytes in arbitrary reads never make feed_raw raise, and it agrees with feed."""
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=8))
    assert same_events(feed_raw_in_pieces(body, cuts), decode_all(body))


def _feed_line_in_reads(decoder: SSEDecoder, size: int, read: int = 4096) -> list[RawEvent]:
    body = b"data: " + b"x" * size + b"\n\n"
    events: list[RawEvent] = []
    for start in range(0, len(body), read):
        events.extend(decoder.feed_raw(body[start : start + read]))
    return events


def _best_time(size: int) -> float:
    import time

    best = math.inf
    for _ in range(3):
        started = time.perf_counter()
        events = _feed_line_in_reads(SSEDecoder(), size)
        best = min(best, time.perf_counter() - started)
        assert [len(e) for e in events if isinstance(e, bytes)] == [size]
    return best


def test_one_long_line_decodes_in_linear_time() -> None:
    """A 16 MB line fed in 4 KB reads costs about four times a 4 MB one, not sixteen (issue 10, item 7).

    Sizes four apart, and the bound halfway (in log terms) between linear and quadratic, so a loaded
    machine's noise cannot fail a linear decoder nor pass a quadratic one.
    """
    small, large = _best_time(4_000_000), _best_time(16_000_000)
    assert large < 8 * small + 0.05


def test_a_long_multi_line_event_decodes_in_linear_time() -> None:
    """An event of many data lines, fed in small reads, costs linear time too."""
    import time

    def run(lines: int) -> float:
        body = b"data: abcdefgh\n" * lines + b"\n"
        decoder = SSEDecoder()
        started = time.perf_counter()
        for start in range(0, len(body), 4096):
            decoder.feed_raw(body[start : start + 4096])
        return time.perf_counter() - started

    small, large = min(run(100_000) for _ in range(3)), min(run(400_000) for _ in range(3))
    assert large < 8 * small + 0.05  # linear gives ~4x, quadratic ~16x


@pytest.mark.parametrize("read", [pytest.param(4096, id="4k-reads"), pytest.param(1 << 20, id="1m-reads")])
def test_an_event_past_its_bound_fails_clearly(read: int) -> None:
    """A line or event larger than max_event_bytes raises ResponseTooLargeError naming the bound."""
    decoder = SSEDecoder(max_event_bytes=100_000)
    with pytest.raises(ResponseTooLargeError, match="larger than 100000 bytes"):
        _feed_line_in_reads(decoder, 300_000, read)
    lines = SSEDecoder(max_event_bytes=100_000)
    body = b"data: 0123456789\n" * 20_000
    reads = [body[start : start + read] for start in range(0, len(body), read)]
    with pytest.raises(ResponseTooLargeError, match="one SSE event is larger"):
        list(map(lines.feed_raw, reads))


def test_events_under_the_bound_pass() -> None:
    """Many events each under the bound decode however much they add up to."""
    decoder = SSEDecoder(max_event_bytes=1000)
    body = b"data: " + b"y" * 900 + b"\n\n"
    events = [e for _ in range(500) for e in decoder.feed_raw(body)]
    assert len(events) == 500


@settings(max_examples=300, deadline=None)
@given(lines=_streams, data=st.data())
def test_crlf_any_split_gives_the_lf_events(lines: list[str], data: st.DataObject) -> None:
    """CRLF streams (Gemini's) take their own fast path: any split gives the events of the LF stream."""
    body = _join(lines, "\r\n")
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=len(body) + 1))
    events, _ = feed_in_pieces(body, cuts)
    assert events == decode_all(_join(lines, "\n"))
    assert same_events(feed_raw_in_pieces(body, cuts), decode_all(_join(lines, "\n")))


# Typed streams (Responses, Anthropic): mostly "event:" + "data:" + blank line blocks, with now and
# then another line inside a block, read whole, in arbitrary reads, and line by line (CRLF input).
_typed_block = st.one_of(
    st.tuples(_line_text, _line_text).map(lambda b: ["event: " + b[0], "data: " + b[1], ""]),
    st.tuples(_line_text).map(lambda b: ["event: message", "data: " + b[0], ""]),
    st.lists(_field_line, max_size=3),
)


@settings(max_examples=300, deadline=None)
@given(
    head=st.lists(_typed_block.filter(lambda b: len(b) == 3), max_size=4),
    blocks=st.lists(_typed_block, max_size=10),
    data=st.data(),
)
def test_typed_blocks_read_fast_equal_line_by_line(
    head: list[list[str]], blocks: list[list[str]], data: st.DataObject
) -> None:
    """The whole-block paths for `event:` + `data:` events give what reading line by line gives."""
    lines = [line for block in head + blocks for line in block]
    body = _join(lines, "\n")
    expected = decode_all(_join(lines, "\r\n"))  # CR in the input: the line-by-line path
    assert decode_all(body) == expected
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=10))
    assert feed_in_pieces(body, cuts)[0] == expected
    raw = [as_event(item) for item in single_events(feed_raw_in_pieces(body, cuts))]
    assert [(e.data, e.event) for e in raw] == [(e.data, e.event) for e in expected]
