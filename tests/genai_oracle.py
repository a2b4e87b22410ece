"""google-genai as a test oracle: what its typed stream chunks say, per candidate, in one plain shape."""

from __future__ import annotations

from typing import Any

from google.genai import types as genai_types


def genai_candidates(chunks: list[genai_types.GenerateContentResponse]) -> dict[int, dict[str, Any]]:
    """Per candidate index: its text, thoughts, function calls ``(id, name, args)`` and finish reason.

    A call without ``args`` reads as ``{}``: our dialect sends that call's arguments as ``"{}"``.
    """
    found: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        for candidate in chunk.candidates or ():
            slot = found.setdefault(
                candidate.index or 0, {"text": "", "thoughts": "", "calls": [], "finish": None}
            )
            for part in (candidate.content.parts if candidate.content else None) or ():
                if part.function_call is not None:
                    call = part.function_call
                    slot["calls"].append((call.id, call.name, call.args or {}))
                elif part.text:
                    slot["thoughts" if part.thought else "text"] += part.text
            if candidate.finish_reason is not None:
                slot["finish"] = candidate.finish_reason.value
    return found
