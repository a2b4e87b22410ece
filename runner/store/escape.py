"""A reversible escaping of U+0000 for PostgreSQL, whose ``text`` and ``json`` values cannot hold it.

NUL is stored as ``ESCAPE + "0"`` and the escape character itself as ``ESCAPE + ESCAPE``: a
prefix-free code, so every string round-trips. Applied on PostgreSQL only (runner.store.models).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import Callable

# U+2400 SYMBOL FOR NULL: rare in real text, so stored answers look unchanged, and a SQL user who
# meets it sees what it stands for. docs/schema.md documents the convention.
ESCAPE: Final = "\u2400"
NUL: Final = "\x00"
_ESCAPED: Final = re.compile(ESCAPE + "(.)", re.DOTALL)


def escape(text: str) -> str:
    """``text`` with NUL and the escape character escaped (unchanged when it holds neither)."""
    if ESCAPE not in text and NUL not in text:
        return text
    # The escape character first, so the escapes the second replace adds are not doubled.
    return text.replace(ESCAPE, ESCAPE + ESCAPE).replace(NUL, ESCAPE + "0")


def unescape(text: str) -> str:
    """The original of ``escape(original)``; a lone escape character (a hand edit) stays as it is."""
    if ESCAPE not in text:
        return text
    return _ESCAPED.sub(_unescape_one, text)


def _unescape_one(match: re.Match[str]) -> str:
    following = match[1]
    if following == "0":
        return NUL
    if following == ESCAPE:
        return ESCAPE
    return match[0]


def escape_json(value: Any) -> Any:
    """``value`` (as ``json.loads`` returns it) with every string, keys included, escaped."""
    return _walk(value, escape)


def unescape_json(value: Any) -> Any:
    """The original of ``escape_json(original)``."""
    return _walk(value, unescape)


def _walk(value: Any, convert: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return convert(value)
    if isinstance(value, dict):
        return {convert(k) if isinstance(k, str) else k: _walk(v, convert) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_walk(item, convert) for item in value]
    return value
