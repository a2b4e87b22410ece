"""The ``runware`` dialect: Runware's task API with ``deliveryMethod: "stream"``.

The request is a JSON array of one ``textInference`` task; chunks carry ``delta.text``,
``delta.reasoningContent``, ``resultIndex``, ``finishReason``, camelCase ``usage``, a top-level
``cost`` and, on failure, an ``errors`` array.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, Final

import orjson

from runner.model import Completion, Usage
from runner.spec import request_params
from runner.wire.dialects.base import DialectBase, HttpRequest, max_tokens_param
from runner.wire.dialects.common import (
    AccumulatorBase,
    ChoiceBuilder,
    build_choices,
    error_from_payload,
    float_or_none,
    int_or_none,
    protocol_error,
    stream_complete,
)
from runner.wire.dialects.conversation import text_of

if TYPE_CHECKING:
    from collections.abc import Mapping

    from runner.spec import CaseSpec, ProviderSpec
    from runner.wire.sse import ServerSentEvent

# The roles a textInference task's messages take (the seed documents no tool turns).
_ROLES: Final = frozenset({"system", "user", "assistant"})
# Common params -> Runware's ``settings`` names.
_SETTINGS: Final = {
    "max_tokens": "maxTokens",
    "max_completion_tokens": "maxTokens",
    "max_output_tokens": "maxTokens",
    "temperature": "temperature",
    "top_p": "topP",
    "stop": "stopSequences",
}
# Common params -> the task's own names (chat's n is the seed's numberResults).
_TASK: Final = {"n": "numberResults"}
# A fixed namespace so the same request always gets the same taskUUID (replays, dedup in reports).
_TASK_NAMESPACE: Final = uuid.UUID("6f1c3b52-5a7e-4c8e-9a47-2f0d9e1b7c31")


def runware_usage(raw: dict[str, Any] | None, cost: Any) -> Usage:
    """Normalize Runware's camelCase usage; ``cost`` is the chunk's top-level cost in USD."""
    raw = raw or {}
    prompt_details = raw.get("promptTokensDetails")
    completion_details = raw.get("completionTokensDetails")
    cached = raw.get("cachedTokens")
    if cached is None and isinstance(prompt_details, dict):
        cached = prompt_details.get("cachedTokens")
    reasoning = raw.get("reasoningTokens")
    if reasoning is None and isinstance(completion_details, dict):
        reasoning = completion_details.get("reasoningTokens")
    return Usage(
        input_tokens=int_or_none(raw.get("promptTokens")),
        output_tokens=int_or_none(raw.get("completionTokens")),
        total_tokens=int_or_none(raw.get("totalTokens")),
        reasoning_tokens=int_or_none(reasoning),
        cached_input_tokens=int_or_none(cached),
        cache_write_tokens=int_or_none(raw.get("cacheWriteTokens")),
        cost=float_or_none(cost if cost is not None else raw.get("cost")),
        raw=raw or None,
    )


class RunwareAccumulator(AccumulatorBase):
    """Rebuilds one Runware stream; results are keyed by ``resultIndex``.

    ``is_done`` at ``[DONE]`` or a protocol error (after an ``errors`` chunk, reading goes on to
    ``[DONE]``); ``complete`` after ``[DONE]`` or when every result has a finish reason other than
    ``error``.
    """

    __slots__ = ("_cost", "_extras", "_results", "_saw_done")

    def __init__(self) -> None:
        super().__init__()
        self._results: dict[int, ChoiceBuilder] = {}
        self._cost: Any = None
        self._extras: dict[str, Any] = {}
        self._saw_done = False

    def feed(self, event: ServerSentEvent) -> None:
        if self._done:
            return
        data = event.data
        if data[:6] == "[DONE]":
            self._saw_done = self._done = True
            return
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            if self._keepalive(data):
                return
            self._fail(protocol_error(f"chunk is not JSON: {data[:200]!r}"))
            return
        if type(chunk) is not dict:
            self._fail(protocol_error(f"chunk is not a JSON object: {data[:200]!r}"))
            return
        errors = chunk.get("errors")
        if errors or event.event == "error" or chunk.get("error"):
            if isinstance(errors, list) and len(errors) > 1:
                self._extras["errors"] = errors
            # Reading goes on to [DONE], the stream's terminal signal (a complete, failed stream).
            self._provider_error(error_from_payload(chunk))
            return
        if self._id is None:
            self._id = chunk.get("taskUUID") or None
        if self._model is None:
            self._model = chunk.get("model") or None
        if chunk.get("usage") and type(chunk["usage"]) is dict:
            self._usage = chunk["usage"]  # last non-null wins, as for OpenAI
        if chunk.get("cost") is not None:
            self._cost = chunk["cost"]
        index = chunk.get("resultIndex")
        if type(index) is not int:
            index = 0
        state = self._results.get(index)
        if state is None:
            state = self._results[index] = ChoiceBuilder(index)
        delta = chunk.get("delta")
        if delta and type(delta) is dict:
            text = delta.get("text")
            if text:
                state.text.append(text)
                self.has_answer = True
                self.tokens += 1
            reasoning = delta.get("reasoningContent")
            if reasoning:
                state.reasoning.append(reasoning)
                self.has_reasoning = True
                self.tokens += 1
            tool_calls = delta.get("toolCalls") or delta.get("tool_calls")
            if tool_calls and type(tool_calls) is list:
                for fragment in tool_calls:
                    if state.tools.add(fragment):
                        self.has_answer = True
                        self.tokens += 1
        reason = chunk.get("finishReason")
        if reason:
            state.raw_finish_reason = str(reason)

    def result(self) -> Completion:
        choices = build_choices(self._results)
        has_usage = self._usage is not None or self._cost is not None
        return Completion(
            id=self._id,
            model=self._model,
            complete=stream_complete(choices, saw_done=self._saw_done, error=self._error),
            error=self._error,
            choices=choices,
            usage=runware_usage(self._usage, self._cost) if has_usage else None,
            extras=dict(self._extras),
        )


def runware_messages(case: CaseSpec) -> list[dict[str, Any]]:
    """The case's messages as Runware documents them: a role and a string content each.

    Text parts are joined into one string; check_messages refused anything else at load.
    """
    messages: list[dict[str, Any]] = []
    if case.system is not None:
        messages.append({"role": "system", "content": case.system})
    for message in case.messages:
        messages.append({"role": message.get("role"), "content": text_of(message.get("content")) or ""})
    return messages


class RunwareDialect(DialectBase[RunwareAccumulator]):
    """Runware: POST ``{base_url}`` with a JSON array holding one ``textInference`` task (text only)."""

    name: str = "runware"
    accumulator = RunwareAccumulator

    def build_request(self, provider: ProviderSpec, case: CaseSpec, *, api_key: str | None) -> HttpRequest:
        task: dict[str, Any] = {
            "taskType": "textInference",
            "model": provider.model,
            "deliveryMethod": "stream",
            "messages": runware_messages(case),
            "includeUsage": True,
            "includeCost": True,
        }
        settings: dict[str, Any] = {}
        # The case's params merged deeply over the provider's (spec.request_params: the same merge
        # the --reuse hash uses), then translated key by key.
        for key, value in request_params(provider, case).items():
            if key in _SETTINGS:
                settings[_SETTINGS[key]] = [value] if key == "stop" and isinstance(value, str) else value
            elif key == "settings" and isinstance(value, dict):
                settings.update(value)
            else:
                task[_TASK.get(key, key)] = value
        if settings:
            task["settings"] = settings
        task["deliveryMethod"] = "stream"
        # Deterministic: the same provider, case and body give the same taskUUID.
        canonical = orjson.dumps([provider.name, case.id, task], option=orjson.OPT_SORT_KEYS)
        task["taskUUID"] = str(uuid.uuid5(_TASK_NAMESPACE, canonical.decode()))
        return HttpRequest(
            method="POST",
            url=provider.base_url,
            headers=self.request_headers(provider, api_key),
            body=orjson.dumps([task]),
        )

    def check_messages(self, case: CaseSpec) -> None:
        """Runware's task API documents text messages only: no tools, tool turns or images."""
        if case.tools:
            raise self.inexpressible(case, "tools", "tools", "run this case on a dialect with tools")
        for index, message in enumerate(case.messages):
            key, role = f"messages[{index}]", message.get("role")
            if role not in _ROLES:
                fix = "use system, user or assistant messages"
                raise self.inexpressible(case, key, f"a {role!r} message (a text-only task)", fix)
            if message.get("tool_calls"):
                fix = "drop the tool calls or run this case on a dialect with tools"
                raise self.inexpressible(case, f"{key}.tool_calls", "tool calls", fix)
            if text_of(message.get("content")) is None:
                fix = "send text only to runware (text parts or a string)"
                raise self.inexpressible(case, f"{key}.content", "images or other non-text content", fix)

    def max_output_tokens(self, params: Mapping[str, Any]) -> int | None:
        # A top-level cap is translated into settings.maxTokens, and a `settings` table is sent as
        # Runware's own generation settings (build_request): either may carry the cap.
        settings = params.get("settings")
        return max_tokens_param(params, settings) if isinstance(settings, dict) else max_tokens_param(params)
