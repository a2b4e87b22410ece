"""The ``openai-responses`` stream's events, each a handler on the state it builds.

``ResponsesEvents`` holds what a Responses stream rebuilds (the output items, the finish, the hot part
the fast paths append to) and reads one event as a dict through its handler (``HANDLERS``, by type).
``OpenAIResponsesAccumulator`` (openai_responses_stream) adds the ways in: reads, runs of typed
events, msgspec's fast path. Output items are keyed by ``output_index`` and may interleave
(openai_responses_items); ``response.completed`` / ``.incomplete`` / ``.failed`` are the terminal
signal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import orjson

from runner.model import Completion, FinishReason
from runner.wire.dialects.common import AccumulatorBase, error_from_payload, protocol_error
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

if TYPE_CHECKING:
    from collections.abc import Callable


class _Cold:
    """Equal to nothing but itself: the hot part's indexes when no part is hot."""

    __slots__ = ()


COLD: Final = _Cold()


class ResponsesEvents(AccumulatorBase):
    """The state of one Responses stream being rebuilt, and the handler of each event type."""

    __slots__ = (
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

    def __init__(self) -> None:
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
        # build each time. COLD equals nothing (no part is hot).
        self._hot_type: Any = COLD
        self._hot_output: Any = COLD
        self._hot_content: Any = COLD
        self._hot_pieces: list[str] = []
        self._hot_reasoning = False  # the hot part is reasoning (has_reasoning), not answer

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
        self._hot_type = self._hot_output = self._hot_content = COLD
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


HANDLERS: Final[dict[str, Callable[[ResponsesEvents, dict[str, Any]], object]]] = {
    "response.created": ResponsesEvents._response,
    "response.in_progress": ResponsesEvents._response,
    "response.queued": ResponsesEvents._response,
    "response.output_item.added": ResponsesEvents._item_added,
    "response.output_item.done": ResponsesEvents._item_done,
    "response.output_text.delta": ResponsesEvents._text_delta,
    "response.output_text.done": ResponsesEvents._text_done,
    "response.refusal.delta": ResponsesEvents._refusal_delta,
    "response.refusal.done": ResponsesEvents._refusal_done,
    "response.reasoning_summary_text.delta": ResponsesEvents._summary_delta,
    "response.reasoning_summary_text.done": ResponsesEvents._summary_done,
    "response.reasoning_text.delta": ResponsesEvents._reasoning_delta,
    "response.reasoning_text.done": ResponsesEvents._reasoning_done,
    "response.function_call_arguments.delta": ResponsesEvents._args_delta,
    "response.function_call_arguments.done": ResponsesEvents._args_done,
    "response.completed": ResponsesEvents._completed,
    "response.incomplete": ResponsesEvents._incomplete,
    "response.failed": ResponsesEvents._failed,
    "error": ResponsesEvents._error_event,
}
