"""Encoding provider data never fails, however deeply the provider nested it."""

from __future__ import annotations

import json
from pathlib import Path

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


def test_the_database_stores_deeply_nested_extras(tmp_path: Path) -> None:
    """The DB's JSON columns take values nested past orjson's encode limit, and give them back."""
    from sqlalchemy import JSON, Column, Integer, MetaData, Table, insert, select

    from runner.store.db import open_database

    table = Table("deep", MetaData(), Column("id", Integer, primary_key=True), Column("value", JSON))
    value = orjson.loads(nested(300))
    with open_database(f"sqlite:///{tmp_path / 'r.db'}") as database:
        table.create(database.engine)
        with database.engine.begin() as conn:
            conn.execute(insert(table).values(id=1, value=value))
            stored = conn.execute(select(table.c.value)).scalar_one()
    assert stored == value
