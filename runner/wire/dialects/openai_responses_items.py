"""The output items of an ``openai-responses`` stream being rebuilt, and the choice they make.

The accumulator (openai_responses_stream) keys items by ``output_index`` and their text parts by
``content_index`` (``summary_index`` for reasoning summaries); ``items_choice`` turns what it
gathered into the one choice of the result.
"""

from __future__ import annotations

from typing import Any, Final

from runner.model import Choice, FinishReason, ToolCall, Usage
from runner.wire.dialects.common import ToolCallBuilder, int_or_none

# incomplete_details.reason -> the normalized finish reason (others: None, the raw reason kept).
_INCOMPLETE: Final[dict[str, FinishReason]] = {
    "max_output_tokens": "length",
    "content_filter": "content_filter",
}
# Keys of Item.reasoning: summaries come before the reasoning text of the same item.
SUMMARY, REASONING_TEXT = 0, 1


def responses_usage(raw: dict[str, Any]) -> Usage:
    """Normalize a Responses usage object: cached tokens are inside input, reasoning inside output."""
    input_details = raw.get("input_tokens_details")
    output_details = raw.get("output_tokens_details")
    details = input_details if isinstance(input_details, dict) else {}
    cached = details.get("cached_tokens")
    reasoning = output_details.get("reasoning_tokens") if isinstance(output_details, dict) else None
    return Usage(
        input_tokens=int_or_none(raw.get("input_tokens")),
        output_tokens=int_or_none(raw.get("output_tokens")),
        total_tokens=int_or_none(raw.get("total_tokens")),
        reasoning_tokens=int_or_none(reasoning),
        cached_input_tokens=int_or_none(cached),
        cache_write_tokens=int_or_none(details.get("cache_write_tokens")),  # PROTOCOLS.md 3
        raw=raw,
    )


class Part:
    """One text part (output text, refusal, reasoning summary or text) being rebuilt."""

    __slots__ = ("done", "pieces")

    def __init__(self) -> None:
        self.pieces: list[str] = []
        self.done: str | None = None  # the `.done` (or finished item's) text: used only when no delta came

    def text(self) -> str:
        return "".join(self.pieces) if self.pieces else (self.done or "")


def part_at(parts: dict[Any, Part], key: Any) -> Part:
    found = parts.get(key)
    if found is None:
        found = parts[key] = Part()
    return found


class Item:
    """One output item, by ``output_index``: a message, a function call, reasoning, or another kind."""

    __slots__ = ("args_done", "kind", "raw", "reasoning", "refusal", "text", "tool")

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.raw: dict[str, Any] | None = None  # the finished item as sent (kept for unknown kinds)
        self.text: dict[int, Part] = {}  # content_index -> output_text part
        self.refusal: dict[int, Part] = {}
        self.reasoning: dict[tuple[int, int], Part] = {}
        self.tool: ToolCallBuilder | None = ToolCallBuilder(None) if kind == "function_call" else None
        self.args_done: str | None = None


def as_index(value: Any) -> int:
    # A missing or non-integer index reads as 0 (a bool is not an index).
    return value if type(value) is int else 0


def as_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def items_choice(
    items: dict[int, Item], finish: FinishReason | None, raw_finish: str | None
) -> tuple[Choice, list[Any]]:
    """The choice the items make (in output order), and the items of other kinds, as sent."""
    text: list[str] = []
    refusal: list[str] | None = None
    reasoning: list[str] = []
    calls: list[ToolCall] = []
    others: list[Any] = []
    for index in sorted(items):
        item = items[index]
        text.extend(item.text[k].text() for k in sorted(item.text))
        if item.refusal:
            refusal = (refusal or []) + [item.refusal[k].text() for k in sorted(item.refusal)]
        reasoning.extend(t for k in sorted(item.reasoning) if (t := item.reasoning[k].text()))
        if item.tool is not None:
            if not item.tool.args and item.args_done:
                item.tool.args = [item.args_done]
            calls.append(item.tool.build())
        elif item.kind not in ("message", "reasoning") and item.raw is not None:
            others.append(item.raw)  # web_search_call and other built-in tool items, as sent
    choice = Choice(
        index=0,
        text="".join(text),
        # Summary parts and reasoning texts are separate paragraphs.
        reasoning="\n\n".join(reasoning),
        refusal="".join(refusal) if refusal is not None else None,
        tool_calls=tuple(calls),
        finish_reason=finish,
        raw_finish_reason=raw_finish,
    )
    return choice, others


def finished_parts(raw: dict[str, Any]) -> list[tuple[Any, tuple[bool, str]]]:
    """The text parts of a finished item: (part key, (is refusal, text))."""
    found: list[tuple[Any, tuple[bool, str]]] = []
    content = raw.get("content")
    for index, part in enumerate(content if isinstance(content, list) else ()):
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "output_text" and isinstance(part.get("text"), str):
            found.append((index, (False, part["text"])))
        elif kind == "refusal" and isinstance(part.get("refusal"), str):
            found.append((index, (True, part["refusal"])))
        elif kind == "reasoning_text" and isinstance(part.get("text"), str):
            found.append(((REASONING_TEXT, index), (False, part["text"])))
    summary = raw.get("summary")
    for index, part in enumerate(summary if isinstance(summary, list) else ()):
        if isinstance(part, dict) and isinstance(part.get("text"), str):
            found.append(((SUMMARY, index), (False, part["text"])))
    return found


def fill_item(items: dict[int, Item], index: int, raw: dict[str, Any]) -> None:
    """Take a finished item's text, name and arguments (``output_item.done``, the terminal event's
    output) where no delta gave them."""
    kind = as_str(raw.get("type")) or ""
    item = items.get(index)
    if item is None:
        item = items[index] = Item(kind)
    item.raw = raw
    if item.tool is not None:
        # The call_id wins: the added item's id (fc_...) stood in for it if that item had none.
        item.tool.id = as_str(raw.get("call_id")) or item.tool.id or None
        item.tool.name = item.tool.name or as_str(raw.get("name")) or ""
        if item.args_done is None:
            item.args_done = as_str(raw.get("arguments"))
    for key, part in finished_parts(raw):
        target = item.reasoning if isinstance(key, tuple) else item.refusal if part[0] else item.text
        found = part_at(target, key)
        if found.done is None:
            found.done = part[1]


def fill_output(items: dict[int, Item], response: dict[str, Any]) -> bool:
    """Fill the items from a terminal event's response output; whether any item is a function call."""
    output = response.get("output")
    for index, raw in enumerate(output if type(output) is list else ()):
        if type(raw) is dict:
            fill_item(items, index, raw)
    return any(item.tool is not None for item in items.values())


def incomplete_finish(response: dict[str, Any]) -> tuple[str, FinishReason | None]:
    """The raw and normalized finish reasons of a ``response.incomplete``."""
    details = response.get("incomplete_details")
    reason = as_str(details.get("reason")) if isinstance(details, dict) else None
    return reason or "incomplete", _INCOMPLETE.get(reason or "")
