"""openai-chat emitter: ``chat.completion.chunk`` streams and ``chat.completion`` bodies.

Flavors: ``openai`` (Melious: usage only with stream_options.include_usage, in an extra chunk with
``choices: []``), ``solrouter`` (usage with ``cost`` on the finish chunk) and ``miromind``
(``reasoning_steps``, ``: heartbeat`` comments, citations and usage on the finish chunk). Each choice
streams its role chunk, reasoning, content, then tool calls; finish chunks come after every choice's deltas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import orjson

from runner.simulator.emitters.base import Counts, Task, choice_count, model_name, offered_tools, token_limit
from runner.simulator.faults import error_message
from runner.simulator.frames import EmitContext, Frame, data_event, interleave

if TYPE_CHECKING:
    from runner.simulator.config import SimulatorConfig
    from runner.simulator.script import Expected, ExpectedChoice

HEARTBEAT: Final = b": heartbeat\n\n"
DONE: Final = Frame(b"data: [DONE]\n\n")
# status -> (error type, error code); other statuses get a generic pair by class (4xx or 5xx)
ERRORS: Final = {
    400: ("invalid_request_error", "invalid_request"),
    401: ("invalid_request_error", "invalid_api_key"),
    402: ("insufficient_balance", "payment_required"),
    403: ("invalid_request_error", "forbidden"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", "internal_error"),
    502: ("server_error", "bad_gateway"),
    503: ("server_error", "service_unavailable"),
    529: ("server_error", "overloaded"),
}


class OpenAIWire:
    """What OpenAI's two APIs (Chat Completions, Responses) share: the SDK's ``/v1`` base path, ``call_``
    tool-call ids, no answer words before tool calls, and the error body."""

    base_path: str = "/v1"
    tool_call_prefix: str = "call_"
    words_before_tools: int = 0  # a tool turn's content is null (Chat), no message item (Responses)

    def error_body(self, status: int, *, quota: bool = False, task: Task | None = None) -> bytes:
        return openai_error_body(status, quota=quota)


class OpenAIChatEmitter(OpenAIWire):
    """The OpenAI Chat Completions wire shape, with its three flavors."""

    name: str = "openai-chat"
    route: str = "/v1/chat/completions"
    response_id_prefix: str = "chatcmpl-"
    heartbeat: bytes = HEARTBEAT
    has_flavors: bool = True

    def read(self, body: Any) -> Task | None:
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return None
        return Task(
            body=body,
            model=model_name(body),
            stream=body.get("stream") is True,
            choices=choice_count(body.get("n", 1)),
            max_tokens=token_limit(body.get("max_completion_tokens", body.get("max_tokens"))),
            reasoning="reasoning_effort" in body,
            tools=offered_tools(body, wrapper="function", schema="parameters"),
        )

    def usage(
        self, task: Task, config: SimulatorConfig, counts: Counts
    ) -> tuple[dict[str, Any] | None, float | None]:
        usage: dict[str, Any] = {
            "prompt_tokens": counts.prompt,
            "completion_tokens": counts.completion,
            "total_tokens": counts.prompt + counts.completion,
            "completion_tokens_details": {"reasoning_tokens": counts.reasoning},
        }
        if config.flavor == "miromind":
            usage["reasoning_tokens"] = counts.reasoning
            usage["num_search_queries"] = counts.searches
        with_cost = config.cost or config.flavor == "solrouter"
        if with_cost:
            usage["cost"] = counts.cost
        sent = not task.stream or _include_usage(task.body) or config.flavor in ("miromind", "solrouter")
        return (usage if sent else None), (counts.cost if sent and with_cost else None)

    def stream_frames(
        self, expected: Expected, task: Task, config: SimulatorConfig, ctx: EmitContext
    ) -> list[Frame]:
        return _stream_frames(expected, task, ctx)

    def response_body(self, expected: Expected, task: Task, ctx: EmitContext) -> bytes:
        return _response_body(expected, ctx)

    def stream_error(self, *, miromind: bool, response_id: str, model: str, task: Task) -> list[Frame]:
        error = {
            "message": "Simulated upstream failure mid-stream.",
            "type": "server_error",
            "code": "stream_error",
        }
        if miromind:
            # MiroMind: a final chunk with finish_reason "error" and an error object, then [DONE].
            chunk = {
                "id": response_id,
                "object": "chat.completion.chunk",
                "model": model,
                "choices": [{"index": 0, "delta": {}, "finish_reason": "error"}],
                "error": error,
            }
            return [Frame(data_event(chunk)), DONE]
        return [Frame(data_event({"error": {**error, "param": None}}))]


def _include_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def _stream_frames(expected: Expected, task: Task, ctx: EmitContext) -> list[Frame]:
    """Every event of the stream, [DONE] included."""
    include_usage = _include_usage(task.body)
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


def _response_body(expected: Expected, ctx: EmitContext) -> bytes:
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


def openai_error_body(status: int, *, quota: bool = False) -> bytes:
    """OpenAI's error body for an HTTP status (the Responses API answers errors in the same shape)."""
    default = ("server_error", "server_error") if status >= 500 else ("invalid_request_error", "client_error")
    kind, code = ("insufficient_quota", "insufficient_quota") if quota else ERRORS.get(status, default)
    error = {"message": error_message(status, quota=quota), "type": kind, "param": None, "code": code}
    return orjson.dumps({"error": error})
