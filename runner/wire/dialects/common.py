"""Helpers the dialects share: messages, finish-reason mapping, error objects, tool-call and choice assembly.

Everything here is a plain mutable builder used inside one accumulator; the frozen records of
``runner.model`` are built once, at ``result()`` time (per-chunk work stays a few list appends).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import orjson

from runner import jsontext
from runner.model import PROTOCOL_ERROR, Choice, CompletionError, ToolCall
from runner.wire.events import TypedRun, event_count
from runner.wire.sse import as_event, single_events

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from runner.model import FinishReason
    from runner.spec import CaseSpec
    from runner.wire.sse import RawEvent, ServerSentEvent, SSEDecoder

# Provider finish / stop reasons -> the normalized set. An unknown string maps to None and is kept
# as raw_finish_reason (PROTOCOLS.md 26: the set is open; guessing "stop" would hide truncation).
_FINISH_REASONS: Final[dict[str, FinishReason]] = {
    "stop": "stop",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "eos": "stop",
    "length": "length",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_calls": "tool_calls",
    "tool_use": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
    "refusal": "content_filter",
    "error": "error",
    "cancelled": "cancelled",
    "canceled": "cancelled",
}


def openai_messages(case: CaseSpec) -> list[dict[str, Any]]:
    """The case's messages with its system prompt first, in OpenAI chat format (the canonical shape)."""
    messages = [dict(message) for message in case.messages]
    if case.system is not None:
        messages.insert(0, {"role": "system", "content": case.system})
    return messages


class AccumulatorBase:
    """State and plumbing every dialect's accumulator has; subclasses add their own slots.

    ``feed_many`` here reads each raw item as ``feed`` would (``single_events``, ``as_event``); a
    dialect with a faster path over raw payloads overrides it.
    """

    __slots__ = (
        "_done",
        "_error",
        "_id",
        "_model",
        "_usage",
        "has_answer",
        "has_reasoning",
        "pings",
        "tokens",
    )

    def __init__(self) -> None:
        self._id: str | None = None
        self._model: str | None = None
        self._usage: dict[str, Any] | None = None
        self._error: CompletionError | None = None
        self._done = False
        self.has_answer = False
        self.has_reasoning = False
        self.pings = 0  # keep-alives in the data (Anthropic "ping", blank payloads), not SSE comments
        # Deltas that carried a token (answer, reasoning, tool-call fragments): the attempt layer's
        # token_idle clock restarts when it grows. Heartbeats and bookkeeping events never count.
        self.tokens = 0

    @property
    def is_done(self) -> bool:
        return self._done

    def _keepalive(self, data: str) -> bool:
        """Count a blank payload (``data:`` and nothing else, some proxies' keep-alive) as a ping.

        Called where a payload failed to parse as JSON, so the hot path never pays for it.
        """
        if data.strip():
            return False
        self.pings += 1
        return True

    @property
    def has_error(self) -> bool:
        """True once the stream carried an error (reading may go on, to its terminal signal)."""
        return self._error is not None

    def _fail(self, error: CompletionError) -> None:
        # The first error wins: later ones are consequences of it. Either way reading stops.
        if self._error is None:
            self._error = error
        self._done = True

    def _provider_error(self, error: CompletionError) -> None:
        # An error the provider sent in a stream that still ends with its terminal signal (MiroMind:
        # finish_reason "error" with an error object, then [DONE]): reading goes on to that signal,
        # so the completion is complete with its error set. The attempt layer bounds the wait.
        if self._error is None:
            self._error = error

    def feed(self, event: ServerSentEvent) -> None:  # pragma: no cover - every dialect overrides it
        raise NotImplementedError

    def feed_many(self, events: Sequence[RawEvent]) -> None:
        # One call per read; each item read as feed() reads its event.
        feed = self.feed
        for event in single_events(events):
            feed(as_event(event))

    def feed_read(self, decoder: SSEDecoder, read: bytes) -> int:
        # decoder.feed_raw, then feed_many: a dialect with a fused path for its common read overrides it.
        events = decoder.feed_raw(read)
        if not events:
            return 0
        self.feed_many(events)
        if len(events) == 1 and type(events[0]) is not TypedRun:
            return 1  # (one event per read, the slow streams' read: counted without a call)
        return event_count(events)


def map_finish_reason(raw: str | None) -> FinishReason | None:
    """The normalized finish reason for a provider's string (None when unknown or absent)."""
    if raw is None:
        return None
    return _FINISH_REASONS.get(raw)


def protocol_error(message: str) -> CompletionError:
    """A protocol error found while reading the stream (bytes that broke the wire format)."""
    return CompletionError(type=PROTOCOL_ERROR, message=message)


def _code(value: Any) -> str | int | None:
    # bool is an int subclass; a boolean "code" is not a code.
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else jsontext.dumps_text(value)


def error_from_payload(payload: Any, *, default_type: str = "error") -> CompletionError:
    """Read any of the error shapes of PROTOCOLS.md 24 / 35 and Runware's ``errors`` array.

    ``{"error": {message, type, code}}`` (OpenAI, OpenRouter, SGLang), ``{"error": "text",
    "error_type": ...}`` (TGI), ``{"object": "error", message, type, code}`` (vLLM), ``{"type":
    "error", "error": {type, message}}`` (Anthropic), ``{"errors": [{code, message}]}`` (Runware),
    and a free-form ``event: error`` body (``{"code": 400, "details": ...}``).
    """
    if not isinstance(payload, dict):
        return CompletionError(type=default_type, message=_text(payload) or "")
    errors = payload.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        code = _code(first.get("code"))
        return CompletionError(
            type=str(code) if code is not None else default_type,
            message=_text(first.get("message")) or "",
            code=code,
        )
    inner = payload.get("error")
    if isinstance(inner, dict):
        code = _code(inner.get("code"))
        kind = inner.get("type")
        if not isinstance(kind, str) or not kind:
            kind = str(code) if code is not None else default_type
        message = _text(inner.get("message")) or _text(inner.get("details")) or ""
        return CompletionError(type=kind, message=message, code=code)
    if isinstance(inner, str) and inner:
        kind = payload.get("error_type")
        return CompletionError(
            type=kind if isinstance(kind, str) and kind else default_type,
            message=inner,
            code=_code(payload.get("code")),
        )
    kind = payload.get("type")
    if not isinstance(kind, str) or not kind or kind == "error":
        kind = default_type
    message = next(
        (t for key in ("message", "details", "detail") if (t := _text(payload.get(key)))),
        _text(payload) or "",
    )
    return CompletionError(type=kind, message=message, code=_code(payload.get("code")))


def parse_json_error_body(body: bytes) -> CompletionError | None:
    """The error object of a JSON error response body, or None when the body is not JSON."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(payload, dict):
        return None
    if "error" not in payload and "errors" not in payload and payload.get("object") != "error":
        return None
    return error_from_payload(payload, default_type="http_error")


class Extras:
    """Provider extensions kept as sent (MiroMind ``citations``, ``search_results``), by key.

    Lists grow by items not seen yet, so both shapes work: a list sent once, in pieces, or repeated
    cumulatively on several chunks. Other values: the last non-null one wins. Seen items are kept
    as hashable keys (``_frozen``), so a list resent whole on every chunk costs its length each
    time, not its length squared.
    """

    __slots__ = ("_seen", "values")

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self._seen: dict[str, set[Any]] = {}  # key -> the _frozen items of values[key], a list

    def merge(self, key: str, value: Any) -> None:
        """Merge one value sent for ``key``."""
        if value is None:
            return
        if isinstance(value, list):
            current = self.values.get(key)
            if isinstance(current, list):
                seen = self._seen[key]
                for item in value:  # a repeat inside ``value`` is dropped too, as for any seen item
                    frozen = _frozen(item)
                    if frozen not in seen:
                        seen.add(frozen)
                        current.append(item)
            else:  # the first list is kept whole, repeats included
                self.values[key] = list(value)
                self._seen[key] = {_frozen(item) for item in value}
        else:
            self.values[key] = value
            self._seen.pop(key, None)


def _frozen(value: Any) -> Any:
    # A hashable stand-in equal exactly when the JSON values are equal under ==, as a list's `in`
    # compares them (1 == 1.0 == True, and their hashes agree): objects become frozensets of
    # (key, value) pairs, arrays tuples. The two never compare equal to each other or to a scalar.
    if isinstance(value, dict):
        return frozenset((key, _frozen(item)) for key, item in value.items())
    if isinstance(value, list):
        return tuple(_frozen(item) for item in value)
    return value


class ToolCallBuilder:
    """One tool call being rebuilt from fragments (PROTOCOLS.md 16-19)."""

    __slots__ = ("args", "id", "name")

    def __init__(self, call_id: str | None) -> None:
        self.id = call_id
        self.name = ""
        self.args: list[str] = []

    def add_name(self, piece: str) -> None:
        # Fireworks/NIM repeat the whole name in every fragment (18); Mistral splits it (19); some
        # servers resend the name cumulatively. Only a piece that is none of those is appended.
        if piece.startswith(self.name):  # the first piece, a repeat, or a cumulative resend
            self.name = piece
        else:
            self.name += piece

    def build(self, *, empty_arguments: str = "") -> ToolCall:
        arguments = "".join(self.args)
        return ToolCall(id=self.id, name=self.name, arguments=arguments or empty_arguments)


class ToolCallAssembler:
    """Tool calls of one choice, keyed by the fragment ``index`` with a missing index inferred.

    PROTOCOLS.md C11: a fragment without ``index`` starts a new call when it carries a new non-null
    id, else it continues the latest call. An explicit index whose call already has a different id
    is a new call too: some servers restart the index at 0 in every chunk (17).
    """

    __slots__ = ("_by_index", "calls")

    def __init__(self) -> None:
        self.calls: list[ToolCallBuilder] = []
        self._by_index: dict[int, ToolCallBuilder] = {}

    def add(self, fragment: Any) -> bool:
        """Merge one fragment; True when it carried any content (id, name or arguments)."""
        if not isinstance(fragment, dict):
            return False
        function = fragment.get("function")
        if isinstance(function, dict):
            return self.add_parts(
                fragment.get("index"),
                fragment.get("id"),
                True,
                function.get("name"),
                function.get("arguments"),
            )
        return self.add_parts(fragment.get("index"), fragment.get("id"), False, None, None)

    def add_parts(self, index: Any, call_id: Any, has_function: bool, name: Any, arguments: Any) -> bool:
        """``add`` on a fragment already taken apart: its ``index``, ``id``, whether ``function``
        is an object, and that object's ``name`` and ``arguments`` (None when absent). The
        openai-chat msgspec fast path calls this with the fields of its decoded Struct."""
        call_id = call_id or None
        if call_id is not None and not isinstance(call_id, str):
            call_id = str(call_id)
        if type(index) is not int:
            index = None
        # PROTOCOLS.md 17: without an index, continue the latest call unless the id is new.
        latest = self.calls[-1] if self.calls else None
        current = latest if index is None else self._by_index.get(index)
        if current is None or (call_id is not None and current.id is not None and call_id != current.id):
            current = ToolCallBuilder(call_id)
            self.calls.append(current)
            if index is not None:
                self._by_index[index] = current
        elif current.id is None and call_id is not None:
            current.id = call_id
        if not has_function:
            return call_id is not None
        if isinstance(name, str) and name:
            current.add_name(name)
        if arguments is not None:
            if not isinstance(arguments, str):
                # A few servers send the arguments as a JSON object in one piece.
                arguments = jsontext.dumps_text(arguments)
            if arguments:
                current.args.append(arguments)
        return True

    def build(self) -> tuple[ToolCall, ...]:
        return tuple(call.build() for call in self.calls)


class ChoiceBuilder:
    """The mutable state of one choice; text pieces are joined only in ``build``."""

    __slots__ = ("index", "raw_finish_reason", "reasoning", "refusal", "steps", "text", "tools")

    def __init__(self, index: int) -> None:
        self.index = index
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.refusal: list[str] | None = None
        self.steps: list[Any] = []
        self.tools = ToolCallAssembler()
        self.raw_finish_reason: str | None = None

    def build(self) -> Choice:
        raw = self.raw_finish_reason
        return Choice(
            index=self.index,
            text="".join(self.text),
            reasoning="".join(self.reasoning),
            reasoning_steps=tuple(self.steps),
            refusal="".join(self.refusal) if self.refusal is not None else None,
            tool_calls=self.tools.build(),
            finish_reason=map_finish_reason(raw),
            raw_finish_reason=raw,
        )


def build_choices(builders: Mapping[int, ChoiceBuilder]) -> tuple[Choice, ...]:
    """The choices rebuilt so far, in index order."""
    return tuple(builders[index].build() for index in sorted(builders))


def stream_complete(choices: Sequence[Choice], *, saw_done: bool, error: CompletionError | None) -> bool:
    """Whether a stream of indexed choices (openai-chat, runware) ended as a whole answer.

    True after its terminal ``[DONE]``, or, for servers that never send one (PROTOCOLS.md 13), when
    no error was seen and every choice finished with a reason other than ``error``.
    """
    if saw_done:
        return True
    return (
        error is None
        and bool(choices)
        and all(
            choice.raw_finish_reason is not None and choice.finish_reason != "error" for choice in choices
        )
    )


def int_or_none(value: Any) -> int | None:
    """An integer token count, or None for anything else (bool and float counts are not counts)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def float_or_none(value: Any) -> float | None:
    """A cost as a float, or None when absent or not a number (strings are not costs)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None
