"""Data rows of a templated case (runner.job.vars): CSV and JSON Lines from text, inline rows, row keys,
and an error naming the file and the row's line for every malformed row."""

from __future__ import annotations

import csv
import io
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner.errors import ConfigError
from runner.job.source import Where
from runner.job.vars import case_rows, inline_rows, parse_csv, parse_jsonl, parse_vars_text, row_key

WHERE = Where(path="job.toml", locations={"cases[0]": 10, "cases[0].vars": 12, "cases[0].vars_file": 13})


def _no_file(written: str) -> tuple[str, str]:
    raise FileNotFoundError(2, "No such file or directory")


def test_csv_rows_are_strings_keyed_by_id_or_number() -> None:
    """A CSV's header names the vars; every value is a string; the key is the id, else the row number."""
    text = 'id,city,n\r\nparis,"Paris, France",3\r\n\r\n,Tokyo,4\n'
    rows = parse_csv("cities.csv", text)
    assert [r.values for r in rows] == [
        {"id": "paris", "city": "Paris, France", "n": "3"},
        {"id": "", "city": "Tokyo", "n": "4"},
    ]
    assert [r.key for r in rows] == ["paris", "2"]
    assert [(r.number, r.line) for r in rows] == [(1, 2), (2, 4)]  # the blank line 3 is skipped
    assert all(r.path == "cities.csv" and r.location is None for r in rows)


def test_csv_row_line_is_where_a_multi_line_record_starts() -> None:
    """A quoted value spanning lines does not shift the next rows' line numbers."""
    rows = parse_csv("q.csv", 'q\n"one\ntwo"\nthree\n')
    assert [r.values["q"] for r in rows] == ["one\ntwo", "three"]
    assert [r.line for r in rows] == [2, 4]


def test_jsonl_rows_keep_their_json_types() -> None:
    """JSON Lines rows keep numbers, booleans, lists and nulls; a numeric id is a key too."""
    text = '{"id": 7, "n": 3, "ok": true, "tags": ["a"], "x": null}\n\n{"n": 1.5}\n'
    rows = parse_jsonl("rows.jsonl", text)
    assert rows[0].values == {"id": 7, "n": 3, "ok": True, "tags": ["a"], "x": None}
    assert [r.key for r in rows] == ["7", "2"]
    assert [r.line for r in rows] == [1, 3]


def test_inline_rows_point_at_their_job_line() -> None:
    """Inline rows carry the job file, the line of their table, and their dotted key."""
    where = Where(path="job.toml", locations={"cases[0].vars": 12, "cases[0].vars[1]": 14})
    rows = inline_rows(where, [{"a": 1}, {"id": "b", "a": 2}], "cases[0].vars")
    assert [(r.key, r.line, r.location) for r in rows] == [
        ("1", 12, "cases[0].vars[0]"),
        ("b", 14, "cases[0].vars[1]"),
    ]


def test_file_format_goes_by_suffix() -> None:
    """.csv is CSV, .jsonl and .ndjson are JSON Lines; the case's rows come through the reader."""
    assert parse_vars_text("x.CSV", "a\n1\n")[0].values == {"a": "1"}
    assert parse_vars_text("x.ndjson", '{"a": 1}\n')[0].values == {"a": 1}
    rows = case_rows(WHERE, {"vars_file": "d/x.jsonl"}, "cases[0]", lambda w: (f"/jobs/{w}", '{"a": 1}'))
    assert rows is not None
    assert rows[0].path == "/jobs/d/x.jsonl"
    assert case_rows(WHERE, {"prompt": "hi"}, "cases[0]", _no_file) is None


_BLANK_IDS = st.sampled_from([None, "", " ", "\t"])
_IDS = st.one_of(_BLANK_IDS, st.text(min_size=1), st.integers())


@given(ids=st.lists(_IDS, max_size=20))
def test_row_key_is_the_id_unless_blank(ids: list[object]) -> None:
    """Property: a row's key is its id as text when present and not blank, else its 1-based number."""
    for number, ident in enumerate(ids, start=1):
        values = {} if ident is None else {"id": ident}
        expected = str(number) if ident is None or not str(ident).strip() else str(ident)
        assert row_key(values, number) == expected


_CELL = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=12)


@given(
    header=st.lists(st.text("abcdefgh_", min_size=1, max_size=6), min_size=1, max_size=4, unique=True),
    data=st.data(),
)
def test_csv_written_by_the_csv_module_reads_back(header: list[str], data: st.DataObject) -> None:
    """Property: any table csv.writer writes (quotes, commas, newlines in values) reads back row by row."""
    rows = data.draw(st.lists(st.lists(_CELL, min_size=len(header), max_size=len(header)), max_size=8))
    # A row of one empty value is written as an empty line, which CSV cannot tell from a blank line.
    rows = [row for row in rows if row != [""]]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    parsed = parse_csv("p.csv", out.getvalue())
    assert [list(r.values.values()) for r in parsed] == rows
    assert [r.number for r in parsed] == list(range(1, len(rows) + 1))


@pytest.mark.parametrize(
    ("path", "text", "line", "message", "fix"),
    [
        pytest.param("v.csv", "", 1, "no header row", "column names", id="csv-empty"),
        pytest.param("v.csv", "a,a\n1,2\n", 1, "'a' appears twice", "rename", id="csv-dup-column"),
        pytest.param("v.csv", "a,,b\n", 1, "column 2 has no name", "name every", id="csv-unnamed"),
        pytest.param(
            "v.csv", "a,b\n1,2\n3\n", 3, "row 2 has 1 values", "one value per column", id="csv-short"
        ),
        pytest.param("v.csv", "a\n1\n2,3\n", 3, "row 2 has 2 values", "quote a value", id="csv-long"),
        pytest.param("v.csv", 'a\n"x"y"\n', 2, "not valid CSV", "correct the CSV", id="csv-quote"),
        pytest.param("v.jsonl", '{"a": 1}\n\n{"a": \n', 3, "row 2: not valid JSON", "one JSON", id="json"),
        pytest.param("v.jsonl", "[1, 2]\n", 1, "must be a JSON object", "one object", id="json-list"),
        pytest.param("v.jsonl", '{"a": NaN}\n', 1, "NaN is not a JSON number", "one JSON", id="json-nan"),
        pytest.param("v.jsonl", '{"id": [1]}\n', 1, "id must be a string", "as a string", id="id-type"),
        pytest.param("v.jsonl", '{"id": true}\n', 1, "id must be a string", "as a string", id="id-bool"),
        pytest.param("v.txt", "a\n1\n", None, "unknown vars file format", ".csv", id="suffix"),
    ],
)
def test_malformed_rows_name_the_file_and_line(
    path: str, text: str, line: int | None, message: str, fix: str
) -> None:
    """Each malformed vars file fails with its path, the row's line, what is wrong and the fix."""
    with pytest.raises(ConfigError) as info:
        parse_vars_text(path, text)
    err = info.value
    assert (err.path, err.line) == (path, line)
    assert message in str(err)
    assert err.fix is not None
    assert fix in err.fix


@pytest.mark.parametrize(
    ("table", "key", "message", "fix"),
    [
        pytest.param(
            {"vars": [{}], "vars_file": "x.csv"}, "cases[0].vars_file", "not both", "keep one", id="both"
        ),
        pytest.param({"vars": []}, "cases[0].vars", "holds no rows", "add a row", id="no-rows"),
        pytest.param({"vars": ["x"]}, "cases[0].vars[0]", "must be a table", "vars = [{", id="not-table"),
        pytest.param(
            {"vars": [{"when": float("nan")}]}, "cases[0].vars[0].when", "nan", "string, number", id="nan"
        ),
        pytest.param(
            {"vars_file": "rows.xlsx"}, "cases[0].vars_file", "unknown vars file format", ".csv", id="suffix"
        ),
        pytest.param(
            {"vars_file": "gone.csv"}, "cases[0].vars_file", "cannot read gone.csv", "relative", id="missing"
        ),
    ],
)
def test_case_row_errors_name_the_job_key(table: dict[str, object], key: str, message: str, fix: str) -> None:
    """Errors about a case's vars keys point at the job file's key and line."""
    with pytest.raises(ConfigError) as info:
        case_rows(WHERE, table, "cases[0]", _no_file)
    err = info.value
    assert (err.path, err.key) == ("job.toml", key)
    assert err.line in (10, 12, 13)
    assert message in str(err)
    assert err.fix is not None
    assert fix in err.fix


def test_an_empty_vars_file_is_an_error() -> None:
    """A vars file with a header and no rows would silently drop its case: it is refused."""
    with pytest.raises(ConfigError, match="holds no rows"):
        case_rows(WHERE, {"vars_file": "x.csv"}, "cases[0]", lambda w: (w, "a,b\n"))


def test_rows_read_back_as_json() -> None:
    """Every value a row can hold survives the JSON a run stores its spec as."""
    rows = parse_jsonl("r.jsonl", '{"a": [1, {"b": null}], "c": -0.5}\n')
    assert json.loads(json.dumps(rows[0].values)) == rows[0].values
