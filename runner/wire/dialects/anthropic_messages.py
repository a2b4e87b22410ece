"""The ``anthropic-messages`` dialect: Anthropic Messages streaming and Melious' Messages shape.

Edge cases: PROTOCOLS.md 30-36 (section 4). Blocks are keyed by ``index``; the SDK's own reducer is
``accumulate_event`` in anthropic-sdk-python, which this follows except where noted.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Final

import orjson

from runner.model import Choice, Completion, Usage
from runner.spec import request_params
from runner.wire.dialects.anthropic_request import (
    anthropic_messages,
    anthropic_tool_choice,
    check_case,
    system_prompt,
)
from runner.wire.dialects.base import DialectBase, HttpRequest, max_tokens_param
from runner.wire.dialects.common import (
    AccumulatorBase,
    ToolCallBuilder,
    error_from_payload,
    int_or_none,
    map_finish_reason,
    protocol_error,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from runner.errors import ConfigError
    from runner.spec import CaseSpec, ProviderSpec
    from runner.wire.sse import ServerSentEvent

ANTHROPIC_VERSION: Final = "2023-06-01"
DEFAULT_MAX_TOKENS: Final = 1024
# Events that only make sense inside a message: seen before message_start, they are a protocol error.
_MESSAGE_EVENTS: Final = frozenset(
    {"content_block_start", "content_block_delta", "content_block_stop", "message_delta", "message_stop"}
)
# Chat Completions fields with no Messages counterpart at all (refused_params).
_NO_SUCH_FIELD: Final = (
    *("presence_penalty", "frequency_penalty", "logit_bias", "logprobs", "top_logprobs", "seed"),
    *("modalities", "audio", "prediction", "web_search_options", "verbosity", "store"),
)
_INPUT_KEYS: Final = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


class _Block:
    __slots__ = ("kind", "parts", "raw", "signature", "stopped", "tool")

    def __init__(self, kind: str, raw: dict[str, Any]) -> None:
        self.kind = kind
        self.raw = raw  # the content_block as sent at start
        self.parts: list[str] = []
        self.signature: str | None = None
        self.stopped = False
        self.tool: ToolCallBuilder | None = None


def anthropic_usage(raw: dict[str, Any]) -> Usage:
    """Normalize merged Anthropic usage: input is the sum of its three input counts (PROTOCOLS.md 30)."""
    counts = [int_or_none(raw.get(key)) for key in _INPUT_KEYS]
    present = [count for count in counts if count is not None]
    input_tokens = sum(present) if present else None
    output = int_or_none(raw.get("output_tokens"))
    # The Messages API names them thinking_tokens (inside output_tokens, which stays the billed total);
    # reasoning_tokens is read too, for a proxy that renames them as OpenAI does.
    details = raw.get("output_tokens_details")
    reasoning = None
    if isinstance(details, dict):
        reasoning = details.get("thinking_tokens", details.get("reasoning_tokens"))
    return Usage(
        input_tokens=input_tokens,
        output_tokens=output,
        total_tokens=input_tokens + output if input_tokens is not None and output is not None else None,
        reasoning_tokens=int_or_none(reasoning),
        cached_input_tokens=counts[2],
        cache_write_tokens=counts[1],
        raw=raw,
    )


class AnthropicMessagesAccumulator(AccumulatorBase):
    """Rebuilds one Messages stream; ``is_done`` at ``message_stop``, an error or a protocol error.

    ``complete`` is true after ``message_stop``, or once ``message_delta`` gave a stop reason (the
    SDK's own fixtures end there: the last event never gets its blank line).
    """

    __slots__ = ("_blocks", "_started", "_stop_reason", "_stop_sequence", "_stopped")

    def __init__(self) -> None:
        super().__init__()
        self._blocks: dict[int, _Block] = {}
        self._stop_reason: str | None = None
        self._stop_sequence: str | None = None
        self._started = False
        self._stopped = False

    def feed(self, event: ServerSentEvent) -> None:
        if self._done:
            return
        name = event.event
        if name == "ping":
            self.pings += 1  # a keep-alive, like an SSE comment (PROTOCOLS.md 36)
            return
        try:
            payload = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            if self._keepalive(event.data):
                return
            self._fail(protocol_error(f"event {name!r} is not JSON: {event.data[:200]!r}"))
            return
        if type(payload) is not dict:
            self._fail(protocol_error(f"event {name!r} is not a JSON object"))
            return
        if name == "message":  # no `event:` line: dispatch on the data's own type
            kind = payload.get("type")
            name = kind if isinstance(kind, str) else ""
        if name == "error":
            self._fail(error_from_payload(payload))
            return
        if name == "message_start":
            self._start(payload)
            return
        if name not in _MESSAGE_EVENTS:
            if name == "ping":
                self.pings += 1
            return  # unknown events are tolerated (Anthropic's versioning policy)
        if not self._started:
            self._fail(protocol_error(f"{name} before message_start"))
            return
        if name == "content_block_delta":
            self._delta(payload)
        elif name == "content_block_start":
            self._block_start(payload)
        elif name == "content_block_stop":
            block = self._block(payload)
            if block is not None:
                block.stopped = True
        elif name == "message_delta":
            self._message_delta(payload)
        else:  # message_stop
            self._stopped = self._done = True

    def _block(self, payload: dict[str, Any]) -> _Block | None:
        index = payload.get("index")
        return self._blocks.get(index) if type(index) is int else None

    def _start(self, payload: dict[str, Any]) -> None:
        message = payload.get("message")
        if type(message) is not dict:
            self._fail(protocol_error("message_start without a message"))
            return
        self._started = True
        self._id = message.get("id") or None
        self._model = message.get("model") or None
        usage = message.get("usage")
        if type(usage) is dict:
            self._usage = dict(usage)

    def _block_start(self, payload: dict[str, Any]) -> None:
        index = payload.get("index")
        raw = payload.get("content_block")
        if type(index) is not int or type(raw) is not dict:
            self._fail(protocol_error("content_block_start without an index or a block"))
            return
        kind = raw.get("type")
        block = self._blocks[index] = _Block(kind if isinstance(kind, str) else "", raw)
        if kind == "text":
            if raw.get("text"):
                block.parts.append(raw["text"])
                self.has_answer = True
                self.tokens += 1
        elif kind == "thinking":
            if raw.get("thinking"):
                block.parts.append(raw["thinking"])
                self.has_reasoning = True
                self.tokens += 1
            block.signature = raw.get("signature") or None
        elif kind == "tool_use":
            block.tool = ToolCallBuilder(raw.get("id"))
            block.tool.name = str(raw.get("name") or "")
            self.has_answer = True
            self.tokens += 1
        elif kind == "redacted_thinking":
            self.has_reasoning = True
            self.tokens += 1

    def _delta(self, payload: dict[str, Any]) -> None:
        block = self._block(payload)
        delta = payload.get("delta")
        if block is None or type(delta) is not dict:
            self._fail(protocol_error("content_block_delta for a block that never started"))
            return
        kind = delta.get("type")
        if kind == "text_delta":
            text = delta.get("text")
            if text:
                block.parts.append(text)
                self.has_answer = True
                self.tokens += 1
        elif kind == "input_json_delta":
            piece = delta.get("partial_json")
            if piece:  # the first piece is often "" (PROTOCOLS.md 32)
                block.parts.append(piece)
                self.tokens += 1  # tool-call argument fragments are tokens too
        elif kind == "thinking_delta":
            thinking = delta.get("thinking")
            if thinking:
                block.parts.append(thinking)
                self.has_reasoning = True
                self.tokens += 1
        elif kind == "signature_delta":
            block.signature = delta.get("signature")  # replaces, never appends (34)
        elif kind == "citations_delta":
            citations = block.raw.get("citations")
            if type(citations) is not list:
                citations = block.raw["citations"] = []
            citations.append(delta.get("citation"))
        # other delta types are new features: tolerated, like unknown events

    def _message_delta(self, payload: dict[str, Any]) -> None:
        delta = payload.get("delta")
        if type(delta) is dict:
            if delta.get("stop_reason"):
                self._stop_reason = str(delta["stop_reason"])
            if delta.get("stop_sequence"):
                self._stop_sequence = str(delta["stop_sequence"])
        usage = payload.get("usage")
        if type(usage) is dict:
            # Cumulative: overwrite each non-null field, never add start and delta (PROTOCOLS.md 30).
            merged = self._usage if self._usage is not None else {}
            merged.update((key, value) for key, value in usage.items() if value is not None)
            self._usage = merged

    def result(self) -> Completion:
        text: list[str] = []
        reasoning: list[str] = []
        calls = []
        signatures: list[str | None] = []
        other_blocks: list[Any] = []
        for index in sorted(self._blocks):
            block = self._blocks[index]
            if block.kind == "text":
                text.extend(block.parts)
            elif block.kind == "thinking":
                reasoning.extend(block.parts)
                signatures.append(block.signature)
            elif block.tool is not None:
                block.tool.args = block.parts
                # An empty buffer means {} (32); an unstopped block keeps its partial JSON (33).
                calls.append(block.tool.build(empty_arguments="{}"))
            else:  # redacted_thinking, server_tool_use, server tool results: kept as sent
                other_blocks.append(block.raw)
        extras: dict[str, Any] = {}
        if signatures:
            extras["signatures"] = signatures
        if other_blocks:
            extras["blocks"] = other_blocks
        if self._stop_sequence is not None:
            extras["stop_sequence"] = self._stop_sequence
        citations = [
            c for b in self._blocks.values() if b.kind == "text" for c in b.raw.get("citations") or ()
        ]
        if citations:
            extras["citations"] = citations
        choice = Choice(
            index=0,
            text="".join(text),
            reasoning="".join(reasoning),
            tool_calls=tuple(calls),
            finish_reason=map_finish_reason(self._stop_reason),
            raw_finish_reason=self._stop_reason,
        )
        finished = self._stop_reason is not None and self._error is None
        return Completion(
            id=self._id,
            model=self._model,
            complete=self._stopped or finished,
            error=self._error,
            choices=(choice,) if self._started else (),
            usage=anthropic_usage(self._usage) if self._usage is not None else None,
            extras=extras,
        )


def anthropic_tools(tools: tuple[dict[str, Any], ...]) -> list[dict[str, Any]]:
    """OpenAI function tools -> Anthropic's ``{name, description, input_schema, strict}``."""
    translated = []
    for tool in tools:
        function = tool.get("function", tool)
        entry: dict[str, Any] = {
            "name": function["name"],
            "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
        }
        if function.get("description"):
            entry["description"] = function["description"]
        if isinstance(function.get("strict"), bool):
            # The same switch at the tool's level (strict tool use): the arguments follow the schema.
            entry["strict"] = function["strict"]
        translated.append(entry)
    return translated


class AnthropicMessagesDialect(DialectBase[AnthropicMessagesAccumulator]):
    """Anthropic Messages: POST ``{base_url}/v1/messages`` with ``x-api-key`` and a version header."""

    name: str = "anthropic-messages"
    accumulator = AnthropicMessagesAccumulator
    key_header: ClassVar[str] = "x-api-key"
    key_prefix: ClassVar[str] = ""
    fixed_headers: ClassVar[Mapping[str, str]] = MappingProxyType({"anthropic-version": ANTHROPIC_VERSION})
    # OpenAI chat params the Messages API has no field for: it refuses unknown fields ("Extra inputs
    # are not permitted"), so each would make every request a 400.
    refused_params: ClassVar[Mapping[str, str]] = MappingProxyType(
        {
            "n": "leave 'n' out: the Messages API gives one answer per request",
            "response_format": (
                "leave 'response_format' out: ask for JSON in the prompt, or declare a tool whose"
                " input_schema is the schema"
            ),
            "reasoning_effort": 'write thinking = { type = "enabled", budget_tokens = N } instead',
            "user": 'write metadata = { user_id = "..." } instead',
            "parallel_tool_calls": "write disable_parallel_tool_use in a tool_choice table instead",
            "stream_options": "leave it out: the Messages API always streams its usage",
            "functions": "write the case's tools instead (functions is chat's old name for them)",
            "function_call": "write tool_choice instead (function_call is chat's old name for it)",
            **dict.fromkeys(_NO_SUCH_FIELD, "leave it out: the Messages API has no such field"),
        }
    )

    def param_problem(self, key: str, value: Any) -> str | None:
        # OpenAI's metadata is free key/values; the Messages API's has user_id alone and refuses the
        # rest ("metadata.run: Extra inputs are not permitted").
        if key == "metadata" and not (isinstance(value, dict) and set(value) <= {"user_id"}):
            return 'write metadata = { user_id = "..." } only: the Messages API has no other metadata'
        return super().param_problem(key, value)

    def build_request(self, provider: ProviderSpec, case: CaseSpec, *, api_key: str | None) -> HttpRequest:
        body: dict[str, Any] = {
            "model": provider.model,
            "max_tokens": DEFAULT_MAX_TOKENS,
            "messages": anthropic_messages(case),
        }
        system = system_prompt(case)
        if system is not None:
            body["system"] = system
        if case.tools:
            body["tools"] = anthropic_tools(case.tools)
        # The case's params merged deeply over the provider's (spec.request_params: the same merge
        # the --reuse hash uses), then translated key by key.
        for key, value in request_params(provider, case).items():
            if key == "stop":
                body["stop_sequences"] = [value] if isinstance(value, str) else list(value)
            elif key in ("max_completion_tokens", "max_output_tokens"):
                # Other APIs' names for the cap (max_tokens_param counts them as it): the only
                # one the Messages API knows is max_tokens.
                body["max_tokens"] = value
            elif key == "tool_choice":
                body["tool_choice"] = anthropic_tool_choice(value)
            else:  # max_tokens, temperature, top_p have the same names here
                body[key] = value
        body["stream"] = True
        return HttpRequest(
            method="POST",
            url=f"{provider.base_url.rstrip('/')}/v1/messages",
            headers=self.request_headers(provider, api_key),
            body=orjson.dumps(body),
        )

    def check_messages(self, case: CaseSpec) -> None:
        def refuse(key: str, what: str, fix: str) -> ConfigError:
            return self.inexpressible(case, key, what, fix)

        check_case(case, refuse)

    def max_output_tokens(self, params: Mapping[str, Any]) -> int | None:
        # max_tokens is required by the Messages API: build_request sends DEFAULT_MAX_TOKENS unset.
        cap = max_tokens_param(params)
        return DEFAULT_MAX_TOKENS if cap is None else cap
