"""Keep-alive `data:` lines: an empty payload is a heartbeat in every dialect, never an error."""

from __future__ import annotations

import re

import pytest

from runner.wire.dialects import get_dialect
from runner.wire.replay import accumulate, parse_stream
from tests.streams import all_fixtures, dialect_of, fixture

# Some proxies keep a quiet stream open with `data:` and nothing after it (or only spaces).
KEEPALIVES = (b"data:\n\n", b"data: \n\n", b"data:   \r\n\r\n")
BOUNDARY = re.compile(rb"\r\n\r\n|\n\n|\r\r")


def _with_keepalives(raw: bytes) -> tuple[bytes, int]:
    """``raw`` with keep-alive events after each of its first three event boundaries, and how many."""
    parts: list[bytes] = []
    start = inserted = 0
    for match in BOUNDARY.finditer(raw):
        if inserted == len(KEEPALIVES):
            break
        parts += [raw[start : match.end()], KEEPALIVES[inserted]]
        start = match.end()
        inserted += 1
    return b"".join([*parts, raw[start:]]), inserted


@pytest.mark.parametrize("name", [pytest.param(n, id=n) for n in all_fixtures()])
def test_keepalives_change_nothing_but_the_heartbeat_count(name: str) -> None:
    """Every captured stream, with keep-alive events slipped in, rebuilds the same Completion."""
    raw = fixture(name)
    dialect = dialect_of(name)
    with_keepalives, inserted = _with_keepalives(raw)
    assert inserted > 0
    assert parse_stream(dialect, with_keepalives) == parse_stream(dialect, raw)


@pytest.mark.parametrize("dialect", ["openai-chat", "anthropic-messages", "runware"])
def test_each_keepalive_counts_as_a_heartbeat(dialect: str) -> None:
    """The accumulator counts every empty payload as a ping, as it counts Anthropic's ``ping`` events."""
    accumulator = get_dialect(dialect).new_accumulator()
    completion = accumulate(accumulator, [b"".join(KEEPALIVES)])
    assert accumulator.pings == len(KEEPALIVES)
    assert completion.error is None
