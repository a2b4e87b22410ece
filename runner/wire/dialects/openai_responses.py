"""The ``openai-responses`` dialect: OpenAI's Responses API (``POST /responses``, typed stream events).

The stream is a sequence of typed events (``event:`` names and the data's ``type`` agree; the type is
read, so a stream without ``event:`` lines reads the same). Output items are keyed by ``output_index``
and may interleave; an item's text parts are keyed by ``content_index`` (``summary_index`` for
reasoning summaries). ``response.completed`` / ``.incomplete`` / ``.failed`` are the terminal signal;
``sequence_number`` is not needed (events arrive in order on one connection) and is ignored, as are
unknown events. Translating a case's conversation to ``input`` items: ``openai_responses_input``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import orjson

from runner.errors import ConfigError
from runner.model import Choice, Completion, FinishReason, Usage
from runner.spec import merge_params, request_params
from runner.wire.dialects.base import DialectBase, HttpRequest
from runner.wire.dialects.common import (
    AccumulatorBase,
    ToolCallBuilder,
    error_from_payload,
    int_or_none,
    protocol_error,
)
from runner.wire.dialects.openai_chat_fast import FAST_DECODE_MISSES
from runner.wire.dialects.openai_responses_fast import FAST_KINDS, TEXT_DELTA, Delta, decode_delta, decode_run
from runner.wire.dialects.openai_responses_input import (
    UNSUPPORTED_PARAMS,
    Untranslatable,
    responses_input,
    responses_tools,
)
from runner.wire.sse import TypedRun

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from runner.spec import CaseSpec, ProviderSpec
    from runner.wire.sse import RawEvent, ServerSentEvent

# incomplete_details.reason -> the normalized finish reason (others: None, the raw reason kept).
_INCOMPLETE: Final[dict[str, FinishReason]] = {
    "max_output_tokens": "length",
    "content_filter": "content_filter",
}
# Common params -> the Responses API's names (every other param passes through as written).
_PARAM_NAMES: Final = {"max_tokens": "max_output_tokens", "max_completion_tokens": "max_output_tokens"}
# Keys of _Item.reasoning: summaries come before the reasoning text of the same item.
_SUMMARY, _REASONING_TEXT = 0, 1


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


class _Part:
    """One text part (output text, refusal, reasoning summary or text) being rebuilt."""

    __slots__ = ("done", "pieces")

    def __init__(self) -> None:
        self.pieces: list[str] = []
        self.done: str | None = None  # the `.done` (or finished item's) text: used only when no delta came

    def text(self) -> str:
        return "".join(self.pieces) if self.pieces else (self.done or "")


def _part(parts: dict[Any, _Part], key: Any) -> _Part:
    found = parts.get(key)
    if found is None:
        found = parts[key] = _Part()
    return found


class _Item:
    """One output item, by ``output_index``: a message, a function call, reasoning, or another kind."""

    __slots__ = ("args_done", "kind", "raw", "reasoning", "refusal", "text", "tool")

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.raw: dict[str, Any] | None = None  # the finished item as sent (kept for unknown kinds)
        self.text: dict[int, _Part] = {}  # content_index -> output_text part
        self.refusal: dict[int, _Part] = {}
        self.reasoning: dict[tuple[int, int], _Part] = {}
        self.tool: ToolCallBuilder | None = ToolCallBuilder(None) if kind == "function_call" else None
        self.args_done: str | None = None


def _index(value: Any) -> int:
    # A missing or non-integer index reads as 0 (a bool is not an index).
    return value if type(value) is int else 0


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


class OpenAIResponsesAccumulator(AccumulatorBase):
    """Rebuilds one Responses stream; ``is_done`` at a terminal event, ``[DONE]`` or a protocol error.

    An ``error`` event sets the error and reading goes on (a ``response.failed`` may follow); the
    result is ``complete`` only after a terminal event.

    Args:
        fast_path: read delta events through msgspec (openai_responses_fast); False sends every
            event through the orjson path, which defines the result (the equivalence tests
            compare the two).
    """

    __slots__ = (
        "_fast_misses",
        "_finish",
        "_hot_key",
        "_hot_pieces",
        "_items",
        "_raw_finish",
        "_started",
        "_terminal",
    )

    def __init__(self, *, fast_path: bool = True) -> None:
        super().__init__()
        self._items: dict[int, _Item] = {}
        self._finish: FinishReason | None = None
        self._raw_finish: str | None = None
        self._started = False
        self._terminal = False
        # The text part the last output_text.delta went to, by its raw (output_index,
        # content_index): the next delta for the same part is appended inline (feed_many).
        self._hot_key: tuple[Any, Any] | None = None
        self._hot_pieces: list[str] = []
        # Runs msgspec may miss in a row before this stream stops trying it (openai_chat_fast).
        self._fast_misses = FAST_DECODE_MISSES if fast_path else 0

    def feed(self, event: ServerSentEvent) -> None:
        self.feed_many((event,))

    def feed_many(self, events: Sequence[RawEvent]) -> None:
        # The hot loop. A read's typed events come as one TypedRun: decoded in one msgspec call
        # (openai_responses_fast.decode_run) and fed by _feed_deltas while they are deltas; what
        # msgspec refuses, or what follows a non-delta event, goes one event at a time through
        # _feed_single, whose orjson path defines the result.
        if self._done:
            return
        for item in events:
            if isinstance(item, TypedRun):
                if item.blocks == 1 and self._fast_misses:
                    # One event per read (a slow stream): the hot text delta inline, as below.
                    try:
                        event: Delta | None = decode_delta(item.datas)
                    except (ValueError, RecursionError):  # (see decode_run)
                        event = None
                    if (
                        event is not None
                        and event.type == TEXT_DELTA
                        and (event.output_index, event.content_index) == self._hot_key
                    ):
                        if event.delta:
                            self._hot_pieces.append(event.delta)
                            self.has_answer = True
                            self.tokens += 1
                        continue
                    decoded = [(event,)] if event is not None else None
                else:
                    decoded = decode_run(item) if self._fast_misses else None
                if decoded is None:
                    # A run holding a non-delta event (created, item added, done...) misses too,
                    # so the budget counts misses in a row: a shape msgspec never takes stops it.
                    self._fast_misses = max(0, self._fast_misses - 1)
                    self._feed_single(item.events())
                else:
                    self._fast_misses = FAST_DECODE_MISSES
                    taken = self._feed_deltas(decoded)
                    if taken < len(decoded):
                        self._feed_single(item.events()[taken:])
            else:
                self._feed_single((item,))
            if self.is_done:  # (the property: mypy would keep _done narrowed to False)
                return

    def _feed_deltas(self, decoded: Sequence[tuple[Delta]]) -> int:
        """Feed msgspec-decoded events in order while each is of a FAST_KINDS kind; how many it fed.

        What the handlers do with the same event as a dict, which is what orjson would give (the
        hot text delta inline, as in _feed_single; the others through their handler).
        """
        hot_key, pieces = self._hot_key, self._hot_pieces
        tokens = taken = 0
        for (event,) in decoded:
            kind = event.type
            if kind == TEXT_DELTA and (event.output_index, event.content_index) == hot_key:
                if event.delta:
                    pieces.append(event.delta)
                    tokens += 1
            elif kind in FAST_KINDS:
                payload = {
                    "output_index": event.output_index,
                    "content_index": event.content_index,
                    "summary_index": event.summary_index,
                    "delta": event.delta,
                }
                _HANDLERS[kind](self, payload)
                hot_key, pieces = self._hot_key, self._hot_pieces
            else:
                break
            taken += 1
        if tokens:
            self.tokens += tokens
            self.has_answer = True
        return taken

    def _feed_single(self, events: Iterable[bytes | ServerSentEvent]) -> None:
        loads = orjson.loads
        handlers = _HANDLERS
        for item in events:
            # feed_raw hands a `message` event over as raw bytes; named events come as events.
            if isinstance(item, bytes):
                data: bytes | str = item
                name = "message"
            else:
                data, name = item.data, item.event
                if self._fast_misses and name in FAST_KINDS:
                    try:
                        taken = self._feed_deltas(((decode_delta(data),),))
                    except (ValueError, RecursionError):  # (see decode_run)
                        taken = 0
                        self._fast_misses -= 1
                    if taken:
                        continue
            try:
                payload = loads(data)
            except orjson.JSONDecodeError:
                payload = self._not_json(data)
                if payload is None:
                    if self._done:
                        return
                    continue
            if type(payload) is not dict:
                self._fail(protocol_error(f"event {name!r} is not a JSON object"))
                return
            kind = payload.get("type")
            # The hot path (nearly every event): _text_delta inlined for the part it fed last.
            if (
                kind == "response.output_text.delta"
                and (payload.get("output_index"), payload.get("content_index")) == self._hot_key
            ):
                delta = payload.get("delta")
                if delta and type(delta) is str:
                    self._hot_pieces.append(delta)
                    self.has_answer = True
                    self.tokens += 1
                continue
            handler = handlers.get(kind if type(kind) is str else name)
            if handler is not None:  # unknown events are new features: tolerated
                handler(self, payload)
                if self._done:
                    return

    def _not_json(self, data: bytes | str) -> Any:
        """The payload of data orjson refused, or None when there is none (then maybe done)."""
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        if isinstance(data, bytes):
            # Invalid UTF-8 bytes: read the U+FFFD-decoded text, as feed() would have it.
            try:
                return orjson.loads(text)
            except orjson.JSONDecodeError:
                pass
        if self._keepalive(text):
            return None
        if text.startswith("[DONE]"):
            # Some gateways end with chat's sentinel: the end of the stream, not a terminal event.
            self._done = True
            return None
        self._fail(protocol_error(f"event is not JSON: {text[:200]!r}"))
        return None

    # -- events ------------------------------------------------------------------------------------

    def _response(self, payload: dict[str, Any]) -> dict[str, Any]:
        # response.created / in_progress / queued and the terminal events carry the response object.
        self._started = True
        response = payload.get("response")
        if type(response) is not dict:
            return {}
        if self._id is None:
            self._id = _str(response.get("id")) or None
        if self._model is None:
            self._model = _str(response.get("model")) or None
        return response

    def _item(self, payload: dict[str, Any], kind: str) -> _Item:
        # An item a delta names before its output_item.added (a lenient server) is created here.
        self._started = True
        index = _index(payload.get("output_index"))
        item = self._items.get(index)
        if item is None:
            item = self._items[index] = _Item(kind)
        return item

    def _item_added(self, payload: dict[str, Any]) -> None:
        raw = payload.get("item")
        if type(raw) is not dict:
            self._fail(protocol_error("response.output_item.added without an item"))
            return
        kind = _str(raw.get("type")) or ""
        self._started = True
        self._hot_key = None  # a new item at an index replaces the one the hot path fed
        item = self._items[_index(payload.get("output_index"))] = _Item(kind)
        if item.tool is not None:
            item.tool.id = _str(raw.get("call_id")) or _str(raw.get("id")) or None
            item.tool.name = _str(raw.get("name")) or ""
            item.args_done = _str(raw.get("arguments")) or None
            self.has_answer = True
            self.tokens += 1

    def _item_done(self, payload: dict[str, Any]) -> None:
        raw = payload.get("item")
        if type(raw) is dict:
            self._fill(_index(payload.get("output_index")), raw)

    def _fill(self, index: int, raw: dict[str, Any]) -> None:
        """Take a finished item's text, name and arguments where no delta gave them."""
        kind = _str(raw.get("type")) or ""
        item = self._items.get(index)
        if item is None:
            item = self._items[index] = _Item(kind)
        item.raw = raw
        if item.tool is not None:
            item.tool.id = item.tool.id or _str(raw.get("call_id")) or None
            item.tool.name = item.tool.name or _str(raw.get("name")) or ""
            if item.args_done is None:
                item.args_done = _str(raw.get("arguments"))
        for key, part in _finished_parts(raw):
            target = item.reasoning if isinstance(key, tuple) else item.refusal if part[0] else item.text
            found = _part(target, key)
            if found.done is None:
                found.done = part[1]

    def _text_delta(self, payload: dict[str, Any]) -> None:
        part = _part(self._item(payload, "message").text, _index(payload.get("content_index")))
        self._hot_key = (payload.get("output_index"), payload.get("content_index"))
        self._hot_pieces = part.pieces
        self._append(part, payload)

    def _text_done(self, payload: dict[str, Any]) -> None:
        part = _part(self._item(payload, "message").text, _index(payload.get("content_index")))
        part.done = _str(payload.get("text"))

    def _refusal_delta(self, payload: dict[str, Any]) -> None:
        self._append(
            _part(self._item(payload, "message").refusal, _index(payload.get("content_index"))), payload
        )

    def _refusal_done(self, payload: dict[str, Any]) -> None:
        part = _part(self._item(payload, "message").refusal, _index(payload.get("content_index")))
        part.done = _str(payload.get("refusal"))

    def _summary_delta(self, payload: dict[str, Any]) -> None:
        key = (_SUMMARY, _index(payload.get("summary_index")))
        self._think(_part(self._item(payload, "reasoning").reasoning, key), payload)

    def _summary_done(self, payload: dict[str, Any]) -> None:
        key = (_SUMMARY, _index(payload.get("summary_index")))
        _part(self._item(payload, "reasoning").reasoning, key).done = _str(payload.get("text"))

    def _reasoning_delta(self, payload: dict[str, Any]) -> None:
        key = (_REASONING_TEXT, _index(payload.get("content_index")))
        self._think(_part(self._item(payload, "reasoning").reasoning, key), payload)

    def _reasoning_done(self, payload: dict[str, Any]) -> None:
        key = (_REASONING_TEXT, _index(payload.get("content_index")))
        _part(self._item(payload, "reasoning").reasoning, key).done = _str(payload.get("text"))

    def _args_delta(self, payload: dict[str, Any]) -> None:
        item = self._item(payload, "function_call")
        delta = payload.get("delta")
        if item.tool is not None and isinstance(delta, str) and delta:
            item.tool.args.append(delta)
            self.has_answer = True
            self.tokens += 1

    def _args_done(self, payload: dict[str, Any]) -> None:
        item = self._item(payload, "function_call")
        item.args_done = _str(payload.get("arguments"))
        if item.tool is not None and not item.tool.name:
            item.tool.name = _str(payload.get("name")) or ""

    def _append(self, part: _Part, payload: dict[str, Any]) -> None:
        delta = payload.get("delta")
        if isinstance(delta, str) and delta:
            part.pieces.append(delta)
            self.has_answer = True
            self.tokens += 1

    def _think(self, part: _Part, payload: dict[str, Any]) -> None:
        delta = payload.get("delta")
        if isinstance(delta, str) and delta:
            part.pieces.append(delta)
            self.has_reasoning = True
            self.tokens += 1

    def _error_event(self, payload: dict[str, Any]) -> None:
        # {"type": "error", "code", "message", "param"} (or the error nested under "error").
        self._provider_error(error_from_payload(payload))

    def _completed(self, payload: dict[str, Any]) -> None:
        self._end(payload, "completed")

    def _incomplete(self, payload: dict[str, Any]) -> None:
        details = self._end(payload, "incomplete").get("incomplete_details")
        reason = _str(details.get("reason")) if isinstance(details, dict) else None
        self._raw_finish = reason or "incomplete"
        self._finish = _INCOMPLETE.get(reason or "")

    def _failed(self, payload: dict[str, Any]) -> None:
        inner = self._end(payload, "failed").get("error")
        error = inner if isinstance(inner, dict) else {"message": "response.failed without an error object"}
        self._provider_error(error_from_payload({"error": error}))
        self._finish = "error"

    def _end(self, payload: dict[str, Any], status: str) -> dict[str, Any]:
        response = self._response(payload)
        usage = response.get("usage")
        if type(usage) is dict:
            self._usage = usage
        output = response.get("output")
        for index, raw in enumerate(output if type(output) is list else ()):
            if type(raw) is dict:
                self._fill(index, raw)
        calls = any(item.tool is not None for item in self._items.values())
        self._raw_finish = status
        self._finish = "tool_calls" if calls else "stop"
        self._terminal = self._done = True
        return response

    # -- result ------------------------------------------------------------------------------------

    def result(self) -> Completion:
        text: list[str] = []
        refusal: list[str] | None = None
        reasoning: list[str] = []
        calls = []
        others: list[Any] = []
        for index in sorted(self._items):
            item = self._items[index]
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
            finish_reason=self._finish,
            raw_finish_reason=self._raw_finish,
        )
        return Completion(
            id=self._id,
            model=self._model,
            complete=self._terminal,
            error=self._error,
            choices=(choice,) if self._started else (),
            usage=responses_usage(self._usage) if self._usage is not None else None,
            extras={"items": others} if others else {},
        )


def _finished_parts(raw: dict[str, Any]) -> list[tuple[Any, tuple[bool, str]]]:
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
            found.append(((_REASONING_TEXT, index), (False, part["text"])))
    summary = raw.get("summary")
    for index, part in enumerate(summary if isinstance(summary, list) else ()):
        if isinstance(part, dict) and isinstance(part.get("text"), str):
            found.append(((_SUMMARY, index), (False, part["text"])))
    return found


_HANDLERS: Final[dict[str, Callable[[OpenAIResponsesAccumulator, dict[str, Any]], object]]] = {
    "response.created": OpenAIResponsesAccumulator._response,
    "response.in_progress": OpenAIResponsesAccumulator._response,
    "response.queued": OpenAIResponsesAccumulator._response,
    "response.output_item.added": OpenAIResponsesAccumulator._item_added,
    "response.output_item.done": OpenAIResponsesAccumulator._item_done,
    "response.output_text.delta": OpenAIResponsesAccumulator._text_delta,
    "response.output_text.done": OpenAIResponsesAccumulator._text_done,
    "response.refusal.delta": OpenAIResponsesAccumulator._refusal_delta,
    "response.refusal.done": OpenAIResponsesAccumulator._refusal_done,
    "response.reasoning_summary_text.delta": OpenAIResponsesAccumulator._summary_delta,
    "response.reasoning_summary_text.done": OpenAIResponsesAccumulator._summary_done,
    "response.reasoning_text.delta": OpenAIResponsesAccumulator._reasoning_delta,
    "response.reasoning_text.done": OpenAIResponsesAccumulator._reasoning_done,
    "response.function_call_arguments.delta": OpenAIResponsesAccumulator._args_delta,
    "response.function_call_arguments.done": OpenAIResponsesAccumulator._args_done,
    "response.completed": OpenAIResponsesAccumulator._completed,
    "response.incomplete": OpenAIResponsesAccumulator._incomplete,
    "response.failed": OpenAIResponsesAccumulator._failed,
    "error": OpenAIResponsesAccumulator._error_event,
}


class OpenAIResponsesDialect(DialectBase[OpenAIResponsesAccumulator]):
    """OpenAI Responses: POST ``{base_url}/responses`` with ``stream: true``."""

    name: str = "openai-responses"
    accumulator = OpenAIResponsesAccumulator

    def case_problem(self, provider: ProviderSpec, case: CaseSpec) -> str | None:
        params = request_params(provider, case)
        for key in UNSUPPORTED_PARAMS:
            if key in params:
                return f"the Responses API has no {key!r} parameter"
        try:
            responses_input(case)
        except Untranslatable as exc:
            return str(exc)
        return None

    def check_messages(self, case: CaseSpec) -> None:
        """``case_problem`` as a ConfigError keyed by the part at fault (the case's own params only).

        The shape of the load check on main (``Dialect.check_messages``), for the merge.

        Raises:
            ConfigError: the case holds what the Responses API cannot express.
        """
        for key in UNSUPPORTED_PARAMS:
            if key in case.params:
                raise ConfigError(
                    f"case {case.id!r}: {self.name} has no {key!r} parameter",
                    key=f"params.{key}",
                    fix=f"leave {key!r} out for {self.name}",
                )
        try:
            responses_input(case)
        except Untranslatable as exc:
            raise ConfigError(
                f"case {case.id!r}: {self.name} cannot express {exc.key}: {exc.what}",
                key=exc.key,
                fix=f"rewrite the case for {self.name}, or leave this provider out of its providers",
            ) from None

    def build_request(self, provider: ProviderSpec, case: CaseSpec, *, api_key: str | None) -> HttpRequest:
        body: dict[str, Any] = {"model": provider.model, "input": responses_input(case)}
        if case.system is not None:
            body["instructions"] = case.system
        if case.tools:
            body["tools"] = responses_tools(case.tools)
        params = {_PARAM_NAMES.get(key, key): value for key, value in request_params(provider, case).items()}
        body = merge_params(body, params)
        body["stream"] = True
        return HttpRequest(
            method="POST",
            url=f"{provider.base_url.rstrip('/')}/responses",
            headers=self.request_headers(provider, api_key),
            body=orjson.dumps(body),
        )
