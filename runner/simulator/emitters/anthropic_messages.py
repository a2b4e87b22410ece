"""anthropic-messages emitter: typed ``event:`` streams and ``message`` bodies.

Blocks in order: thinking (thinking_delta pieces, then one signature_delta), text, tool_use
(input_json_delta pieces, the first one ``""``). ``message_start`` carries the input-side usage with a
small ``output_tokens``; ``message_delta`` carries the cumulative final usage.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import orjson

from runner.simulator.emitters.anthropic_check import messages_problem
from runner.simulator.emitters.base import (
    Counts,
    InvalidRequestError,
    Task,
    model_name,
    offered_tools,
    token_limit,
)
from runner.simulator.faults import error_message
from runner.simulator.frames import EmitContext, Frame, data_event

if TYPE_CHECKING:
    from runner.simulator.config import SimulatorConfig
    from runner.simulator.script import Expected

HEARTBEAT: Final = b'event: ping\ndata: {"type":"ping"}\n\n'
STOP_REASONS: Final = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}
# status -> error type; other statuses get a generic one by class (4xx or 5xx)
ERRORS: Final = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "api_error",
    529: "overloaded_error",
}
_DELTA: Final = b"content_block_delta"


class AnthropicMessagesEmitter:
    """The Anthropic Messages wire shape: one answer per request, thinking and tool_use blocks."""

    name: str = "anthropic-messages"
    route: str = "/v1/messages"
    base_path: str = ""  # the anthropic SDK appends /v1/messages itself
    response_id_prefix: str = "msg_"
    tool_call_prefix: str = "toolu_"
    heartbeat: bytes = HEARTBEAT
    words_before_tools: int = 6  # Claude says a few words before its tool_use blocks
    has_flavors: bool = False

    def read(self, body: Any) -> Task | None:
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return None
        problem = messages_problem(body)
        if problem is not None:
            raise InvalidRequestError(problem)
        thinking = body.get("thinking")
        return Task(
            body=body,
            model=model_name(body),
            stream=body.get("stream") is True,
            choices=1,  # the Messages API has no n
            max_tokens=token_limit(body.get("max_tokens")),
            reasoning=isinstance(thinking, dict) and thinking.get("type") == "enabled",
            tools=offered_tools(body, wrapper=None, schema="input_schema"),
        )

    def usage(
        self, task: Task, config: SimulatorConfig, counts: Counts
    ) -> tuple[dict[str, Any] | None, float | None]:
        usage = {
            "input_tokens": counts.prompt,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": counts.completion,
        }
        return usage, None

    def stream_frames(
        self, expected: Expected, task: Task, config: SimulatorConfig, ctx: EmitContext
    ) -> list[Frame]:
        return _stream_frames(expected, ctx)

    def response_body(self, expected: Expected, task: Task, ctx: EmitContext) -> bytes:
        return _response_body(expected, ctx)

    def error_body(self, status: int, *, quota: bool = False, task: Task | None = None) -> bytes:
        default = "api_error" if status >= 500 else "invalid_request_error"
        error = {"type": ERRORS.get(status, default), "message": error_message(status, quota=quota)}
        return orjson.dumps({"type": "error", "error": error})

    def stream_error(self, *, miromind: bool, response_id: str, model: str, task: Task) -> list[Frame]:
        error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        return [Frame(data_event(error, event=b"error"))]


def _stream_frames(expected: Expected, ctx: EmitContext) -> list[Frame]:
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


def _response_body(expected: Expected, ctx: EmitContext) -> bytes:
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
