"""The canonical conversation shape, read the same way by every dialect that translates it. Pure.

A case's ``messages`` are OpenAI chat's: ``system`` / ``user`` / ``assistant`` (with ``tool_calls``) /
``tool`` (with ``tool_call_id``); ``content`` is a string, None (an assistant turn that only calls tools),
or a list of parts: ``{"type": "text", "text": ...}`` and ``{"type": "image_url", "image_url": {"url":
...}}``, the URL an ``https:`` one or a base64 ``data:`` URL. The helpers here only read that shape; each
dialect turns it into its own, and refuses (``Dialect.check_messages``) what it cannot send.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

# The image media types every dialect that reads images takes inline (Anthropic's list; OpenAI's
# input_image takes the same four).
IMAGE_TYPES: Final = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
# data:[<media type>][;base64],<data>: the only form of inline image the canonical shape takes.
_DATA_URL: Final = re.compile(r"data:(?P<type>[\w.+-]+/[\w.+-]+)?(?P<params>(?:;[^;,]*)*),(?P<data>.*)", re.S)


@dataclass(frozen=True, slots=True, kw_only=True)
class Part:
    """One content part: text, or an image by URL (``data`` is set for a base64 ``data:`` URL)."""

    kind: str  # "text", "image", or the part's own type when it is neither (refused by dialects)
    text: str = ""
    url: str = ""
    media_type: str | None = None  # a data: URL's media type
    data: str | None = None  # a data: URL's base64 payload


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCall:
    """One call an earlier assistant turn made: ``arguments`` is the JSON text as OpenAI sends it."""

    id: str
    name: str
    arguments: str


def parts(content: Any) -> list[Part]:
    """The parts of a message's content; a string is one text part, None or "" none."""
    if content is None or content == "":
        return []
    if isinstance(content, str):
        return [Part(kind="text", text=content)]
    if not isinstance(content, list):
        return [Part(kind=type(content).__name__)]
    return [_part(raw) for raw in content]


def _part(raw: Any) -> Part:
    kind = raw.get("type") if isinstance(raw, dict) else None
    if kind == "text" and isinstance(raw.get("text"), str):
        return Part(kind="text", text=raw["text"])
    if kind == "image_url":
        image = raw.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        if isinstance(url, str):
            return image_part(url)
    return Part(kind=str(kind))


def image_part(url: str) -> Part:
    """An image part for ``url``; ``data`` and ``media_type`` are set for a base64 ``data:`` URL."""
    if not url.startswith("data:"):
        return Part(kind="image", url=url)
    match = _DATA_URL.fullmatch(url)
    if match is None or ";base64" not in match["params"]:
        return Part(kind="image", url=url)  # not base64: the dialect's check refuses it
    return Part(kind="image", url=url, media_type=match["type"] or None, data=match["data"])


def text_of(content: Any) -> str | None:
    """The content as one string when it holds only text parts (joined by blank lines), else None."""
    found = parts(content)
    if any(part.kind != "text" for part in found):
        return None
    return "\n\n".join(part.text for part in found)


def tool_calls(message: dict[str, Any]) -> list[ToolCall] | None:
    """The assistant message's tool calls, or None when one is malformed (no id, name or string arguments)."""
    raw = message.get("tool_calls") or []
    if not isinstance(raw, list):
        return None
    calls = []
    for call in raw:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            return None
        call_id, name, arguments = call.get("id"), function.get("name"), function.get("arguments", "{}")
        if not (isinstance(call_id, str) and isinstance(name, str) and isinstance(arguments, str)):
            return None
        calls.append(ToolCall(id=call_id, name=name, arguments=arguments))
    return calls


def has_images(message: dict[str, Any]) -> bool:
    return any(part.kind == "image" for part in parts(message.get("content")))
