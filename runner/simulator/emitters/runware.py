"""runware emitter: ``textInference`` task streams (``delta.text`` / ``delta.reasoningContent``).

Several results (``numberResults``) interleave with a ``resultIndex`` on every chunk (absent for a single
result). ``usage`` (camelCase) and ``cost`` ride on the last finish chunk, covering all results, only
when the task sets ``includeUsage`` / ``includeCost``. The stream opens with a ``: ping`` comment.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import orjson

from runner.simulator.emitters.base import (
    Counts,
    InvalidRequestError,
    Task,
    choice_count,
    model_name,
    token_limit,
)
from runner.simulator.faults import error_message
from runner.simulator.frames import EmitContext, Frame, data_event, interleave

if TYPE_CHECKING:
    from runner.simulator.config import SimulatorConfig
    from runner.simulator.script import Expected

HEARTBEAT: Final = b": ping\n\n"
_ROLES: Final = frozenset({"system", "user", "assistant"})
DONE: Final = Frame(b"data: [DONE]\n\n")
# status -> error code; other statuses get a generic one by class (4xx or 5xx)
ERRORS: Final = {
    400: "invalidRequest",
    401: "invalidApiKey",
    402: "insufficientCredits",
    403: "forbidden",
    404: "modelNotFound",
    429: "rateLimitExceeded",
    500: "internalServerError",
    502: "badGateway",
    503: "serviceUnavailable",
    529: "overloaded",
}


class RunwareEmitter:
    """The Runware task API: a list of tasks in, ``textInference`` results out (text only, no tools)."""

    name: str = "runware"
    route: str = "/v1"
    base_path: str = "/v1"
    response_id_prefix: str = "chatcmpl-"  # Runware sends none; only the server log sees it
    tool_call_prefix: str = "toolu_"  # unused: Runware is never offered tools
    heartbeat: bytes = HEARTBEAT
    words_before_tools: int = 6
    has_flavors: bool = False

    def read(self, body: Any) -> Task | None:
        if not isinstance(body, list) or not body or not isinstance(body[0], dict):
            return None
        task: dict[str, Any] = body[0]
        if task.get("taskType") != "textInference":
            return None
        problem = _task_problem(task)
        if problem is not None:
            raise InvalidRequestError(problem)
        settings = task.get("settings")
        return Task(
            body=task,
            model=model_name(task),
            stream=task.get("deliveryMethod") == "stream",
            choices=choice_count(task.get("numberResults", 1)),
            max_tokens=token_limit(settings.get("maxTokens") if isinstance(settings, dict) else None),
            reasoning=False,
            tools=(),
        )

    def usage(
        self, task: Task, config: SimulatorConfig, counts: Counts
    ) -> tuple[dict[str, Any] | None, float | None]:
        usage = {
            "promptTokens": counts.prompt,
            "completionTokens": counts.completion,
            "totalTokens": counts.prompt + counts.completion,
        }
        if counts.reasoning:
            usage["reasoningTokens"] = counts.reasoning
        include_usage = bool(task.body.get("includeUsage")) or not task.stream
        return (usage if include_usage else None), (counts.cost if task.body.get("includeCost") else None)

    def stream_frames(
        self, expected: Expected, task: Task, config: SimulatorConfig, ctx: EmitContext
    ) -> list[Frame]:
        return _stream_frames(expected, task.body, ctx)

    def response_body(self, expected: Expected, task: Task, ctx: EmitContext) -> bytes:
        return _response_body(expected, task.body)

    def error_body(self, status: int, *, quota: bool = False, task: Task | None = None) -> bytes:
        default = "internalServerError" if status >= 500 else "invalidRequest"
        code = "insufficientCredits" if quota else ERRORS.get(status, default)
        uuid = task_uuid(task.body) if task is not None else ""
        error = {
            "code": code,
            "message": error_message(status, quota=quota),
            "taskType": "textInference",
            "taskUUID": uuid,
        }
        return orjson.dumps({"errors": [error]})

    def stream_error(self, *, miromind: bool, response_id: str, model: str, task: Task) -> list[Frame]:
        message = "The provider timed out while generating the response."
        error = {
            "code": "timeoutProvider",
            "message": message,
            "taskType": "textInference",
            "taskUUID": task_uuid(task.body),
        }
        return [Frame(data_event({"errors": [error]}))]


def _task_problem(task: dict[str, Any]) -> str | None:
    """Why Runware refuses this textInference task, or None: its documented messages are text only."""
    if "tools" in task:
        return "tools: unsupported parameter for textInference"
    messages = task.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: must be a non-empty array"
    for index, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in _ROLES:
            return f"messages[{index}].role: must be one of system, user, assistant (got {role!r})"
        content = message.get("content")
        if not isinstance(content, str) or not content:
            return f"messages[{index}].content: must be a non-empty string"
    return None


def task_uuid(body: dict[str, Any]) -> str:
    """The task's own UUID, echoed in every answer (a fixed one when the task has none)."""
    value = body.get("taskUUID")
    return value if isinstance(value, str) else "00000000-0000-4000-8000-000000000000"


def _stream_frames(expected: Expected, body: dict[str, Any], ctx: EmitContext) -> list[Frame]:
    """Every event of the stream, [DONE] included."""
    several = len(expected.choices) > 1
    head = {"taskUUID": task_uuid(body), "taskType": "textInference"}
    prefix = b"data: " + orjson.dumps(head)[:-1] + b","

    def chunk(index: int, delta: dict[str, Any], finish: str | None = None, token: bool = True) -> Frame:
        fields: dict[str, Any] = {"resultIndex": index} if several else {}
        fields["delta"] = delta
        fields["finishReason"] = finish
        return Frame(prefix + orjson.dumps(fields)[1:] + b"\n\n", token)

    per_result = []
    for choice in expected.choices:
        frames = [chunk(choice.index, {"reasoningContent": p}) for p in ctx.group(choice.reasoning_tokens)]
        frames.extend(chunk(choice.index, {"text": p}) for p in ctx.group(choice.text_tokens))
        per_result.append(frames)
    frames = [Frame(HEARTBEAT), *interleave(per_result)]
    for choice in expected.choices:
        frames.append(chunk(choice.index, {}, choice.finish_reason, token=False))
    if expected.usage is not None or expected.cost is not None:
        last = orjson.loads(frames[-1].wire[6:])
        if expected.usage is not None:
            last["usage"] = expected.usage
        if expected.cost is not None:
            last["cost"] = expected.cost
        frames[-1] = Frame(data_event(last))
    frames.append(DONE)
    return frames


def _response_body(expected: Expected, body: dict[str, Any]) -> bytes:
    """The non-streamed (``deliveryMethod: sync``) body: one data item per result."""
    items = []
    for choice in expected.choices:
        item: dict[str, Any] = {"taskType": "textInference", "taskUUID": task_uuid(body)}
        if len(expected.choices) > 1:
            item["resultIndex"] = choice.index
        item["text"] = choice.text
        if choice.reasoning_tokens:
            item["reasoningContent"] = choice.reasoning
        item["finishReason"] = choice.finish_reason
        items.append(item)
    if expected.usage is not None:
        items[-1]["usage"] = expected.usage
    if expected.cost is not None:
        items[-1]["cost"] = expected.cost
    return orjson.dumps({"data": items})
