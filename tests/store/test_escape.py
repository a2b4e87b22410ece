"""The PostgreSQL escaping of U+0000 (runner.store.escape): reversible for any text, used by the columns."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Column, MetaData, Table, insert, literal, select, text

from runner.store.escape import ESCAPE, NUL, escape, escape_json, unescape, unescape_json
from runner.store.models import ProviderJSON, ProviderText

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

# Text rich in the two characters the escaping is about, so the interesting cases come up often.
# No lone surrogates: the dialects decode with orjson, which rejects them ("\ud800"), so no provider
# text can hold one, and neither database driver can encode one.
TEXTS = st.text(
    alphabet=st.sampled_from([NUL, ESCAPE, "0", "a", "\\", "é"]) | st.characters(exclude_categories=["Cs"])
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | TEXTS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXTS, inner, max_size=4),
    max_leaves=12,
)


@given(TEXTS)
def test_escape_round_trips_any_text(value: str) -> None:
    """unescape(escape(s)) is s for every string, and the escaped form holds no NUL."""
    escaped = escape(value)
    assert NUL not in escaped
    assert unescape(escaped) == value


@given(JSON_VALUES)
def test_escape_json_round_trips_any_json_value(value: Any) -> None:
    """Every string of a JSON value, keys included, round-trips."""
    assert unescape_json(escape_json(value)) == value


def test_text_without_the_two_characters_is_stored_as_it_is() -> None:
    """Ordinary text (backslashes, escapes of other kinds) is not touched: plain SQL sees it as sent."""
    for value in ("", "plain", "a\\u0000b", "\\0", "\u2401"):
        assert escape(value) == value
        assert unescape(value) == value
    assert escape("a\x00b\u2400") == "a\u24000b\u2400\u2400"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=TEXTS)
def test_provider_columns_round_trip_through_the_database(session: Session, value: str) -> None:
    """A text and a JSON value holding any characters come back from the database exactly."""
    row = session.execute(
        select(literal(value, ProviderText()), literal({value: [value]}, ProviderJSON()))
    ).one()
    assert tuple(row) == (value, {value: [value]})


def test_postgres_json_stays_queryable_with_a_nul(session: Session) -> None:
    """On PostgreSQL, ``->>`` works on a stored JSON value that held U+0000 (a raw \\u0000 breaks it)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    table = Table("nul_json", MetaData(), Column("v", ProviderJSON()), prefixes=["TEMPORARY"])
    table.create(session.connection())
    session.execute(insert(table).values(v={"detail": "a\x00b\u2400", "passed": True}))
    raw = session.execute(text("SELECT v ->> 'passed', v ->> 'detail' FROM nul_json")).one()
    assert tuple(raw) == ("true", "a\u24000b\u2400\u2400")
    assert session.execute(select(table.c.v)).scalar_one() == {"detail": "a\x00b\u2400", "passed": True}
