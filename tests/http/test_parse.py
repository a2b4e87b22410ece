"""The sans-IO response reader: heads, framings, and the same result however the bytes are split."""

from __future__ import annotations

import gzip
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner.http.decode import BLOCK_BYTES, DecodeError, decoder_for
from runner.http.parse import (
    BodyReader,
    ChunkedBody,
    CloseBody,
    EmptyBody,
    Head,
    HeadReader,
    LengthBody,
    ProtocolError,
    body_reader,
    is_keep_alive,
    parse_head,
)


def read_all(
    stream: list[bytes], *, method: bytes = b"GET", eof: bool = True
) -> tuple[Head, bytes, BodyReader]:
    """Feed ``stream`` piece by piece as a socket would deliver it; the head, the body and its reader."""
    heads = HeadReader()
    pieces = iter(stream)
    head = None
    for piece in pieces:
        head = heads.feed(piece)
        if head is not None:
            break
    assert head is not None, "the head never completed"
    reader = body_reader(head, method=method)
    body = [reader.feed(heads.rest)] if heads.rest else []
    for piece in pieces:
        body.append(reader.feed(piece))
    if eof:
        reader.eof()
    return head, b"".join(body), reader


def chunked(parts: list[bytes], *, extensions: bool = False, trailers: bool = False) -> bytes:
    out = b"".join(b"%x%s\r\n%s\r\n" % (len(p), b";name=value" if extensions else b"", p) for p in parts if p)
    return out + b"0\r\n" + (b"x-trailer: 1\r\nx-other: 2\r\n" if trailers else b"") + b"\r\n"


def splits(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


def test_the_last_header_keeps_no_cr() -> None:
    head, _, _ = read_all([b"HTTP/1.1 200 OK\r\nx-last: v\r\ncontent-length: 0\r\n\r\n"])
    assert head.headers[-1] == (b"content-length", b"0")


def test_head_fields() -> None:
    head = parse_head(b"HTTP/1.1 429 Too Many\r\nRetry-After:  3 \r\nX-A: 1\r\nx-a: 2")
    assert (head.status, head.reason, head.version) == (429, b"Too Many", b"HTTP/1.1")
    assert head.headers == [(b"retry-after", b"3"), (b"x-a", b"1"), (b"x-a", b"2")]
    assert head.values(b"x-a") == [b"1", b"2"]


@pytest.mark.parametrize(
    "bad",
    [b"HTTP/1.1 20 OK", b"ICY 200 OK", b"HTTP/1.1 200 OK\r\nno colon", b"HTTP/1.1 200 OK\r\nbad name: 1"],
)
def test_malformed_heads_are_protocol_errors(bad: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_head(bad)


def test_interim_100_continue_is_skipped() -> None:
    head, body, _ = read_all([b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"])
    assert (head.status, body) == (200, b"ok")


def test_bare_lf_heads_are_accepted() -> None:
    head, body, _ = read_all([b"HTTP/1.1 200 OK\ncontent-length: 2\n\nok"])
    assert (head.status, body) == (200, b"ok")


def test_framings() -> None:
    head = parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: 5")
    assert isinstance(body_reader(head, method=b"GET"), LengthBody)
    assert isinstance(body_reader(head, method=b"HEAD"), EmptyBody)
    assert isinstance(body_reader(parse_head(b"HTTP/1.1 204 No Content"), method=b"GET"), EmptyBody)
    assert isinstance(body_reader(parse_head(b"HTTP/1.1 200 OK"), method=b"GET"), CloseBody)
    chunked_head = parse_head(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 9")
    assert isinstance(body_reader(chunked_head, method=b"GET"), ChunkedBody)
    with pytest.raises(ProtocolError):
        body_reader(parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2"), method=b"GET")
    with pytest.raises(ProtocolError):
        body_reader(parse_head(b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip"), method=b"GET")


def test_keep_alive() -> None:
    length = parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: 0")
    assert is_keep_alive(length, LengthBody(0))
    closing = parse_head(b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0")
    assert not is_keep_alive(closing, LengthBody(0))
    assert not is_keep_alive(parse_head(b"HTTP/1.0 200 OK\r\ncontent-length: 0"), LengthBody(0))
    assert not is_keep_alive(parse_head(b"HTTP/1.1 200 OK"), CloseBody())


@pytest.mark.parametrize(
    ("stream", "message"),
    [
        pytest.param([HEAD, b"5\r\nabc"], "complete message body", id="cut-in-chunk"),
        pytest.param([HEAD, b"3\r\nabc\r\n"], "complete message body", id="cut-before-terminator"),
        pytest.param([b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nabc"], "complete", id="short-length"),
        pytest.param([HEAD, b"zz\r\n"], "chunk size", id="bad-size"),
        pytest.param([HEAD, b"3\r\nabcXY"], "CRLF", id="no-crlf-after-data"),
    ],
)
def test_broken_bodies_are_protocol_errors(stream: list[bytes], message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        read_all(stream)


def test_close_delimited_body_ends_at_eof() -> None:
    _, body, reader = read_all([b"HTTP/1.1 200 OK\r\n\r\nall ", b"of it"])
    assert body == b"all of it"
    assert reader.done


def test_bytes_after_a_body_are_kept_as_extra() -> None:
    _, body, reader = read_all([b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1"])
    assert (body, reader.extra) == (b"ok", b"HTTP/1.1")


BODIES = st.lists(st.binary(min_size=0, max_size=300), max_size=12)
CUTS = st.lists(st.integers(min_value=0, max_value=10_000), max_size=20)


@given(parts=BODIES, cuts=CUTS, extensions=st.booleans(), trailers=st.booleans())
def test_chunked_body_does_not_depend_on_how_reads_split_it(
    parts: list[bytes], cuts: list[int], extensions: bool, trailers: bool
) -> None:
    """Random chunkings, extensions and trailers: the same head, the same body, complete."""
    wire = HEAD + chunked(parts, extensions=extensions, trailers=trailers)
    head, body, reader = read_all(splits(wire, cuts))
    assert head.status == 200
    assert body == b"".join(parts)
    assert reader.done
    assert len(reader.trailers) == (2 if trailers else 0)


@given(parts=BODIES)
def test_one_byte_reads_give_the_same_body(parts: list[bytes]) -> None:
    """Every CRLF, size line and head line split across reads, one byte at a time."""
    wire = HEAD + chunked(parts, extensions=True, trailers=True)
    _, body, reader = read_all([wire[i : i + 1] for i in range(len(wire))])
    assert body == b"".join(parts)
    assert reader.done


@given(body=st.binary(max_size=2000), cuts=CUTS)
def test_content_length_body_does_not_depend_on_splits(body: bytes, cuts: list[int]) -> None:
    wire = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(body) + body
    _, got, reader = read_all(splits(wire, cuts))
    assert got == body
    assert reader.done


@given(parts=BODIES, cuts=CUTS)
def test_a_crlf_split_across_reads_never_changes_the_result(parts: list[bytes], cuts: list[int]) -> None:
    """Cut exactly between every CR and its LF (plus random cuts): same body as in one read."""
    wire = HEAD + chunked(parts)
    crlf_cuts = [i + 1 for i in range(len(wire)) if wire[i : i + 2] == b"\r\n"]
    _, body, _ = read_all(splits(wire, crlf_cuts + cuts))
    _, whole, _ = read_all([wire])
    assert body == whole == b"".join(parts)


@given(data=st.binary(max_size=5000), cuts=CUTS, coding=st.sampled_from([b"gzip", b"deflate"]))
def test_decoding_does_not_depend_on_splits(data: bytes, cuts: list[int], coding: bytes) -> None:
    encoded = gzip.compress(data) if coding == b"gzip" else zlib.compress(data)
    decoder = decoder_for([coding])
    assert decoder is not None
    out = [decoder.decode(piece) for piece in splits(encoded, cuts)]
    assert b"".join(out) + decoder.flush() == data


def test_raw_deflate_is_accepted_as_httpx_does() -> None:
    squeeze = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    raw = squeeze.compress(b"hello") + squeeze.flush()
    decoder = decoder_for([b"deflate"])
    assert decoder is not None
    assert decoder.decode(raw) + decoder.flush() == b"hello"


def test_a_gzip_bomb_inflates_in_bounded_steps() -> None:
    """64 MiB of zeros from one 64 KB read: no step holds more than BLOCK_BYTES."""
    bomb = gzip.compress(b"\0" * (64 << 20), compresslevel=9)
    decoder = decoder_for([b"gzip"])
    assert decoder is not None
    first = decoder.decode(bomb)
    assert len(first) == BLOCK_BYTES
    total, steps = len(first), 1
    while decoder.has_more:
        step = decoder.decode(b"")
        assert len(step) <= BLOCK_BYTES
        total += len(step)
        steps += 1
    assert total + len(decoder.flush()) == 64 << 20
    assert steps >= 64  # the rest waited in the decompressor between steps


def test_a_body_that_is_not_gzip_is_a_decode_error() -> None:
    decoder = decoder_for([b"gzip"])
    assert decoder is not None
    with pytest.raises(DecodeError):
        decoder.decode(b"data: plain text\n\n")


def test_encodings_runner_does_not_decode_are_left_to_httpx() -> None:
    assert decoder_for([b"br"]) is None
    assert decoder_for([b"gzip", b"zstd"]) is None
    assert decoder_for([b"identity"]) is None
    assert decoder_for([]) is None
