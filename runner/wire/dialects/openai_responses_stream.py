"""The ``openai-responses`` stream accumulator: typed events in, one ``Completion`` out.

The stream is a sequence of typed events (``event:`` names and the data's ``type`` agree; the type is
read, so a stream without ``event:`` lines reads the same). Output items are keyed by ``output_index``
and may interleave (openai_responses_items). ``response.completed`` / ``.incomplete`` / ``.failed``
are the terminal signal; ``sequence_number`` is not needed (events arrive in order on one
connection) and is ignored, as are unknown events. Here are the ways in (a read, a run of typed
events, msgspec's fast path: openai_responses_fast); each event's handler, and the state, are in
openai_responses_events.
"""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING, Any, Final

import orjson

from runner.wire.dialects.common import AccumulatorBase, protocol_error
from runner.wire.dialects.openai_chat_fast import FAST_DECODE_MISSES
from runner.wire.dialects.openai_responses_events import COLD, HANDLERS, ResponsesEvents
from runner.wire.dialects.openai_responses_fast import (
    FAST_KINDS,
    Delta,
    decode_delta,
    decode_run,
    hot_decoder,
)
from runner.wire.events import TypedRun, event_count, new_event

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from runner.wire.events import RawEvent, ServerSentEvent
    from runner.wire.sse import SSEDecoder

# What a hot run's decoded items give up: the delta of each one-element tuple (C calls, no loop).
FIRST: Final = operator.itemgetter(0)
DELTA: Final = operator.attrgetter("delta")


class OpenAIResponsesAccumulator(ResponsesEvents):
    """Rebuilds one Responses stream; ``is_done`` at a terminal event, ``[DONE]`` or a protocol error.

    An ``error`` event sets the error and reading goes on (a ``response.failed`` may follow); the
    result is ``complete`` only after a terminal event.

    Args:
        fast_path: read delta events through msgspec (openai_responses_fast); False sends every
            event through the orjson path, which defines the result (the equivalence tests
            compare the two).
    """

    __slots__ = ("_fast_misses", "_hot_decode", "_hot_key")

    def __init__(self, *, fast_path: bool = True) -> None:
        super().__init__()
        # Runs msgspec may miss in a row before this stream stops trying it (openai_chat_fast).
        self._fast_misses = FAST_DECODE_MISSES if fast_path else 0
        # The hot part's key (kind, output_index, content_index) and its hot_decoder, or None.
        self._hot_key: tuple[object, object, object] = (COLD, COLD, COLD)
        self._hot_decode: Callable[[bytes], list[Any]] | None = None

    def feed(self, event: ServerSentEvent) -> None:
        self.feed_many((event,))

    def feed_read(self, decoder: SSEDecoder, read: bytes) -> int:
        # One event per read (a server flushing each event: every slow stream) taken straight from
        # the read (SSEDecoder.take_typed) and, when it is a delta to the hot part, appended here:
        # no TypedRun, no list, no second call. A read of whole typed events (reads cut anywhere)
        # goes from SSEDecoder.take_run to _feed_run directly. Anything else as feed_many reads it.
        if self._done or not self._fast_misses:
            return AccumulatorBase.feed_read(self, decoder, read)
        data = decoder.take_typed(read)
        if data is None:
            taken = decoder.take_run(read)
            if taken is not None:
                self._feed_run(taken)
                return taken.blocks
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
        # (the run feed_raw would have handed out for this read)
        run = new_event(TypedRun, (read, 1, decoder.last_event_id, decoder.retry, data))
        self._feed_decoded(run, [(event,)] if event is not None else None)
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
        """The hot loop for reads cut anywhere: a run decoded in one msgspec call. A run of deltas
        to the hot part (nearly every run) by its hot_decoder, appended without a Python-level step
        per event; any other run by decode_run. (feed_read takes a read of one event its own way.)"""
        if not self._fast_misses:
            self._feed_single(run.events())
            return
        key = (self._hot_type, self._hot_output, self._hot_content)
        if key != self._hot_key:  # (the hot part changed: its decoder, built once per part)
            self._hot_key = key
            self._hot_decode = hot_decoder(*key)
        if self._hot_decode is not None:
            try:
                decoded = self._hot_decode(b"[[" + run.datas + b"]]")
            except (ValueError, RecursionError):  # (see decode_run)
                decoded = None
            if decoded is not None and len(decoded) == run.blocks:
                self._fast_misses = FAST_DECODE_MISSES
                self._hot_pieces += map(DELTA, map(FIRST, decoded))
                self.tokens += run.blocks
                if self._hot_reasoning:
                    self.has_reasoning = True
                else:
                    self.has_answer = True
                return
        self._feed_decoded(run, decode_run(run))

    def _feed_decoded(self, run: TypedRun, decoded: Sequence[tuple[Delta]] | None) -> None:
        """Feed ``run`` by msgspec's reading of it (None: it refused): _feed_deltas while its events
        are deltas; what msgspec refused, or what follows a non-delta event, one event at a time
        through _feed_single."""
        if decoded is None:
            # A run holding a non-delta event (created, item added, done...) misses too, so the
            # budget counts misses in a row: a shape msgspec never takes stops it.
            self._fast_misses = max(0, self._fast_misses - 1)
            self._feed_single(run.events())
        else:
            self._fast_misses = FAST_DECODE_MISSES
            taken = self._feed_deltas(decoded)
            if taken < len(decoded):
                self._feed_single(run.events()[taken:])

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
                self._count_hot(len(hot))
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
                HANDLERS[event.type](self, payload)
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
        handlers = HANDLERS
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
