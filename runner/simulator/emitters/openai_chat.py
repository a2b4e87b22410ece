"""openai-chat emitter: ``chat.completion.chunk`` streams and ``chat.completion`` bodies.

Flavors follow the seed documents: ``openai`` (Melious: usage only with stream_options.include_usage,
in an extra chunk with ``choices: []``), ``solrouter`` (usage with ``cost`` on the finish chunk) and
``miromind`` (``reasoning_steps``, ``: heartbeat`` comments, citations and usage on the finish chunk).
Chunk order follows ../shared/PROTOCOLS.md §2.2.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import orjson

from runner.simulator.frames import EmitContext, Frame, data_event, interleave

if TYPE_CHECKING:
    from runner.simulator.config import SimulatorConfig
    from runner.simulator.script import Expected, ExpectedChoice

HEARTBEAT: Final = b": heartbeat\n\n"
DONE: Final = Frame(b"data: [DONE]\n\n")


def stream_frames(
    expected: Expected, body: dict[str, Any], config: SimulatorConfig, ctx: EmitContext
) -> list[Frame]:
    """Every event of the stream, [DONE] included."""
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    head: dict[str, Any] = {
        "id": ctx.response_id,
        "object": "chat.completion.chunk",
        "created": ctx.created,
        "model": expected.model,
        "system_fingerprint": "fp_simulator",
    }
    # Build the constant head of every chunk once: each chunk is then one small orjson call.
    prefix = b"data: " + orjson.dumps(head)[:-1] + b',"choices":['
    suffix = b'],"usage":null}\n\n' if include_usage else b"]}\n\n"

    def chunk(choice: dict[str, Any], *, token: bool = True) -> Frame:
        return Frame(prefix + orjson.dumps(choice) + suffix, token)

    per_choice = [_choice_frames(c, ctx, chunk) for c in expected.choices]
    if expected.steps:
        steps: list[Frame] = []
        for step in expected.steps:
            steps.append(chunk({"index": 0, "delta": {"reasoning_steps": [step]}, "finish_reason": None}))
            if step["type"] == "web_search":
                steps.append(Frame(HEARTBEAT))  # MiroMind keeps proxies awake while tools run
        per_choice[0][1:1] = steps
    frames = interleave(per_choice)
    for choice in expected.choices:
        final: dict[str, Any] = {"index": choice.index, "delta": {}, "finish_reason": _finish(choice)}
        frames.append(chunk(final, token=False))
    if expected.usage is not None and not include_usage:
        # MiroMind and SolRouter put usage (and extras) on the last finish chunk itself.
        last = orjson.loads(frames[-1].wire[6:])
        last["usage"] = expected.usage
        if expected.citations:
            last["citations"] = list(expected.citations)
            last["search_results"] = list(expected.search_results)
        frames[-1] = Frame(data_event(last))
    if include_usage:
        frames.append(Frame(data_event({**head, "choices": [], "usage": expected.usage})))
    frames.append(DONE)
    return frames


def _choice_frames(choice: ExpectedChoice, ctx: EmitContext, chunk: Any) -> list[Frame]:
    index = choice.index
    has_tools = bool(choice.tool_calls)
    role = {"role": "assistant", "content": None if has_tools else ""}
    frames = [chunk({"index": index, "delta": role, "logprobs": None, "finish_reason": None}, token=False)]
    for piece in ctx.group(choice.reasoning_tokens):
        frames.append(chunk({"index": index, "delta": {"reasoning_content": piece}, "finish_reason": None}))
    for piece in ctx.group(choice.text_tokens):
        frames.append(chunk({"index": index, "delta": {"content": piece}, "finish_reason": None}))
    for k, call in enumerate(choice.tool_calls):
        first = {
            "index": k,
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        frames.append(chunk({"index": index, "delta": {"tool_calls": [first]}, "finish_reason": None}))
        for piece in ctx.fragments(call.arguments):
            delta = {"tool_calls": [{"index": k, "function": {"arguments": piece}}]}
            frames.append(chunk({"index": index, "delta": delta, "finish_reason": None}))
    return frames


def response_body(expected: Expected, ctx: EmitContext) -> bytes:
    """The non-streamed ``chat.completion`` body."""
    choices = []
    for choice in expected.choices:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": choice.text if not choice.tool_calls else None,
            "refusal": None,
        }
        if choice.reasoning_tokens:
            message["reasoning_content"] = choice.reasoning
        if choice.tool_calls:
            message["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in choice.tool_calls
            ]
        choices.append(
            {"index": choice.index, "message": message, "logprobs": None, "finish_reason": _finish(choice)}
        )
    out: dict[str, Any] = {
        "id": ctx.response_id,
        "object": "chat.completion",
        "created": ctx.created,
        "model": expected.model,
        "choices": choices,
        "usage": expected.usage,
    }
    if expected.steps:
        out["reasoning_steps"] = list(expected.steps)
        out["citations"] = list(expected.citations)
        out["search_results"] = list(expected.search_results)
    return orjson.dumps(out)


def _finish(choice: ExpectedChoice) -> str:
    return choice.finish_reason  # stop | length | tool_calls are OpenAI's own names
