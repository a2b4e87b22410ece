"""runware emitter: ``textInference`` task streams (``delta.text`` / ``delta.reasoningContent``).

Several results (``numberResults``) interleave with a ``resultIndex`` on every chunk (absent for a single
result). ``usage`` (camelCase) and ``cost`` ride on the last finish chunk, covering all results, only
when the task sets ``includeUsage`` / ``includeCost``. The stream opens with a ``: ping`` comment.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import orjson

from runner.simulator.frames import EmitContext, Frame, data_event, interleave

if TYPE_CHECKING:
    from runner.simulator.script import Expected

HEARTBEAT: Final = b": ping\n\n"
DONE: Final = Frame(b"data: [DONE]\n\n")


def task_uuid(body: dict[str, Any]) -> str:
    value = body.get("taskUUID")
    return value if isinstance(value, str) else "00000000-0000-4000-8000-000000000000"


def stream_frames(expected: Expected, body: dict[str, Any], ctx: EmitContext) -> list[Frame]:
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


def response_body(expected: Expected, body: dict[str, Any]) -> bytes:
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
