"""JSON encoding that never fails on a value runner decoded from a provider.

orjson decodes nesting up to 1024 levels but encodes only up to 255, so a hostile or broken stream
(``{"error": {"message": [[[[…]]]]}}``) could make a later encode raise: in a dialect, in the
database writer, in an export. Every encode of provider data goes through here instead.
"""

from __future__ import annotations

import json
from typing import Any, Final

import orjson

TOO_DEEP: Final = '"<value nested too deeply to encode>"'


def dumps(value: Any, *, option: int | None = None) -> bytes:
    """``orjson.dumps``, falling back to the stdlib (deeper nesting) and then to a marker."""
    try:
        return orjson.dumps(value, option=option)
    except TypeError:
        pass  # orjson's recursion limit (or a type it does not know): try the slower encoder
    try:
        return json.dumps(value, ensure_ascii=False, default=str, allow_nan=False).encode()
    except (RecursionError, ValueError):
        return TOO_DEEP.encode()


def dumps_text(value: Any, *, option: int | None = None) -> str:
    """``dumps`` as a str."""
    return dumps(value, option=option).decode()
