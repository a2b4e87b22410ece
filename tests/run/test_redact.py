"""The redactor (runner.run.redact): every key out of an attempt's texts, capture and log lines."""

from __future__ import annotations

import dataclasses
import io
import logging
from datetime import UTC, datetime

import orjson
from hypothesis import given
from hypothesis import strategies as st

from runner.model import (
    AttemptError,
    AttemptRecord,
    AttemptTiming,
    Choice,
    Completion,
    CompletionError,
    ToolCall,
    Usage,
)
from runner.run.redact import REDACTED, RedactingFilter, Redactor
from runner.wire.replay import parse_stream

KEY = "sk-test-0123456789abcdef"
OTHER = "sk/other+key\\42"


def _record(completion: Completion | None, raw: bytes | None, message: str | None = None) -> AttemptRecord:
    error = AttemptError(kind="auth_error", message=message) if message is not None else None
    return AttemptRecord(
        unit_key="p/c/1",
        number=1,
        http_status=200,
        error=error,
        completion=completion,
        timing=AttemptTiming(started_at=datetime.now(UTC)),
        raw_capture=raw,
    )


def _event(content: str) -> bytes:
    return b"data: " + orjson.dumps({"choices": [{"index": 0, "delta": {"content": content}}]}) + b"\n\n"


def test_every_field_a_provider_fills_is_redacted() -> None:
    """Error, text, reasoning, steps, refusal, tool call, ids, usage and extras lose every key."""
    said = f"Bearer {KEY} and {OTHER}"
    completion = Completion(
        id=said,
        model=said,
        error=CompletionError(type=said, message=said, code=said),
        choices=(
            Choice(
                index=0,
                text=said,
                reasoning=said,
                reasoning_steps=({said: [said]},),
                refusal=said,
                tool_calls=(ToolCall(id=said, name=said, arguments=orjson.dumps({"k": KEY}).decode()),),
                raw_finish_reason=said,
            ),
        ),
        usage=Usage(raw={"note": said}),
        extras={said: said},
    )
    record = Redactor.of([KEY, OTHER, None, ""]).record(_record(completion, None, said), "openai-chat")
    dumped = orjson.dumps(
        [
            record.completion.to_dict() if record.completion else None,
            record.error.to_dict() if record.error else None,
        ]
    )
    assert KEY.encode() not in dumped
    assert b"sk/other" not in dumped
    assert record.error is not None
    assert record.error.message == f"Bearer {REDACTED} and {REDACTED}"


def test_raw_capture_is_redacted_whole_and_stays_parseable() -> None:
    """The whole capture loses every key, in its JSON-escaped form too, and replays to the redacted answer."""
    body = _event(f"key {KEY} and {OTHER}") + b"data: [DONE]\n\n"
    assert OTHER.encode() not in body  # the backslash is escaped in JSON: only that form is there
    completion = parse_stream("openai-chat", body)
    record = Redactor.of([KEY, OTHER]).record(_record(completion, body), "openai-chat")
    assert record.raw_capture is not None
    assert KEY.encode() not in record.raw_capture
    assert b"sk/other" not in record.raw_capture
    replayed = parse_stream("openai-chat", record.raw_capture)
    assert replayed.choices[0].text == f"key {REDACTED} and {REDACTED}"
    assert record.completion == replayed


def test_read_times_go_with_a_capture_whose_length_changed() -> None:
    """A replaced key shifts the offsets after it: the read times go; an untouched capture keeps them."""
    body = _event(f"key {KEY}") + b"data: [DONE]\n\n"
    reads = ((0, 0.1), (len(body) - 14, 0.2))
    record = dataclasses.replace(_record(parse_stream("openai-chat", body), body), raw_reads=reads)
    assert Redactor.of([KEY]).record(record, "openai-chat").raw_reads is None
    assert Redactor.of(["sk-not-there-0123"]).record(record, "openai-chat").raw_reads == reads


def test_a_key_split_across_events_drops_the_capture_but_not_the_answer() -> None:
    """No byte replacement can take out a key split over two events: the capture goes, the text stays."""
    body = _event(f"key {KEY[:6]}") + _event(f"{KEY[6:]} end") + b"data: [DONE]\n\n"
    completion = parse_stream("openai-chat", body)
    record = Redactor.of([KEY]).record(_record(completion, body), "openai-chat")
    assert record.raw_capture is None
    assert record.completion is not None
    assert record.completion.choices[0].text == f"key {REDACTED} end"


def test_nothing_echoed_leaves_the_record_as_it_was() -> None:
    """The common case allocates nothing: the very same record comes back."""
    body = _event("hello") + b"data: [DONE]\n\n"
    record = _record(parse_stream("openai-chat", body), body, "HTTP 500")
    assert Redactor.of([KEY]).record(record, "openai-chat") is record
    assert Redactor().record(_record(None, KEY.encode(), KEY), "openai-chat").raw_capture == KEY.encode()


def test_the_longer_of_two_overlapping_keys_is_replaced_whole() -> None:
    """A key that contains another is replaced as one, leaving no tail of it."""
    assert Redactor.of(["abcd1234", "abcd1234-long-tail"]).text("x abcd1234-long-tail y") == f"x {REDACTED} y"


# Real keys' characters. Not "[" or "]": a key made of the marker's own characters could be formed
# again by the marker and its neighbours. At least 9 long: "REDACTED" itself could be one.
KEYS = st.text(alphabet=st.sampled_from('abcXYZ019-_./+=\\"'), min_size=9)


@given(st.text(), st.text(), KEYS)
def test_no_key_survives_any_surrounding_text(before: str, after: str, key: str) -> None:
    """Whatever text surrounds a key, the redacted text no longer holds it."""
    assert key not in Redactor.of([key]).text(before + key + after + key)


def test_log_lines_and_tracebacks_lose_every_key() -> None:
    """The handler filter redacts the formatted message and the exception text."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RedactingFilter(Redactor.of([KEY])))
    logger = logging.getLogger("tests.run.test_redact")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("provider said %s", f"Bearer {KEY}")
        try:
            raise ValueError(f"bad header {KEY}")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    written = out.getvalue()
    assert KEY not in written
    assert f"provider said Bearer {REDACTED}" in written
    assert f"ValueError: bad header {REDACTED}" in written
