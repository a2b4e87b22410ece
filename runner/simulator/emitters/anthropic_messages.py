"""anthropic-messages emitter: typed ``event:`` streams and ``message`` bodies (../shared/PROTOCOLS.md §4).

Blocks in order: thinking (thinking_delta pieces, then one signature_delta), text, tool_use
(input_json_delta pieces, the first one ``""``). ``message_start`` carries the input-side usage with a
small ``output_tokens``; ``message_delta`` carries the cumulative final usage.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import orjson

from runner.simulator.frames import EmitContext, Frame, data_event

if TYPE_CHECKING:
    from runner.simulator.script import Expected

HEARTBEAT: Final = b'event: ping\ndata: {"type":"ping"}\n\n'
STOP_REASONS: Final = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}
_DELTA: Final = b"content_block_delta"


def stream_frames(expected: Expected, ctx: EmitContext) -> list[Frame]:
    """Every event of the stream, ``message_stop`` included."""
    choice = expected.choices[0]
    usage = expected.usage or {}
    start_usage = {**usage, "output_tokens": 1}
    message = {**_message(expected, ctx, content=[], stop_reason=None), "usage": start_usage}
    frames = [
        Frame(data_event({"type": "message_start", "message": message}, event=b"message_start")),
        Frame(HEARTBEAT),  # Anthropic sends a ping right after message_start
    ]
    index = 0

    def delta(block: int, body: dict[str, Any]) -> Frame:
        payload = {"type": "content_block_delta", "index": block, "delta": body}
        return Frame(data_event(payload, event=_DELTA), True)

    def block(start: dict[str, Any], deltas: list[Frame]) -> None:
        payload = {"type": "content_block_start", "index": index, "content_block": start}
        frames.append(Frame(data_event(payload, event=b"content_block_start")))
        frames.extend(deltas)
        stop = {"type": "content_block_stop", "index": index}
        frames.append(Frame(data_event(stop, event=b"content_block_stop")))

    if choice.reasoning_tokens:
        pieces = [
            delta(index, {"type": "thinking_delta", "thinking": p})
            for p in ctx.group(choice.reasoning_tokens)
        ]
        pieces.append(delta(index, {"type": "signature_delta", "signature": choice.signature}))
        block({"type": "thinking", "thinking": "", "signature": ""}, pieces)
        index += 1
    if choice.text_tokens:
        pieces = [delta(index, {"type": "text_delta", "text": p}) for p in ctx.group(choice.text_tokens)]
        block({"type": "text", "text": ""}, pieces)
        index += 1
    for call in choice.tool_calls:
        parts = ["", *ctx.fragments(call.arguments)]
        pieces = [delta(index, {"type": "input_json_delta", "partial_json": p}) for p in parts]
        block({"type": "tool_use", "id": call.id, "name": call.name, "input": {}}, pieces)
        index += 1
    final = {
        "type": "message_delta",
        "delta": {"stop_reason": STOP_REASONS[choice.finish_reason], "stop_sequence": None},
        "usage": usage,
    }
    frames.append(Frame(data_event(final, event=b"message_delta")))
    frames.append(Frame(data_event({"type": "message_stop"}, event=b"message_stop")))
    return frames


def response_body(expected: Expected, ctx: EmitContext) -> bytes:
    """The non-streamed ``message`` body."""
    choice = expected.choices[0]
    content: list[dict[str, Any]] = []
    if choice.reasoning_tokens:
        content.append({"type": "thinking", "thinking": choice.reasoning, "signature": choice.signature})
    if choice.text_tokens:
        content.append({"type": "text", "text": choice.text})
    for call in choice.tool_calls:
        content.append(
            {"type": "tool_use", "id": call.id, "name": call.name, "input": orjson.loads(call.arguments)}
        )
    out = _message(expected, ctx, content=content, stop_reason=STOP_REASONS[choice.finish_reason])
    out["usage"] = expected.usage
    return orjson.dumps(out)


def _message(
    expected: Expected, ctx: EmitContext, *, content: list[Any], stop_reason: str | None
) -> dict[str, Any]:
    return {
        "id": ctx.response_id,
        "type": "message",
        "role": "assistant",
        "model": expected.model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
    }
