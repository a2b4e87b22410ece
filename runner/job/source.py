"""Job file text -> raw document plus a dotted-key -> line map, and table checks that point at lines.

YAML lines come from ``yaml.compose`` node marks; TOML lines from a scan of table headers and
``key =`` lines (tomllib keeps no positions). Pure: text in, values or ``ConfigError`` out.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import tomllib
from typing import TYPE_CHECKING, Any, Literal

import yaml

from runner.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping

Format = Literal["toml", "yaml"]

_TYPE_WORDS = {
    "str": "a string",
    "int": "an integer",
    "number": "a number",
    "bool": "true or false",
    "table": "a table",
    "list": "a list",
    "strs": "a string or a list of strings",
}


def parse_document(text: str, fmt: Format, path: str) -> tuple[dict[str, Any], dict[str, int]]:
    """The job's top-level table and its dotted-key -> 1-based line map; syntax errors name the line."""
    if fmt == "toml":
        try:
            doc: Any = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            found = re.search(r"line (\d+)", str(exc))
            raise ConfigError(
                f"not valid TOML: {exc}",
                path=path,
                line=int(found.group(1)) if found else None,
                fix="correct the TOML syntax at that line",
            ) from exc
        return doc, _toml_locations(text)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(
            f"not valid YAML: {getattr(exc, 'problem', None) or exc}",
            path=path,
            line=mark.line + 1 if mark is not None else None,
            fix="correct the YAML syntax at that line",
        ) from exc
    if not isinstance(doc, dict):
        raise ConfigError(
            "the file holds no table of job keys", path=path, line=1, fix="start with `name: my-job`"
        )
    _refuse_duplicate_keys(node, "", path)
    locations: dict[str, int] = {}
    _yaml_locations(node, "", locations)
    return doc, locations


def _refuse_duplicate_keys(node: yaml.Node | None, prefix: str, path: str) -> None:
    # PyYAML keeps the last of two equal keys without a word; TOML refuses them, and so do we.
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                key = f"{prefix}.{key_node.value}" if prefix else str(key_node.value)
                line = key_node.start_mark.line + 1
                if key_node.value in seen:
                    raise ConfigError(
                        f"duplicate key (first at line {seen[key_node.value]})",
                        path=path,
                        key=key,
                        line=line,
                        fix="keep one of the two",
                    )
                seen[key_node.value] = line
                _refuse_duplicate_keys(value_node, key, path)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _refuse_duplicate_keys(item, f"{prefix}[{index}]", path)


def _yaml_locations(node: yaml.Node | None, prefix: str, out: dict[str, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                key = f"{prefix}.{key_node.value}" if prefix else str(key_node.value)
                out.setdefault(key, key_node.start_mark.line + 1)
                _yaml_locations(value_node, key, out)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            key = f"{prefix}[{index}]"
            out.setdefault(key, item.start_mark.line + 1)
            _yaml_locations(item, key, out)


_TOML_BARE = r"""(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')"""
_TOML_KEY = re.compile(rf"^\s*({_TOML_BARE}(?:\s*\.\s*{_TOML_BARE})*)\s*=")
_TOML_HEADER = re.compile(rf"^\s*(\[\[?)\s*({_TOML_BARE}(?:\s*\.\s*{_TOML_BARE})*)\s*\]\]?")
_TOML_PART = re.compile(_TOML_BARE)


def _toml_locations(text: str) -> dict[str, int]:
    """Dotted key -> line for every table header and ``key =`` line (inline values map to their key).

    A line scanner, not a parser: tomllib already accepted the text, so headers and keys are where
    they look to be, except inside multi-line strings, which are skipped.
    """
    out: dict[str, int] = {}
    arrays: dict[str, int] = {}  # resolved array-of-tables path -> elements seen so far
    table = ""
    in_string = False
    for number, line in enumerate(text.splitlines(), start=1):
        quotes = line.count('"""') + line.count("'''")
        if in_string:
            in_string = quotes % 2 == 0
            continue
        if quotes % 2 == 1:
            in_string = True
        header = _TOML_HEADER.match(line)
        if header:
            parts = _toml_parts(header.group(2))
            if header.group(1) == "[[":  # a new element of an array of tables
                base = join_key(_resolve(parts[:-1], arrays), parts[-1])
                arrays[base] = arrays.get(base, 0) + 1
                table = f"{base}[{arrays[base] - 1}]"
            else:
                table = _resolve(parts, arrays)
            out.setdefault(table, number)
            continue
        key = _TOML_KEY.match(line)
        if key:
            dotted = ".".join(_toml_parts(key.group(1)))
            out.setdefault(f"{table}.{dotted}" if table else dotted, number)
    return out


def _toml_parts(dotted: str) -> list[str]:
    return [part.strip("\"'") for part in _TOML_PART.findall(dotted)]


def _resolve(parts: list[str], arrays: dict[str, int]) -> str:
    path = ""
    for part in parts:
        path = f"{path}.{part}" if path else part
        if path in arrays:  # [providers.simulator] belongs to the latest [[providers]]
            path = f"{path}[{arrays[path] - 1}]"
    return path


def line_of(locations: Mapping[str, int], key: str) -> int | None:
    """The line of ``key`` or of its nearest ancestor that has one (inline tables, list items)."""
    while key:
        if key in locations:
            return locations[key]
        key = re.sub(r"(\.[^.\[]+|\[\d+\])$", "", key) if re.search(r"[.\[]", key) else ""
    return None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Where:
    """Which file and line table a value came from, to build errors that point at it."""

    path: str
    locations: Mapping[str, int]

    def error(self, key: str | None, message: str, fix: str) -> ConfigError:
        line = line_of(self.locations, key) if key else None
        return ConfigError(message, path=self.path, key=key, line=line, fix=fix)


def join_key(prefix: str, key: str) -> str:
    """``prefix.key``, or ``key`` at the top level."""
    return f"{prefix}.{key}" if prefix else key


def _is_type(value: Any, kind: str) -> bool:
    if kind == "str":
        return isinstance(value, str)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "table":
        return isinstance(value, dict)
    if kind == "list":
        return isinstance(value, list)
    return isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))


def check_table(where: Where, raw: Any, prefix: str, schema: Mapping[str, str]) -> dict[str, Any]:
    """Check a table against its schema: unknown keys (with the closest known one) and value types."""
    if not isinstance(raw, dict):
        raise where.error(prefix or None, "must be a table", "write it as a table of keys")
    for key, value in raw.items():
        dotted = join_key(prefix, str(key))
        if key not in schema:
            close = difflib.get_close_matches(str(key), list(schema), n=1, cutoff=0.6)
            fix = f"did you mean {close[0]!r}?" if close else f"use one of: {', '.join(sorted(schema))}"
            raise where.error(dotted, f"unknown key {key!r}", fix)
        if not _is_type(value, schema[key]):
            word = _TYPE_WORDS[schema[key]]
            raise where.error(dotted, f"must be {word}, not {type(value).__name__}", f"make it {word}")
    return raw


def check_positive(where: Where, table: Mapping[str, Any], prefix: str, key: str, *, zero: bool) -> None:
    """Fail unless ``table[key]`` (when present) is > 0, or >= 0 with ``zero``."""
    value = table.get(key)
    if value is not None and (value < 0 or (value == 0 and not zero)):
        bound = "0 or more" if zero else "more than 0"
        raise where.error(join_key(prefix, key), f"must be {bound}, not {value}", f"set it to {bound}")


def require(where: Where, table: Mapping[str, Any], prefix: str, key: str, fix: str) -> Any:
    """``table[key]``; fail when it is missing, null or empty."""
    value = table.get(key)
    if value is None or value == "":
        raise where.error(join_key(prefix, key), f"{key} is required", fix)
    return value


def optional_float(value: int | float | None) -> float | None:
    """A checked number as a float; ``None`` stays ``None``."""
    return None if value is None else float(value)
