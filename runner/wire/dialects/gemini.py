"""The ``gemini`` dialect: Google's ``streamGenerateContent?alt=sse``.

Each SSE event is a whole ``GenerateContentResponse`` (PROTOCOLS.md 5.4): CRLF line endings, no
``[DONE]``, ``usageMetadata`` repeated and growing (the last one wins), function calls whole in one
part. The case's canonical messages are translated by ``runner.wire.dialects.gemini_request``.
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, Any, ClassVar, Final

import orjson

from runner import jsontext
from runner.model import Completion, CompletionError, Usage
from runner.wire.dialects.base import DialectBase, HttpRequest, max_tokens_param
from runner.wire.dialects.common import (
    AccumulatorBase,
    ChoiceBuilder,
    int_or_none,
    protocol_error,
)
from runner.wire.dialects.gemini_fast import decode_events, decode_response
from runner.wire.dialects.gemini_request import (
    DEFAULT_API_VERSION,
    gemini_body,
    param_problem,
    stream_url,
)
from runner.wire.dialects.openai_chat_fast import FAST_DECODE_MISSES
from runner.wire.sse import TypedRun

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from runner.model import Choice, FinishReason
    from runner.spec import CaseSpec, ProviderSpec
    from runner.wire.dialects.gemini_fast import Response
    from runner.wire.sse import RawEvent, ServerSentEvent

# Gemini's FinishReason values that mean a filter stopped the answer; STOP and MAX_TOKENS are mapped
# apart, and anything else (OTHER, MALFORMED_FUNCTION_CALL, LANGUAGE...) is an error, kept raw.
_SAFETY: Final = frozenset(
    {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"}
)


def gemini_finish(raw: str, *, called: bool) -> FinishReason:
    """The normalized finish reason of a candidate's ``finishReason`` (``called``: it called functions)."""
    if raw == "STOP":
        return "tool_calls" if called else "stop"
    if raw == "MAX_TOKENS":
        return "length"
    if raw in _SAFETY:
        return "content_filter"
    return "error"


def gemini_error(payload: Any) -> CompletionError:
    """Google's ``{"error": {code, message, status}}``: the type is the RPC ``status`` (what retry reads)."""
    inner = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(inner, dict):
        return CompletionError(type="error", message=jsontext.dumps_text(payload))
    code = int_or_none(inner.get("code"))
    status = inner.get("status")
    kind = status if isinstance(status, str) and status else (str(code) if code is not None else "error")
    # ErrorInfo's reason is Google's machine-readable cause (API_KEY_INVALID under a 400
    # INVALID_ARGUMENT): the code the retry layer reads, where Google sends one; else the HTTP code.
    reason = _error_reason(inner.get("details"))
    message = inner.get("message")
    text = message if isinstance(message, str) else jsontext.dumps_text(inner)
    window = _quota_window(inner.get("details"))
    if window is not None:
        # Google's message reads the same for a per-minute and a per-day quota; only the QuotaFailure
        # ids tell them apart. Said in words, so the retry layer reads a window as a rate limit.
        text = f"{text} (quota {window})"
    return CompletionError(
        type=kind,
        message=text,
        code=reason if reason is not None else code,
        retry_after=_retry_delay(inner.get("details")),
    )


def _error_reason(details: Any) -> str | None:
    """The reason of an ``ErrorInfo`` detail ("API_KEY_INVALID"); None without one."""
    for detail in details if isinstance(details, list) else ():
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.ErrorInfo"):
            reason = detail.get("reason")
            if isinstance(reason, str) and reason:
                return reason
    return None


# google.rpc.RetryInfo's retryDelay is a protobuf Duration in its JSON form: seconds with an "s"
# suffix, fractions allowed ("30s", "1.5s"). A negative or malformed one is no hint at all.
_DURATION: Final = re.compile(r"^(\d+(?:\.\d+)?)s$")


def _retry_delay(details: Any) -> float | None:
    """The wait a ``RetryInfo`` detail asks for, in seconds; None without one."""
    for detail in details if isinstance(details, list) else ():
        if not isinstance(detail, dict) or not str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            continue
        delay = detail.get("retryDelay")
        match = _DURATION.match(delay) if isinstance(delay, str) else None
        if match:
            return float(match.group(1))
    return None


# QuotaFailure ids name their window ("GenerateRequestsPerDayPerProjectPerModel-FreeTier"); shortest first.
_WINDOWS: Final = ("Second", "Minute", "Hour", "Day")


def _quota_window(details: Any) -> str | None:
    """The longest window ("per minute", "per day") of the quotas a QuotaFailure detail names.

    The longest decides: a 429 over a per-minute and a per-day quota at once (a model with no free-tier
    quota names every one of them, at limit 0) is not fixed by waiting a minute.
    """
    longest = -1
    for detail in details if isinstance(details, list) else ():
        violations = detail.get("violations") if isinstance(detail, dict) else None
        for violation in violations if isinstance(violations, list) else ():
            quota_id = violation.get("quotaId") if isinstance(violation, dict) else None
            for rank, window in enumerate(_WINDOWS):
                if isinstance(quota_id, str) and f"Per{window}" in quota_id:
                    longest = max(longest, rank)
    return f"per {_WINDOWS[longest].lower()}" if longest >= 0 else None


def gemini_usage(raw: dict[str, Any]) -> Usage:
    """Normalize ``usageMetadata``: output counts the thoughts too, as every other dialect's does, and
    input the tool-use prompt (what a built-in tool such as googleSearch fed back to the model).

    Google counts both apart (totalTokenCount = prompt + candidates + toolUsePrompt + thoughts) and
    bills both, at the output and the input price; cachedContentTokenCount is inside promptTokenCount.
    """
    candidates = int_or_none(raw.get("candidatesTokenCount"))
    thoughts = int_or_none(raw.get("thoughtsTokenCount"))
    # Google's JSON leaves zero counts out (proto3): an absent count is a zero, not an unknown.
    output = (candidates or 0) + (thoughts or 0)
    return Usage(
        input_tokens=_input_tokens(raw),
        output_tokens=output,
        total_tokens=int_or_none(raw.get("totalTokenCount")),
        reasoning_tokens=thoughts,
        cached_input_tokens=int_or_none(raw.get("cachedContentTokenCount")),
        raw=raw,
    )


def _input_tokens(raw: dict[str, Any]) -> int | None:
    """promptTokenCount plus toolUsePromptTokenCount; None when neither was sent."""
    prompt = int_or_none(raw.get("promptTokenCount"))
    tool_use = int_or_none(raw.get("toolUsePromptTokenCount"))
    if prompt is None and tool_use is None:
        return None
    return (prompt or 0) + (tool_use or 0)


class _Candidate(ChoiceBuilder):
    __slots__ = ("called",)

    def __init__(self, index: int) -> None:
        super().__init__(index)
        self.called = 0  # functionCall parts seen: numbers the generated ids

    def finish(self) -> Choice:
        choice = self.build()
        raw = self.raw_finish_reason
        if raw is None:
            return choice
        return dataclasses.replace(choice, finish_reason=gemini_finish(raw, called=self.called > 0))


class GeminiAccumulator(AccumulatorBase):
    """Rebuilds one Gemini stream; candidates are keyed by their ``index``.

    There is no terminal event: the stream ends when the connection closes. ``complete`` once every
    candidate seen has a ``finishReason`` (or the prompt was blocked) and no error came; an
    ``{"error": ...}`` event ends reading.
    """

    __slots__ = ("_blocked", "_candidates", "_extras", "_fast_misses", "_usage_payload")

    def __init__(self, *, fast_path: bool = True) -> None:
        super().__init__()
        self._candidates: dict[int, _Candidate] = {}
        self._extras: dict[str, Any] = {}
        self._blocked = False
        # The payload of the last event with usageMetadata when msgspec read it (gemini_fast
        # UsageMetadata): its dict is read from it at result(). None: _usage holds the last one.
        self._usage_payload: RawEvent | None = None  # (always bytes when set: msgspec read it)
        # Reads msgspec may miss in a row before this stream stops trying it (gemini_fast); 0
        # (fast_path=False) reads everything the orjson way, which defines the result.
        self._fast_misses = FAST_DECODE_MISSES if fast_path else 0

    def feed(self, event: ServerSentEvent) -> None:
        if not self._done:
            self._payload(event.data)

    def feed_many(self, events: Sequence[RawEvent]) -> None:
        # The hot loop: a message event comes as its raw bytes (SSEDecoder.feed_raw). The read's
        # events go to msgspec in one call (gemini_fast) while its budget lasts; if it refuses any
        # of them, each is read by orjson straight from its bytes, which defines the result.
        # Gemini names no events, so every event is read the same way.
        if self._fast_misses and not self._done:
            if len(events) == 1:
                # One event per read (a slow stream): decoded here, and the commonest one, a text
                # part of a candidate already seen, appended inline (no call of _responses: a
                # Python call per event is what keeps bench_parse above msgspec's own cost).
                event = events[0]
                try:
                    response = decode_response(event) if type(event) is bytes else None
                except (ValueError, RecursionError):  # (see gemini_fast.decode_events)
                    response = None
                if response is not None and self._model is not None and self._id is not None:
                    candidates = response.candidates
                    if candidates is not None and len(candidates) == 1:
                        candidate = candidates[0]
                        content = candidate.content
                        parts = content.parts if content is not None else None
                        if parts is not None and len(parts) == 1 and not candidate.finishReason:
                            part = parts[0]
                            text = part.text
                            state = self._candidates.get(candidate.index or 0)
                            if (
                                text
                                and state is not None
                                and part.thought is not True
                                and not part.thoughtSignature
                            ):
                                # What _responses does with it: the rest of its steps do nothing.
                                self._fast_misses = FAST_DECODE_MISSES
                                state.text.append(text)
                                self.tokens += 1
                                self.has_answer = True
                                if response.usageMetadata is not None:
                                    self._usage_payload = event
                                return
                decoded = [(response,)] if response is not None else None
            else:
                decoded = decode_events(events)
            if decoded is not None:
                self._fast_misses = FAST_DECODE_MISSES
                self._responses(decoded, events)
                return
            self._fast_misses -= 1  # (misses in a row: a read with a function call misses too)
        loads = orjson.loads
        for item in events:
            if self._done:
                return
            if isinstance(item, TypedRun):
                self.feed_many(item.events())  # (Gemini names no events: not its shape)
                continue
            data: bytes | str = item if isinstance(item, bytes) else item.data
            try:
                chunk = loads(data)
            except orjson.JSONDecodeError:
                # Invalid UTF-8 reads as feed() reads it: decoded with U+FFFD, then parsed.
                self._payload(data.decode("utf-8", "replace") if isinstance(data, bytes) else data)
                continue
            self._chunk(chunk, data)

    def _responses(self, decoded: list[tuple[Response]], events: Sequence[RawEvent]) -> None:
        """What _chunk does with each event, read from its Structs (only the keys they may hold)."""
        candidates = self._candidates
        tokens = answers = 0
        for (response,) in decoded:
            for candidate in response.candidates or ():
                index = candidate.index or 0
                state = candidates.get(index)
                if state is None:
                    state = candidates[index] = _Candidate(index)
                content = candidate.content
                for part in (content.parts or ()) if content is not None else ():
                    text = part.text
                    if text:
                        if part.thought is True:
                            state.reasoning.append(text)
                            self.has_reasoning = True
                        else:
                            state.text.append(text)
                            answers += 1
                        tokens += 1
                    if part.thoughtSignature:
                        self._extras.setdefault("signatures", []).append(part.thoughtSignature)
                if candidate.finishReason:
                    state.raw_finish_reason = candidate.finishReason
        # Cumulative: the last one wins (nearly always the read's last event has one).
        for index in range(len(decoded) - 1, -1, -1):
            if decoded[index][0].usageMetadata is not None:
                self._usage_payload = events[index]
                break
        self.tokens += tokens
        if answers:
            self.has_answer = True
        # The first id and model win: looked for only until found (once per stream).
        if self._id is None or self._model is None:
            for (response,) in decoded:
                if self._id is None and response.responseId is not None:
                    self._id = response.responseId
                if self._model is None and response.modelVersion is not None:
                    self._model = response.modelVersion

    def _payload(self, data: str) -> None:
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            if not self._keepalive(data):
                self._fail(protocol_error(f"event is not JSON: {data[:200]!r}"))
            return
        self._chunk(chunk, data)

    def _chunk(self, chunk: Any, data: bytes | str) -> None:
        if type(chunk) is list and len(chunk) == 1:
            chunk = chunk[0]  # an error body sent as a one-element array, SSE-framed by a proxy
        if type(chunk) is not dict:
            # (raw bytes from feed_many read as the text feed() has: the same message either way)
            text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
            self._fail(protocol_error(f"event is not a JSON object: {text[:200]!r}"))
            return
        if "error" in chunk:
            self._fail(gemini_error(chunk))  # Google closes the stream after it
            return
        candidates = chunk.get("candidates")
        if type(candidates) is list:
            for candidate in candidates:
                if type(candidate) is dict:
                    self._candidate(candidate)
        usage = chunk.get("usageMetadata")
        if type(usage) is dict:
            self._usage = usage  # cumulative on every chunk: the last one wins, never a sum
            self._usage_payload = None
        if self._id is None and isinstance(chunk.get("responseId"), str):
            self._id = chunk["responseId"]
        if self._model is None and isinstance(chunk.get("modelVersion"), str):
            self._model = chunk["modelVersion"]
        if "promptFeedback" in chunk:
            feedback = chunk["promptFeedback"]
            if type(feedback) is dict:
                self._extras["prompt_feedback"] = feedback
                self._blocked = self._blocked or bool(feedback.get("blockReason"))

    def _candidate(self, raw: dict[str, Any]) -> None:
        index = raw.get("index", 0)
        if type(index) is not int:
            index = 0  # a single candidate often comes without its index
        state = self._candidates.get(index)
        if state is None:
            state = self._candidates[index] = _Candidate(index)
        content = raw.get("content")
        parts = content.get("parts") if type(content) is dict else None
        if type(parts) is list:
            for part in parts:
                if type(part) is not dict:
                    continue
                if len(part) == 1:  # the common part, {"text": ...}, read here without _part
                    text = part.get("text")
                    if type(text) is str:
                        if text:
                            state.text.append(text)
                            self.has_answer = True
                            self.tokens += 1
                        continue
                self._part(state, part)
        reason = raw.get("finishReason")
        if isinstance(reason, str) and reason:
            state.raw_finish_reason = reason
        if len(raw) > 3:  # beyond content, index and finishReason: citations, ratings...
            for key in ("citationMetadata", "groundingMetadata"):
                if raw.get(key) is not None:
                    self._extras[key] = raw[key]

    def _part(self, state: _Candidate, part: dict[str, Any]) -> None:
        text = part.get("text")
        if isinstance(text, str) and text:
            if part.get("thought") is True:
                state.reasoning.append(text)
                self.has_reasoning = True
            else:
                state.text.append(text)
                self.has_answer = True
            self.tokens += 1
        call = part.get("functionCall")
        if type(call) is dict:
            call_id = call.get("id")
            if not isinstance(call_id, str) or not call_id:
                # Stable: the same stream always gives the same ids (replays, reuse, reports).
                call_id = f"call_{state.index}_{state.called}"
            state.called += 1
            args = call.get("args")
            name = call.get("name")
            state.tools.add_parts(
                None,
                call_id,
                True,
                name if isinstance(name, str) else "",
                jsontext.dumps_text(args if args is not None else {}),
            )
            self.has_answer = True
            self.tokens += 1
        signature = part.get("thoughtSignature")
        if isinstance(signature, str) and signature:
            self._extras.setdefault("signatures", []).append(signature)

    def result(self) -> Completion:
        choices = tuple(self._candidates[index].finish() for index in sorted(self._candidates))
        finished = bool(choices) and all(choice.raw_finish_reason is not None for choice in choices)
        usage = self._usage
        if isinstance(self._usage_payload, bytes):
            # msgspec checked it (a UsageMetadata): orjson reads the same payload, to the dict as sent.
            usage = orjson.loads(self._usage_payload)["usageMetadata"]
        return Completion(
            id=self._id,
            model=self._model,
            complete=self._error is None and (finished or self._blocked),
            error=self._error,
            choices=choices,
            usage=gemini_usage(usage) if usage is not None else None,
            extras=dict(self._extras),
        )


class GeminiDialect(DialectBase[GeminiAccumulator]):
    """Gemini: POST ``{base_url}/{api_version}/models/{model}:streamGenerateContent?alt=sse``."""

    name: str = "gemini"
    accumulator = GeminiAccumulator
    key_header: ClassVar[str] = "x-goog-api-key"
    key_prefix: ClassVar[str] = ""

    def build_request(self, provider: ProviderSpec, case: CaseSpec, *, api_key: str | None) -> HttpRequest:
        return HttpRequest(
            method="POST",
            url=stream_url(provider.base_url, provider.api_version or DEFAULT_API_VERSION, provider.model),
            headers=self.request_headers(provider, api_key),
            body=orjson.dumps(gemini_body(provider, case)),
        )

    def param_problem(self, key: str, value: Any) -> str | None:
        return param_problem(key, value)

    def check_messages(self, case: CaseSpec) -> None:
        # Translating the case raises the ConfigError naming what Gemini cannot express.
        gemini_body(None, case)

    def parse_error_body(self, status: int, body: bytes) -> CompletionError | None:
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        if isinstance(payload, list) and len(payload) == 1:
            payload = payload[0]  # the JSON-array form of the endpoint without alt=sse
        if not isinstance(payload, dict) or not isinstance(payload.get("error"), dict):
            return None
        return gemini_error(payload)

    def max_output_tokens(self, params: Mapping[str, Any]) -> int | None:
        config = params.get("generationConfig")
        scopes = (params, config) if isinstance(config, dict) else (params,)
        cap = max_tokens_param(*scopes)
        return cap if cap is not None else _max_output(config)


def _max_output(config: Any) -> int | None:
    if isinstance(config, dict):
        return int_or_none(config.get("maxOutputTokens"))
    return None
