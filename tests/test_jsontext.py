"""Encoding provider data never fails, however deeply the provider nested it."""

from __future__ import annotations

import json

import orjson
import pytest

from runner import jsontext
from runner.wire.dialects import names
from runner.wire.replay import parse_stream


def nested(depth: int) -> bytes:
    """A JSON list nested ``depth`` levels (orjson decodes up to 1024, encodes up to 255)."""
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize(
    "depth", [10, 300, 1020], ids=["shallow", "past-orjson-encode", "near-orjson-decode"]
)
def test_dumps_never_raises_on_decoded_values(depth: int) -> None:
    """Whatever orjson could decode, dumps encodes (exactly when the stdlib can, else a marker)."""
    value = orjson.loads(nested(depth))
    text = jsontext.dumps_text(value)
    assert text == jsontext.TOO_DEEP or json.loads(text) == value


@pytest.mark.parametrize("dialect", sorted(names()))
@pytest.mark.parametrize("depth", [300, 1020], ids=["300", "1020"])
def test_deeply_nested_error_payload_is_data_not_a_crash(dialect: str, depth: int) -> None:
    """An in-stream error whose message nests deeper than orjson encodes becomes the error's text."""
    error = (
        b'{"error": {"message": '
        + nested(depth)
        + b'}, "type": "error", "errors": [{"message": '
        + nested(depth)
        + b"}]}"
    )
    body = b"event: error\ndata: " + error + b"\n\n"
    completion = parse_stream(dialect, body)
    assert completion.error is not None
    assert not completion.complete


def test_the_database_stores_deeply_nested_extras(tmp_path) -> None:
    """The DB's JSON serializer takes values nested past orjson's encode limit without failing."""
    from runner.store.db import open_database

    with open_database(f"sqlite:///{tmp_path / 'r.db'}") as database:
        serializer = database.engine.dialect._json_serializer
        assert serializer(orjson.loads(nested(300))).startswith("[[[")
