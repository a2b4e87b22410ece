"""The ``openai-chat`` dialect: OpenAI Chat Completions and every compatible streaming API.

Covers OpenAI, SolRouter, Melious (OpenAI shape), MiroMind, OpenRouter, vLLM, DeepSeek, Groq, Azure
and Ollama chunks; the edge cases are PROTOCOLS.md 13-26 (section 2).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import orjson

from runner.model import Completion, Usage
from runner.spec import merge_params, request_params
from runner.wire.dialects.base import DialectBase, HttpRequest
from runner.wire.dialects.common import (
    AccumulatorBase,
    ChoiceBuilder,
    Extras,
    build_choices,
    error_from_payload,
    float_or_none,
    int_or_none,
    openai_messages,
    protocol_error,
    stream_complete,
)
from runner.wire.dialects.openai_chat_fast import FAST_DECODE_MISSES, decode_chunk
from runner.wire.sse import TypedRun

if TYPE_CHECKING:
    from collections.abc import Sequence

    from runner.spec import CaseSpec, ProviderSpec
    from runner.wire.dialects.openai_chat_fast import ChunkToolCall
    from runner.wire.sse import RawEvent, ServerSentEvent

# MiroMind extensions kept in Completion.extras wherever in the chunk they arrive.
_EXTRA_KEYS = ("citations", "search_results")
# "This payload yielded no chunk" (it was [DONE] or not JSON): an immutable marker, never a chunk.
_SKIP: Final = object()
# "This payload was empty": a proxy's keep-alive (`data:` and nothing else), counted as a heartbeat.
_KEEPALIVE: Final = object()


def openai_usage(raw: dict[str, Any], *, cost: Any = None) -> Usage:
    """Normalize an OpenAI-style usage object (plus the DeepSeek, MiroMind and SolRouter keys)."""
    prompt = raw.get("prompt_tokens", raw.get("input_tokens"))
    completion = raw.get("completion_tokens", raw.get("output_tokens"))
    prompt_details = raw.get("prompt_tokens_details") or {}
    completion_details = raw.get("completion_tokens_details") or {}
    cached = prompt_details.get("cached_tokens") if isinstance(prompt_details, dict) else None
    if cached is None:
        cached = raw.get("prompt_cache_hit_tokens")  # DeepSeek
    reasoning = completion_details.get("reasoning_tokens") if isinstance(completion_details, dict) else None
    if reasoning is None:
        reasoning = raw.get("reasoning_tokens")  # MiroMind puts it at the top level
    return Usage(
        input_tokens=int_or_none(prompt),
        output_tokens=int_or_none(completion),
        total_tokens=int_or_none(raw.get("total_tokens")),
        reasoning_tokens=int_or_none(reasoning),
        cached_input_tokens=int_or_none(cached),
        cache_write_tokens=int_or_none(
            prompt_details.get("cache_write_tokens") if isinstance(prompt_details, dict) else None
        ),
        cost=float_or_none(raw.get("cost", cost)),
        raw=raw,
    )


class OpenAIChatAccumulator(AccumulatorBase):
    """Rebuilds one chat.completion.chunk stream.

    ``is_done`` turns true at ``[DONE]``, at a protocol error, or once every choice has finished *and*
    usage was seen with no error (after a provider's error, reading goes on to ``[DONE]``): a
    finished stream without usage may still send its include_usage chunk, so reading goes on until
    ``[DONE]`` or EOF. ``complete`` (in the result) is true after ``[DONE]`` or when
    every choice finished with a reason other than ``error`` (servers that never send ``[DONE]``,
    PROTOCOLS.md 13).

    Args:
        fast_path: read the common chunk shapes through the fast paths (``_feed_struct``,
            ``_feed_shape``); False sends every chunk through ``_full``, which defines the result
            (the equivalence tests compare the two).
        msgspec_misses: how many chunks may miss the msgspec path before this stream stops trying it.
    """

    __slots__ = ("_choices", "_extras", "_fast_path", "_msgspec_misses", "_saw_done")

    def __init__(self, *, fast_path: bool = True, msgspec_misses: int = FAST_DECODE_MISSES) -> None:
        super().__init__()
        self._choices: dict[int, ChoiceBuilder] = {}
        self._extras = Extras()
        self._saw_done = False
        self._fast_path = fast_path
        self._msgspec_misses = msgspec_misses if fast_path else 0

    @property
    def msgspec_misses(self) -> int:
        """Misses the msgspec fast path has left on this stream (0: it is no longer tried)."""
        return self._msgspec_misses

    def feed(self, event: ServerSentEvent) -> None:
        self.feed_many((event,))

    def feed_many(self, events: Sequence[RawEvent]) -> None:
        # The hot loop: one call per read, one step call per chunk. Each chunk goes to the first
        # step that takes it: _feed_struct (msgspec, while its miss budget lasts), _feed_shape (the
        # same shapes read by orjson, with any other keys or values), else _full, which defines the
        # result. The fast steps are exact shortcuts of _full; hypothesis tests hold them to it.
        if self._done:
            return
        loads = orjson.loads
        for item in events:
            # feed_raw hands a `message` event over as its raw bytes: orjson reads UTF-8 bytes
            # directly and rejects invalid UTF-8, which _not_json then reads as feed() would (the
            # U+FFFD-decoded text). So any bytes orjson accepts decode to the same object as text.
            if isinstance(item, bytes):
                data: bytes | str = item
            elif isinstance(item, TypedRun):
                self.feed_many(item.events())  # typed blocks: not chat's shape, read one by one
                if self.is_done:
                    return
                continue
            elif item.event == "message":
                data = item.data
            else:
                self._named(item)
                if self.is_done:  # (the property: mypy would keep _done narrowed to False)
                    return
                continue
            if self._msgspec_misses and self._feed_struct(data):
                continue
            try:
                chunk = loads(data)
            except orjson.JSONDecodeError:
                chunk = self._not_json(data)
                if chunk is _KEEPALIVE:
                    continue
                if chunk is _SKIP:
                    return  # [DONE] or a protocol error: done either way
            if self._fast_path and self._feed_shape(chunk):
                continue
            self._full(chunk, "message", data)
            if self.is_done:
                return

    def _feed_struct(self, data: bytes | str) -> bool:
        """The msgspec fast path: True when it read the chunk, else one miss is spent.

        It takes one choice whose state exists, no finish reason, no usage, a delta of content,
        reasoning or tool-call fragments (see openai_chat_fast.Chunk): what _chunk would do with
        it, minus its checks for keys these Structs cannot hold.
        """
        try:
            parsed = decode_chunk(data)
        except (ValueError, RecursionError):
            # msgspec's DecodeError / ValidationError and the UnicodeDecodeError it raises for
            # invalid UTF-8 are ValueErrors. RecursionError cannot come from Structs this shallow;
            # were it raised, it would still only mean a miss.
            parsed = None
        if parsed is not None and len(parsed.choices) == 1 and parsed.object == "chat.completion.chunk":
            choice = parsed.choices[0]
            index = choice.index
            delta = choice.delta
            # A missing index (None) is left to _chunk, which reads it as 0 and may create a state.
            state = self._choices.get(index) if index is not None else None
            if state is not None and delta is not None:
                # Here, not in _chunk: "the first non-empty id and model win".
                if self._id is None:
                    self._id = parsed.id or None
                if self._model is None:
                    self._model = parsed.model or None
                content = delta.content
                if content:
                    state.text.append(content)
                    self.has_answer = True
                    self.tokens += 1
                if delta.tool_calls is not None:
                    self._tool_calls(state, delta.tool_calls)
                reasoning = delta.reasoning_content or delta.reasoning
                if reasoning:
                    state.reasoning.append(reasoning)
                    self.has_reasoning = True
                    self.tokens += 1
                return True
        if data.strip():  # a keep-alive is no sign the fast path does not fit this stream
            self._msgspec_misses -= 1
        return False

    def _feed_shape(self, chunk: Any) -> bool:
        """The orjson fast path: True when it read the chunk, else _full must.

        The msgspec path's shapes with any other keys or values (what it misses, and every chunk
        once its budget is spent): one choice whose state exists, no finish reason, nothing else
        of interest on the chunk. Then _chunk would only take the id and model and call
        _delta(state, delta): done here inline for a content-only delta, by calling _delta for
        any other (tool-call fragments, reasoning).
        """
        if type(chunk) is not dict:
            return False
        choices = chunk.get("choices")
        if type(choices) is not list or len(choices) != 1:
            return False
        choice = choices[0]
        # index, delta, finish_reason, logprobs: more keys may be extras (_chunk), and so may
        # fewer: a choice can carry citations beside its delta alone.
        if type(choice) is not dict or len(choice) > 4 or "citations" in choice or "search_results" in choice:
            return False
        delta = choice.get("delta")
        if not (
            type(delta) is dict
            and delta
            and choice.get("finish_reason") is None
            and chunk.get("usage") is None
            # not an error record, not an Azure filter record (object "")
            and chunk.get("object") == "chat.completion.chunk"
            # no key _chunk reads for errors, usage or extras
            and "error" not in chunk
            and "x_groq" not in chunk
            and "citations" not in chunk
            and "search_results" not in chunk
        ):
            return False
        index = choice.get("index")
        # bool is an int subclass but not `type() is int`: True goes to _chunk, which reads it as
        # index 0 as it must.
        state = self._choices.get(index) if type(index) is int else None
        if state is None:
            return False
        if self._id is None or self._model is None:
            self._take_ids(chunk)
        content = delta.get("content")
        if len(delta) == 1 and type(content) is str:
            if content:
                state.text.append(content)
                self.has_answer = True
                self.tokens += 1
        else:
            self._delta(state, delta)
        return True

    def _tool_calls(self, state: ChoiceBuilder, fragments: list[ChunkToolCall]) -> None:
        # _delta's tool-call loop for decoded Structs: add_parts is add() minus reading the dict.
        add_parts = state.tools.add_parts
        for fragment in fragments:
            function = fragment.function
            if function is None:
                added = add_parts(fragment.index, fragment.id, False, None, None)
            else:
                added = add_parts(fragment.index, fragment.id, True, function.name, function.arguments)
            if added:
                self.has_answer = True
                self.tokens += 1

    def _named(self, event: ServerSentEvent) -> None:
        # An event with an `event:` type (an error event; anything else is read as a chunk).
        try:
            chunk = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            chunk = self._not_json(event.data)
            if chunk is _SKIP or chunk is _KEEPALIVE:
                return
        self._full(chunk, event.event, event.data)

    def _not_json(self, data: bytes | str) -> Any:
        # orjson rejected the payload. "[DONE]" is not JSON: checking for it here keeps a
        # comparison off every chunk. Raw bytes orjson rejected may only be invalid UTF-8: read
        # them as the U+FFFD-decoded text feed() would have had ("[DONE" can never parse, so
        # checking it first changes nothing). Returns the chunk; _KEEPALIVE for an empty payload;
        # or _SKIP when there is none, and then the accumulator is done.
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        if self._keepalive(text):
            return _KEEPALIVE
        if text.startswith("[DONE]"):
            self._saw_done = self._done = True
            return _SKIP
        if isinstance(data, bytes):
            try:
                return orjson.loads(text)
            except orjson.JSONDecodeError:
                pass
        self._fail(protocol_error(f"chunk is not JSON: {text[:200]!r}"))
        return _SKIP

    def _full(self, chunk: Any, name: str, data: bytes | str) -> None:
        if type(chunk) is not dict:
            text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
            self._fail(protocol_error(f"chunk is not a JSON object: {text[:200]!r}"))
            return
        if name == "error" or chunk.get("error") or chunk.get("object") == "error":
            # The chunk may still carry choices (OpenRouter's finish_reason "error"): keep them.
            self._provider_error(error_from_payload(chunk))
            self._chunk(chunk)
            return
        if chunk.get("object") == "":
            return  # Azure's asynchronous content-filter records (PROTOCOLS.md 15)
        self._chunk(chunk)

    def _take_ids(self, chunk: dict[str, Any]) -> None:
        # The first non-empty id and model win.
        if self._id is None:
            self._id = chunk.get("id") or None
        if self._model is None:
            self._model = chunk.get("model") or None

    def _chunk(self, chunk: dict[str, Any]) -> None:
        self._take_ids(chunk)
        usage = chunk.get("usage")
        if usage and type(usage) is dict:  # last non-null wins, never summed (PROTOCOLS.md 21-23)
            self._usage = usage
        x_groq = chunk.get("x_groq")
        if x_groq and type(x_groq) is dict and type(x_groq.get("usage")) is dict:
            self._usage = x_groq["usage"]
        for key in _EXTRA_KEYS:
            if key in chunk:
                self._extras.merge(key, chunk[key])
        choices = chunk.get("choices")
        if not choices or type(choices) is not list:
            return  # choices: [] (usage chunk, Azure's first chunk) is normal
        finished = False
        for raw_choice in choices:
            if type(raw_choice) is not dict:
                continue
            index = raw_choice.get("index")
            if type(index) is not int:
                index = 0  # SolRouter's tool-call chunks carry no choice index
            state = self._choices.get(index)
            if state is None:
                state = self._choices[index] = ChoiceBuilder(index)
            delta = raw_choice.get("delta")
            if delta and type(delta) is dict:  # delta: null (Azure) is normal
                self._delta(state, delta)
            reason = raw_choice.get("finish_reason")
            if reason:
                state.raw_finish_reason = str(reason)
                finished = True
                if reason == "error" or "error" in raw_choice:
                    # MiroMind: finish_reason "error" / "cancelled" with an error object, which
                    # may sit on the chunk (handled in feed) or on the choice.
                    inner = raw_choice.get("error")
                    self._provider_error(
                        error_from_payload({"error": inner})
                        if inner
                        else error_from_payload({"message": f"finish_reason {reason!r}"})
                    )
            # MiroMind's extensions may sit on the choice, beside as few as one other key.
            for key in _EXTRA_KEYS:
                if key in raw_choice:
                    self._extras.merge(key, raw_choice[key])
        # After an error only the terminal signal ends the stream (or the attempt's grace period).
        if finished and self._usage is not None and self._error is None and self._all_finished():
            self._done = True

    def _delta(self, state: ChoiceBuilder, delta: dict[str, Any]) -> None:
        content = delta.get("content")
        # Text that is not a string is ignored, as reasoning is (result() joins strings only).
        if content and type(content) is str:
            state.text.append(content)
            self.has_answer = True
            self.tokens += 1
        if len(delta) == 1 and content is not None:
            return  # a plain content delta
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if reasoning and type(reasoning) is str:
            state.reasoning.append(reasoning)
            self.has_reasoning = True
            self.tokens += 1
        refusal = delta.get("refusal")
        if refusal is not None:
            if state.refusal is None:
                state.refusal = []
            if refusal and type(refusal) is str:
                state.refusal.append(refusal)
                self.has_answer = True
                self.tokens += 1
        tool_calls = delta.get("tool_calls")
        if tool_calls and type(tool_calls) is list:
            for fragment in tool_calls:
                if state.tools.add(fragment):
                    self.has_answer = True
                    self.tokens += 1
        function_call = delta.get("function_call")  # deprecated single-call shape
        if function_call and type(function_call) is dict and state.tools.add({"function": function_call}):
            self.has_answer = True
            self.tokens += 1
        steps = delta.get("reasoning_steps")
        if steps and type(steps) is list:
            self._steps(state, steps)
        details = delta.get("reasoning_details")
        if details:
            self._extras.merge("reasoning_details", details)
        for key in _EXTRA_KEYS:
            if key in delta:
                self._extras.merge(key, delta[key])

    def _steps(self, state: ChoiceBuilder, steps: list[Any]) -> None:
        # MiroMind reasoning steps are whole steps, not fragments: keep them in order, and join
        # their thoughts into the reasoning text one paragraph each.
        for step in steps:
            state.steps.append(step)
            thought = step.get("thought") if type(step) is dict else None
            if thought and type(thought) is str:
                if state.reasoning:
                    state.reasoning.append("\n\n")
                state.reasoning.append(thought)
                self.has_reasoning = True
                self.tokens += 1

    def _all_finished(self) -> bool:
        return all(state.raw_finish_reason is not None for state in self._choices.values())

    def result(self) -> Completion:
        choices = build_choices(self._choices)
        usage = openai_usage(self._usage) if self._usage is not None else None
        return Completion(
            id=self._id,
            model=self._model,
            complete=stream_complete(choices, saw_done=self._saw_done, error=self._error),
            error=self._error,
            choices=choices,
            usage=usage,
            extras=dict(self._extras.values),
        )


class OpenAIChatDialect(DialectBase[OpenAIChatAccumulator]):
    """OpenAI Chat Completions: POST ``{base_url}/chat/completions`` with ``stream: true``."""

    name: str = "openai-chat"
    accumulator = OpenAIChatAccumulator

    def build_request(self, provider: ProviderSpec, case: CaseSpec, *, api_key: str | None) -> HttpRequest:
        body: dict[str, Any] = {
            "model": provider.model,
            "messages": openai_messages(case),
            "stream_options": {"include_usage": True},
        }
        if case.tools:
            body["tools"] = [dict(tool) for tool in case.tools]
        # The common params (max_tokens, temperature, top_p, stop) already have OpenAI's names.
        # Deep merge, the same one the --reuse hash uses: a provider that adds
        # stream_options.include_obfuscation must not drop include_usage.
        body = merge_params(body, request_params(provider, case))
        body["stream"] = True
        return HttpRequest(
            method="POST",
            url=f"{provider.base_url.rstrip('/')}/chat/completions",
            headers=self.request_headers(provider, api_key),
            body=orjson.dumps(body),
        )
