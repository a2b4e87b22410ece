"""The ``openai-responses`` stream accumulator: typed events in, one ``Completion`` out.

The stream is a sequence of typed events (``event:`` names and the data's ``type`` agree; the type is
read, so a stream without ``event:`` lines reads the same). Output items are keyed by ``output_index``
and may interleave (openai_responses_items). ``response.completed`` / ``.incomplete`` / ``.failed``
are the terminal signal; ``sequence_number`` is not needed (events arrive in order on one
connection) and is ignored, as are unknown events. The hot path: openai_responses_fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import orjson

from runner.model import Completion, FinishReason
from runner.wire.dialects.common import AccumulatorBase, error_from_payload, protocol_error
from runner.wire.dialects.openai_chat_fast import FAST_DECODE_MISSES
from runner.wire.dialects.openai_responses_fast import FAST_KINDS, Delta, decode_delta, decode_run
from runner.wire.dialects.openai_responses_items import (
    REASONING_TEXT,
    SUMMARY,
    Item,
    Part,
    as_index,
    as_str,
    fill_item,
    fill_output,
    incomplete_finish,
    items_choice,
    part_at,
    responses_usage,
)
from runner.wire.events import TypedRun, event_count, new_event

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from runner.wire.events import RawEvent, ServerSentEvent
    from runner.wire.sse import SSEDecoder


class _Cold:
    """Equal to nothing but itself: the hot part's indexes when no part is hot."""

    __slots__ = ()


_COLD: Final = _Cold()


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
        "_hot_content",
        "_hot_output",
        "_hot_pieces",
        "_hot_reasoning",
        "_hot_type",
        "_items",
        "_raw_finish",
        "_started",
        "_terminal",
    )

    def __init__(self, *, fast_path: bool = True) -> None:
        super().__init__()
        self._items: dict[int, Item] = {}
        self._finish: FinishReason | None = None
        self._raw_finish: str | None = None
        self._started = False
        self._terminal = False
        # The hot part: the one the last delta of an answer or reasoning kind went to (output text,
        # refusal, tool-call arguments, reasoning text), by its kind and raw output_index and
        # content_index. The next delta of the same kind for the same part is appended inline,
        # without its handler. Separate fields, not a tuple: compared per event, one tuple less to
        # build each time. _COLD equals nothing (no part is hot).
        self._hot_type: Any = _COLD
        self._hot_output: Any = _COLD
        self._hot_content: Any = _COLD
        self._hot_pieces: list[str] = []
        self._hot_reasoning = False  # the hot part is reasoning (has_reasoning), not answer
        # Runs msgspec may miss in a row before this stream stops trying it (openai_chat_fast).
        self._fast_misses = FAST_DECODE_MISSES if fast_path else 0

    def feed(self, event: ServerSentEvent) -> None:
        self.feed_many((event,))

    def feed_read(self, decoder: SSEDecoder, read: bytes) -> int:
        # One event per read (a server flushing each event: every slow stream) taken straight from
        # the read (SSEDecoder.take_typed) and, when it is a delta to the hot part, appended here:
        # no TypedRun, no list, no second call. A read of whole typed events (reads cut anywhere)
        # goes to _feed_run directly. Anything else as feed_many reads it.
        if self._done or not self._fast_misses:
            return AccumulatorBase.feed_read(self, decoder, read)
        data = decoder.take_typed(read)
        if data is None:
            events = decoder.feed_raw(read)
            if len(events) == 1 and type(run := events[0]) is TypedRun:
                self._feed_run(run)
                return run.blocks
            if events:
                self.feed_many(events)
            return event_count(events)
        try:
            event: Delta | None = decode_delta(data)
        except (ValueError, RecursionError):  # (see decode_run)
            event = None
        if (
            event is not None
            and event.output_index == self._hot_output
            and event.content_index == self._hot_content
            and event.type == self._hot_type
        ):
            delta = event.delta
            if delta:
                self._hot_pieces.append(delta)
                self.tokens += 1
                if self._hot_reasoning:
                    self.has_reasoning = True
                else:
                    self.has_answer = True
            return 1
        # (what feed_raw would have handed out for this read)
        self._feed_typed(event, new_event(TypedRun, (read, 1, decoder.last_event_id, decoder.retry, data)))
        return 1

    def feed_many(self, events: Sequence[RawEvent]) -> None:
        # A read's typed events come as one TypedRun (_feed_run); anything else one event at a
        # time through _feed_single, whose orjson path defines the result.
        if self._done:
            return
        for item in events:
            if isinstance(item, TypedRun):
                self._feed_run(item)
            else:
                self._feed_single((item,))
            if self.is_done:  # (the property: mypy would keep _done narrowed to False)
                return

    def _feed_run(self, run: TypedRun) -> None:
        """The hot loop: a run decoded in one msgspec call (openai_responses_fast.decode_run) and fed
        by _feed_deltas while its events are deltas; what msgspec refuses, or what follows a
        non-delta event, one event at a time through _feed_single."""
        if run.blocks == 1 and self._fast_misses:
            # One event per read (a slow stream): the hot delta inline, as feed_read does.
            try:
                event: Delta | None = decode_delta(run.datas)
            except (ValueError, RecursionError):  # (see decode_run)
                event = None
            if (
                event is not None
                and event.output_index == self._hot_output
                and event.content_index == self._hot_content
                and event.type == self._hot_type
            ):
                if event.delta:
                    self._hot_pieces.append(event.delta)
                    self._count_hot(1)
                return
            self._feed_typed(event, run)
        elif (decoded := decode_run(run) if self._fast_misses else None) is None:
            # A run holding a non-delta event (created, item added, done...) misses too, so the
            # budget counts misses in a row: a shape msgspec never takes stops it.
            self._fast_misses = max(0, self._fast_misses - 1)
            self._feed_single(run.events())
        else:
            self._fast_misses = FAST_DECODE_MISSES
            taken = self._feed_deltas(decoded)
            if taken < len(decoded):
                self._feed_single(run.events()[taken:])

    def _feed_typed(self, event: Delta | None, run: TypedRun) -> None:
        """Feed a one-event ``run`` that is no delta to the hot part; ``event``: msgspec's reading."""
        if event is None:
            self._fast_misses = max(0, self._fast_misses - 1)
            self._feed_single(run.events())
        else:
            self._fast_misses = FAST_DECODE_MISSES
            if not self._feed_deltas(((event,),)):
                self._feed_single(run.events())

    def _count_hot(self, tokens: int) -> None:
        # ``tokens`` deltas were appended to the hot part.
        self.tokens += tokens
        if self._hot_reasoning:
            self.has_reasoning = True
        else:
            self.has_answer = True

    def _feed_deltas(self, decoded: Sequence[tuple[Delta]]) -> int:
        """Feed msgspec-decoded events in order while each is of a FAST_KINDS kind; how many it fed.

        What the handlers do with the same event as a dict, which is what orjson would give (the
        hot part's delta inline, as in _feed_single; the others through their handler).
        """
        kind, output, content, pieces = self._hot_type, self._hot_output, self._hot_content, self._hot_pieces
        # The common run: every event a non-empty delta to the hot part. One comprehension reads
        # it (a Python-level loop step per event costs more than msgspec's decoding); if any event
        # is another one, the loop below reads the run from its start instead.
        hot = [
            delta
            for (event,) in decoded
            if event.output_index == output
            and event.content_index == content
            and event.type == kind
            and (delta := event.delta)
        ]
        if len(hot) == len(decoded):
            if hot:
                pieces += hot
                self.tokens += len(hot)
                if self._hot_reasoning:
                    self.has_reasoning = True
                else:
                    self.has_answer = True
            return len(hot)
        tokens = taken = 0
        for (event,) in decoded:
            if event.type == kind and event.output_index == output and event.content_index == content:
                if event.delta:
                    pieces.append(event.delta)
                    tokens += 1
            elif event.type in FAST_KINDS:
                if tokens:  # (counted before the hot part may change kind)
                    self._count_hot(tokens)
                    tokens = 0
                payload = {
                    "type": event.type,
                    "output_index": event.output_index,
                    "content_index": event.content_index,
                    "summary_index": event.summary_index,
                    "delta": event.delta,
                }
                _HANDLERS[event.type](self, payload)
                kind, output, content = self._hot_type, self._hot_output, self._hot_content
                pieces = self._hot_pieces
            else:
                break
            taken += 1
        if tokens:
            self._count_hot(tokens)
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
            # The hot path when msgspec is not read (nearly every event): the hot part's delta
            # inline. Indexes of the hot part's own types only: 1.0 or true equal 1 but name
            # another part (as_index).
            if kind == self._hot_type:
                output, content = payload.get("output_index"), payload.get("content_index")
                if (
                    output == self._hot_output
                    and content == self._hot_content
                    and type(output) is type(self._hot_output)
                    and type(content) is type(self._hot_content)
                ):
                    delta = payload.get("delta")
                    if delta and type(delta) is str:
                        self._hot_pieces.append(delta)
                        self._count_hot(1)
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
            self._id = as_str(response.get("id")) or None
        if self._model is None:
            self._model = as_str(response.get("model")) or None
        return response

    def _item(self, payload: dict[str, Any], kind: str) -> Item:
        # An item a delta names before its output_item.added (a lenient server) is created here.
        self._started = True
        index = as_index(payload.get("output_index"))
        item = self._items.get(index)
        if item is None:
            item = self._items[index] = Item(kind)
        return item

    def _item_added(self, payload: dict[str, Any]) -> None:
        raw = payload.get("item")
        if type(raw) is not dict:
            self._fail(protocol_error("response.output_item.added without an item"))
            return
        kind = as_str(raw.get("type")) or ""
        self._started = True
        # A new item at an index replaces the one the hot path fed.
        self._hot_type = self._hot_output = self._hot_content = _COLD
        item = self._items[as_index(payload.get("output_index"))] = Item(kind)
        if item.tool is not None:
            item.tool.id = as_str(raw.get("call_id")) or as_str(raw.get("id")) or None
            item.tool.name = as_str(raw.get("name")) or ""
            item.args_done = as_str(raw.get("arguments")) or None
            self.has_answer = True
            self.tokens += 1

    def _item_done(self, payload: dict[str, Any]) -> None:
        raw = payload.get("item")
        if type(raw) is dict:
            fill_item(self._items, as_index(payload.get("output_index")), raw)

    def _content(self, payload: dict[str, Any], *, refusal: bool = False) -> Part:
        # The message part (output text or refusal) an event names by content_index.
        item = self._item(payload, "message")
        return part_at(item.refusal if refusal else item.text, as_index(payload.get("content_index")))

    def _thought(self, payload: dict[str, Any], kind: int) -> Part:
        # The reasoning part an event names: a summary by summary_index, a text by content_index.
        index = as_index(payload.get("summary_index" if kind == SUMMARY else "content_index"))
        return part_at(self._item(payload, "reasoning").reasoning, (kind, index))

    def _heat(self, payload: dict[str, Any], pieces: list[str], *, reasoning: bool = False) -> None:
        # The part ``pieces`` belongs to is hot for the next deltas of this event's kind and
        # indexes. Only when each index is an int or absent: the hot check compares with ==, and
        # a float or a bool equal to an int names another part (as_index).
        output, content = payload.get("output_index"), payload.get("content_index")
        if (output is None or type(output) is int) and (content is None or type(content) is int):
            self._hot_type, self._hot_output, self._hot_content = payload.get("type"), output, content
            self._hot_pieces, self._hot_reasoning = pieces, reasoning

    def _text_delta(self, payload: dict[str, Any]) -> None:
        part = self._content(payload)
        self._heat(payload, part.pieces)
        self._append(part, payload)

    def _text_done(self, payload: dict[str, Any]) -> None:
        self._content(payload).done = as_str(payload.get("text"))

    def _refusal_delta(self, payload: dict[str, Any]) -> None:
        part = self._content(payload, refusal=True)
        self._heat(payload, part.pieces)
        self._append(part, payload)

    def _refusal_done(self, payload: dict[str, Any]) -> None:
        self._content(payload, refusal=True).done = as_str(payload.get("refusal"))

    def _summary_delta(self, payload: dict[str, Any]) -> None:
        self._think(self._thought(payload, SUMMARY), payload)

    def _summary_done(self, payload: dict[str, Any]) -> None:
        self._thought(payload, SUMMARY).done = as_str(payload.get("text"))

    def _reasoning_delta(self, payload: dict[str, Any]) -> None:
        part = self._thought(payload, REASONING_TEXT)
        self._heat(payload, part.pieces, reasoning=True)
        self._think(part, payload)

    def _reasoning_done(self, payload: dict[str, Any]) -> None:
        self._thought(payload, REASONING_TEXT).done = as_str(payload.get("text"))

    def _args_delta(self, payload: dict[str, Any]) -> None:
        item = self._item(payload, "function_call")
        if item.tool is not None:
            self._heat(payload, item.tool.args)
        delta = payload.get("delta")
        if item.tool is not None and isinstance(delta, str) and delta:
            item.tool.args.append(delta)
            self.has_answer = True
            self.tokens += 1

    def _args_done(self, payload: dict[str, Any]) -> None:
        item = self._item(payload, "function_call")
        item.args_done = as_str(payload.get("arguments"))
        if item.tool is not None and not item.tool.name:
            item.tool.name = as_str(payload.get("name")) or ""

    def _append(self, part: Part, payload: dict[str, Any]) -> None:
        delta = payload.get("delta")
        if isinstance(delta, str) and delta:
            part.pieces.append(delta)
            self.has_answer = True
            self.tokens += 1

    def _think(self, part: Part, payload: dict[str, Any]) -> None:
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
        self._raw_finish, self._finish = incomplete_finish(self._end(payload, "incomplete"))

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
        calls = fill_output(self._items, response)
        self._raw_finish = status
        self._finish = "tool_calls" if calls else "stop"
        self._terminal = self._done = True
        return response

    # -- result ------------------------------------------------------------------------------------

    def result(self) -> Completion:
        choice, others = items_choice(self._items, self._finish, self._raw_finish)
        return Completion(
            id=self._id,
            model=self._model,
            complete=self._terminal,
            error=self._error,
            choices=(choice,) if self._started else (),
            usage=responses_usage(self._usage) if self._usage is not None else None,
            extras={"items": others} if others else {},
        )


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
