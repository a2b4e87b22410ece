"""openai-responses emitter: the Responses API's typed event streams and ``response`` bodies.

A stream: ``response.created``, ``response.in_progress``, then one output item after another (a
``reasoning`` item with summary deltas, a ``message`` item with output-text deltas, one
``function_call`` item per call with argument deltas), each opened by ``output_item.added`` and
closed by ``output_item.done``, and ``response.completed`` (``response.incomplete`` when the answer
hit ``max_output_tokens``) with the whole response and its usage. Every event carries its
``sequence_number``. Request bodies are checked as the real API checks them (``read``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Final

import orjson

from runner.simulator.emitters.base import (
    Counts,
    InvalidRequestError,
    Task,
    model_name,
    offered_tools,
    token_limit,
)
from runner.simulator.emitters.openai_chat import OpenAIWire
from runner.simulator.emitters.openai_responses_check import parameters_problem
from runner.simulator.frames import EmitContext, Frame

if TYPE_CHECKING:
    from runner.simulator.config import SimulatorConfig
    from runner.simulator.script import Expected, ExpectedChoice, ExpectedToolCall

HEARTBEAT: Final = b": keep-alive\n\n"
_INPUT_PARTS: Final = frozenset({"input_text", "input_image", "input_file"})
# What input_image fetches or decodes: an http(s) URL, or a base64 data: URL of PNG, JPEG, WEBP or GIF.
_IMAGE_URL: Final = re.compile(r"https?://|data:image/(?:png|jpeg|gif|webp);base64,")
_OUTPUT_PARTS: Final = frozenset({"output_text", "refusal"})


class OpenAIResponsesEmitter(OpenAIWire):
    """The OpenAI Responses wire shape: one answer per request, reasoning, message and function items."""

    name: str = "openai-responses"
    route: str = "/v1/responses"
    response_id_prefix: str = "resp_"
    heartbeat: bytes = HEARTBEAT
    has_flavors: bool = False

    def read(self, body: Any) -> Task | None:
        if not isinstance(body, dict):
            return None
        # A parameter it does not know (chat's messages, max_tokens, seed...) or of the wrong type:
        # the API's own 400 message, so a request built for the wrong API fails as in production.
        problem = parameters_problem(body)
        if problem is not None:
            raise InvalidRequestError(problem)
        if not _valid_input(body.get("input")):
            return None
        if not _valid_tools(body.get("tools", [])) or not _valid_tool_choice(body.get("tool_choice", "auto")):
            return None
        return Task(
            body=body,
            model=model_name(body),
            stream=body.get("stream") is True,
            choices=1,  # the Responses API has no n
            max_tokens=token_limit(body.get("max_output_tokens")),
            reasoning=isinstance(body.get("reasoning"), dict),
            tools=offered_tools(body, wrapper=None, schema="parameters"),
        )

    def usage(
        self, task: Task, config: SimulatorConfig, counts: Counts
    ) -> tuple[dict[str, Any] | None, float | None]:
        usage = {
            "input_tokens": counts.prompt,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": counts.completion,
            "output_tokens_details": {"reasoning_tokens": counts.reasoning},
            "total_tokens": counts.prompt + counts.completion,
        }
        return usage, None

    def stream_frames(
        self, expected: Expected, task: Task, config: SimulatorConfig, ctx: EmitContext
    ) -> list[Frame]:
        return _Stream(expected, ctx).frames()

    def response_body(self, expected: Expected, task: Task, ctx: EmitContext) -> bytes:
        choice = expected.choices[0]
        output = [item for _, item in _items(choice, ctx)]
        return orjson.dumps(_response(expected, ctx, _status(choice), output, expected.usage))

    def stream_error(self, *, miromind: bool, response_id: str, model: str, task: Task) -> list[Frame]:
        # The Responses API's `error` event: code and message at the top level.
        error = {
            "type": "error",
            "code": "server_error",
            "message": "Simulated upstream failure mid-stream.",
            "param": None,
        }
        return [Frame(_event("error", error))]


def _event(name: str, payload: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def _status(choice: ExpectedChoice) -> str:
    return "incomplete" if choice.finish_reason == "length" else "completed"


def _response(
    expected: Expected, ctx: EmitContext, status: str, output: list[Any], usage: Any
) -> dict[str, Any]:
    return {
        "id": ctx.response_id,
        "object": "response",
        "created_at": ctx.created,
        "status": status,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "model": expected.model,
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": usage,
    }


def _items(choice: ExpectedChoice, ctx: EmitContext) -> list[tuple[str, dict[str, Any]]]:
    """The finished output items of a choice: (kind, item as output_item.done sends it)."""
    rid = ctx.response_id
    items: list[tuple[str, dict[str, Any]]] = []
    if choice.reasoning_tokens:
        summary = [{"type": "summary_text", "text": choice.reasoning}]
        items.append(("reasoning", {"id": f"rs_{rid}", "type": "reasoning", "summary": summary}))
    if choice.text_tokens:
        part = {"type": "output_text", "text": choice.text, "annotations": []}
        message = {"id": f"msg_{rid}", "type": "message", "status": "completed", "role": "assistant"}
        items.append(("message", {**message, "content": [part]}))
    for k, call in enumerate(choice.tool_calls):
        items.append(("function_call", _call(call, f"fc_{rid}_{k}", call.arguments, "completed")))
    return items


def _call(call: ExpectedToolCall, item_id: str, arguments: str, status: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "call_id": call.id,
        "name": call.name,
        "arguments": arguments,
    }


class _Stream:
    """Builds one stream's frames in order, numbering every event."""

    def __init__(self, expected: Expected, ctx: EmitContext) -> None:
        self.expected = expected
        self.ctx = ctx
        self.out: list[Frame] = []

    def emit(self, kind: str, token: bool = False, /, **fields: Any) -> None:
        payload = {"type": kind, "sequence_number": len(self.out), **fields}
        self.out.append(Frame(_event(kind, payload), token))

    def frames(self) -> list[Frame]:
        expected, ctx = self.expected, self.ctx
        choice = expected.choices[0]
        start = _response(expected, ctx, "in_progress", [], None)
        self.emit("response.created", response=start)
        self.emit("response.in_progress", response=start)
        output = []
        tools = iter(choice.tool_calls)
        for index, (kind, item) in enumerate(_items(choice, ctx)):
            if kind == "reasoning":
                self.reasoning(index, item, choice)
            elif kind == "message":
                self.message(index, item, choice)
            else:
                self.function_call(index, item, next(tools))
            self.emit("response.output_item.done", output_index=index, item=item)
            output.append(item)
        status = _status(choice)
        self.emit(f"response.{status}", response=_response(expected, ctx, status, output, expected.usage))
        return self.out

    def reasoning(self, index: int, item: dict[str, Any], choice: ExpectedChoice) -> None:
        ids = {"item_id": item["id"], "output_index": index}
        self.emit("response.output_item.added", output_index=index, item={**item, "summary": []})
        empty = {"type": "summary_text", "text": ""}
        self.emit("response.reasoning_summary_part.added", **ids, summary_index=0, part=empty)
        for piece in self.ctx.group(choice.reasoning_tokens):
            self.emit("response.reasoning_summary_text.delta", True, **ids, summary_index=0, delta=piece)
        self.emit("response.reasoning_summary_text.done", **ids, summary_index=0, text=choice.reasoning)
        part = {"type": "summary_text", "text": choice.reasoning}
        self.emit("response.reasoning_summary_part.done", **ids, summary_index=0, part=part)

    def message(self, index: int, item: dict[str, Any], choice: ExpectedChoice) -> None:
        ids = {"item_id": item["id"], "output_index": index, "content_index": 0}
        added = {**item, "status": "in_progress", "content": []}
        self.emit("response.output_item.added", output_index=index, item=added)
        empty = {"type": "output_text", "text": "", "annotations": []}
        self.emit("response.content_part.added", **ids, part=empty)
        for piece in self.ctx.group(choice.text_tokens):
            self.emit("response.output_text.delta", True, **ids, delta=piece, logprobs=[])
        self.emit("response.output_text.done", **ids, text=choice.text, logprobs=[])
        self.emit("response.content_part.done", **ids, part=item["content"][0])

    def function_call(self, index: int, item: dict[str, Any], call: ExpectedToolCall) -> None:
        ids = {"item_id": item["id"], "output_index": index}
        added = _call(call, item["id"], "", "in_progress")
        self.emit("response.output_item.added", output_index=index, item=added)
        for piece in self.ctx.fragments(call.arguments):
            self.emit("response.function_call_arguments.delta", True, **ids, delta=piece)
        self.emit("response.function_call_arguments.done", **ids, name=call.name, arguments=call.arguments)


def _valid_input(value: Any) -> bool:
    """Whether ``input`` is what the API accepts: a string, or items that refer to earlier calls."""
    if isinstance(value, str):
        return True
    if not isinstance(value, list) or not value:
        return False
    calls: set[str] = set()
    outputs: set[str] = set()
    for item in value:
        if not isinstance(item, dict):
            return False
        kind = item.get("type", "message")
        if kind == "message":
            if not _valid_message(item):
                return False
        elif kind == "function_call":
            if not all(isinstance(item.get(key), str) for key in ("call_id", "name", "arguments")):
                return False
            calls.add(item["call_id"])
        elif kind == "function_call_output":
            # "No tool call found for function call output with call_id ...": the real API's 400.
            if item.get("call_id") not in calls or not isinstance(item.get("output"), (str, list)):
                return False
            outputs.add(item["call_id"])
        else:
            return False
    # "No tool output found for function call ...": a call needs its output too.
    return calls <= outputs


def _valid_message(item: dict[str, Any]) -> bool:
    role = item.get("role")
    if role not in ("user", "assistant", "system", "developer"):
        return False
    content = item.get("content")
    if isinstance(content, str):
        return True
    if not isinstance(content, list):
        return False
    allowed = _OUTPUT_PARTS if role == "assistant" else _INPUT_PARTS
    for part in content:
        if not isinstance(part, dict) or part.get("type") not in allowed:
            return False
        if part["type"] == "input_image" and not (
            _IMAGE_URL.match(part.get("image_url") or "") or isinstance(part.get("file_id"), str)
        ):
            return False  # "Invalid image URL" / an image type the API does not read
    return True


def _valid_tools(value: Any) -> bool:
    # Function tools are flat here: chat's {"type": "function", "function": {...}} lacks `name`.
    if not isinstance(value, list):
        return False
    return all(
        isinstance(tool, dict)
        and (tool.get("type") != "function" or (isinstance(tool.get("name"), str) and "function" not in tool))
        for tool in value
    )


def _valid_tool_choice(value: Any) -> bool:
    # A string mode, or an object with its type (a named function is flat: chat's nested
    # {"type": "function", "function": {"name": ...}} is "Missing required parameter: 'tool_choice.name'").
    if isinstance(value, str):
        return value in ("auto", "none", "required")
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        return False
    return value["type"] != "function" or (isinstance(value.get("name"), str) and "function" not in value)
