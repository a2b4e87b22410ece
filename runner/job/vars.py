"""A case's data rows: ``vars`` (inline tables) or a ``vars_file`` (CSV or JSON Lines) -> ``Row``s. Pure.

The loader reads the file (through the ``ReadText`` it passes in); this module parses the text. Each
row expands its case into one case, ``<case id>/<row key>``. Every problem is a ``ConfigError`` naming
the file and the row's line, so a bad row is found before anything is sent.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from dataclasses import dataclass
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, Final

from runner.errors import ConfigError
from runner.job.source import join_key, line_of

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from runner.job.source import Where

    # A vars_file path as the job wrote it -> (the file's path, its text). Raises OSError when the file
    # cannot be read (the caller names the job's line), ConfigError when its bytes are not UTF-8.
    ReadText = Callable[[str], tuple[str, str]]

VARS_FORMATS: Final = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    """One data row: its values, its key in the expanded case id, and where it was written."""

    values: dict[str, Any]
    key: str  # the row's ``id`` when present and not empty, else its 1-based number
    number: int  # 1-based, among the rows of its case
    path: str  # the vars file, or the job file for inline vars
    line: int | None
    location: str | None  # the dotted key of an inline row (``cases[0].vars[2]``); None in a vars file

    def error(self, message: str, fix: str) -> ConfigError:
        """An error about this row, pointing at its file and line."""
        label = self.location or f"row {self.number}"
        return ConfigError(f"{label}: {message}", path=self.path, line=self.line, fix=fix)


def row_key(values: Mapping[str, Any], number: int) -> str:
    """The row's part of its case id: its ``id`` value when present and not blank, else ``number``."""
    ident = values.get("id")
    if ident is None or isinstance(ident, bool) or not str(ident).strip():
        return str(number)
    return str(ident)


def case_rows(where: Where, table: Mapping[str, Any], prefix: str, read: ReadText) -> list[Row] | None:
    """The rows of a checked case table; None when it has neither ``vars`` nor ``vars_file``."""
    if "vars" in table and "vars_file" in table:
        raise where.error(
            join_key(prefix, "vars_file"),
            "a case takes vars or vars_file, not both",
            "keep one: inline rows (vars) or a CSV / JSON Lines file (vars_file)",
        )
    if "vars" in table:
        rows = inline_rows(where, table["vars"], join_key(prefix, "vars"))
        empty = where.error(join_key(prefix, "vars"), "holds no rows", "add a row, or remove vars")
    elif "vars_file" in table:
        rows = _file_rows(where, table["vars_file"], join_key(prefix, "vars_file"), read)
        empty = where.error(
            join_key(prefix, "vars_file"),
            f"{table['vars_file']} holds no rows",
            "add rows under its header (CSV) or one JSON object per line (JSONL)",
        )
    else:
        return None
    if not rows:  # a case that expands to nothing would vanish from the job without a word
        raise empty
    return rows


def inline_rows(where: Where, raw: list[Any], prefix: str) -> list[Row]:
    """``vars = [{...}, ...]``: each item a table of JSON-representable values."""
    rows: list[Row] = []
    for index, values in enumerate(raw):
        key = f"{prefix}[{index}]"
        if not isinstance(values, dict):
            raise where.error(key, "a row must be a table", 'write vars = [{city = "Paris"}, ...]')
        for name, value in values.items():
            problem = _json_problem(value)
            if problem is not None:
                raise where.error(
                    join_key(key, str(name)), f"{problem} is not a value a row can hold", _VALUE_FIX
                )
        rows.append(_row(dict(values), index + 1, where.path, line_of(where.locations, key), key))
    return rows


def parse_vars_text(path: str, text: str) -> list[Row]:
    """The rows of a vars file's text, CSV or JSON Lines by its suffix (``vars_format``)."""
    fmt = vars_format(path)
    if fmt == "csv":
        return parse_csv(path, text)
    if fmt == "jsonl":
        return parse_jsonl(path, text)
    raise ConfigError(
        f"unknown vars file format {PurePath(path).suffix!r}",
        path=path,
        fix="name the file .csv (with a header row) or .jsonl (one JSON object per line)",
    )


def vars_format(path: str) -> str | None:
    """``"csv"`` or ``"jsonl"`` by the file's suffix; None for any other."""
    return VARS_FORMATS.get(PurePath(path).suffix.lower())


def parse_csv(path: str, text: str) -> list[Row]:
    """CSV with a header row; every value is a string; blank lines are skipped."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)  # a stray quote is an error
    header: list[str] | None = None
    rows: list[Row] = []
    end = 0  # the line the previous record ended on: a record starts on the next one
    try:
        for record in reader:
            start, end = end + 1, reader.line_num
            if not record:
                continue
            if header is None:
                header = _header(path, start, record)
                continue
            number = len(rows) + 1
            if len(record) != len(header):
                raise ConfigError(
                    f"row {number} has {len(record)} values, the header names {len(header)} columns",
                    path=path,
                    line=start,
                    fix="give every row one value per column (quote a value that holds a comma)",
                )
            rows.append(_row(dict(zip(header, record, strict=True)), number, path, start, None))
    except csv.Error as exc:
        raise ConfigError(
            f"not valid CSV: {exc}", path=path, line=reader.line_num, fix="correct the CSV at that line"
        ) from exc
    if header is None:
        raise ConfigError(
            "the CSV file has no header row", path=path, line=1, fix="start it with a row of column names"
        )
    return rows


def _header(path: str, line: int, record: list[str]) -> list[str]:
    seen: set[str] = set()
    for column, name in enumerate(record, start=1):
        if not name.strip():
            raise ConfigError(
                f"header column {column} has no name", path=path, line=line, fix="name every column"
            )
        if name in seen:
            raise ConfigError(
                f"header column {name!r} appears twice", path=path, line=line, fix="rename one of the two"
            )
        seen.add(name)
    return record


def parse_jsonl(path: str, text: str) -> list[Row]:
    """One JSON object per non-blank line; values keep their JSON types."""
    rows: list[Row] = []
    for line, content in enumerate(text.splitlines(), start=1):
        if not content.strip():
            continue
        try:
            values = json.loads(content, parse_constant=_refuse_constant)
        except (json.JSONDecodeError, ValueError) as exc:
            message = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            raise ConfigError(
                f"row {len(rows) + 1}: not valid JSON: {message}",
                path=path,
                line=line,
                fix="write one JSON object per line",
            ) from exc
        if not isinstance(values, dict):
            raise ConfigError(
                f"row {len(rows) + 1}: a row must be a JSON object, not {type(values).__name__}",
                path=path,
                line=line,
                fix='write one object per line, {"city": "Paris"}',
            )
        rows.append(_row(values, len(rows) + 1, path, line, None))
    return rows


def _refuse_constant(name: str) -> Any:
    # NaN and Infinity are not JSON (a run stores the rows as JSON, which refuses them too).
    raise ValueError(f"{name} is not a JSON number")


_VALUE_FIX = "use a string, number, true/false, or a list or table of those (quote a date)"


def _json_problem(value: Any) -> str | None:
    """What keeps ``value`` from being stored as JSON (a TOML or YAML date, NaN), or None."""
    if value is None or isinstance(value, str | bool | int):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else repr(value)
    if isinstance(value, list):
        return next((p for p in map(_json_problem, value) if p is not None), None)
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            return "a table with keys that are not strings"
        return next((p for p in map(_json_problem, value.values()) if p is not None), None)
    return f"a {type(value).__name__}"


def _row(values: dict[str, Any], number: int, path: str, line: int | None, location: str | None) -> Row:
    row = Row(values=values, key="", number=number, path=path, line=line, location=location)
    ident = values.get("id")
    if isinstance(ident, bool) or not isinstance(ident, str | int | None):
        raise row.error(f"id must be a string or an integer, not {ident!r}", "write the row's id as a string")
    return dataclasses.replace(row, key=row_key(values, number))


def _file_rows(where: Where, written: str, key: str, read: ReadText) -> list[Row]:
    if vars_format(written) is None:
        raise where.error(
            key,
            f"unknown vars file format {PurePath(written).suffix or '(no suffix)'!r}",
            "name the file .csv (with a header row) or .jsonl (one JSON object per line)",
        )
    try:
        path, text = read(written)
    except OSError as exc:
        raise where.error(
            key,
            f"cannot read {written}: {exc.strerror or exc}",
            "check the path (a vars_file is relative to the job file)",
        ) from exc
    return parse_vars_text(path, text)
