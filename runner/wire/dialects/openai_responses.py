"""The ``openai-responses`` dialect: OpenAI's Responses API (``POST /responses``, typed stream events).

The request side is here; reading the stream is openai_responses_stream (its accumulator, re-exported),
and translating a case's conversation to ``input`` items is openai_responses_input.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Final

import orjson

from runner.errors import ConfigError
from runner.spec import merge_params, request_params
from runner.wire.dialects.base import DialectBase, HttpRequest
from runner.wire.dialects.openai_responses_input import (
    Untranslatable,
    responses_format,
    responses_input,
    responses_tool_choice,
    responses_tools,
)
from runner.wire.dialects.openai_responses_items import responses_usage
from runner.wire.dialects.openai_responses_stream import OpenAIResponsesAccumulator

if TYPE_CHECKING:
    from collections.abc import Mapping

    from runner.spec import CaseSpec, ProviderSpec

__all__ = ["OpenAIResponsesAccumulator", "OpenAIResponsesDialect", "responses_usage"]

# Chat Completions fields the Responses API does not have at all: "Unknown parameter: 'seed'."
_NO_SUCH_FIELD: Final = (
    *("seed", "presence_penalty", "frequency_penalty", "logit_bias", "modalities", "audio"),
    *("prediction", "web_search_options"),
)
# Common params -> the Responses API's names (every other param passes through as written).
_PARAM_NAMES: Final = {"max_tokens": "max_output_tokens", "max_completion_tokens": "max_output_tokens"}


class OpenAIResponsesDialect(DialectBase[OpenAIResponsesAccumulator]):
    """OpenAI Responses: POST ``{base_url}/responses`` with ``stream: true``."""

    name: str = "openai-responses"
    accumulator = OpenAIResponsesAccumulator

    refused_params: ClassVar[Mapping[str, str]] = MappingProxyType(
        {
            "stop": "leave 'stop' out: the Responses API has no stop sequences",
            "n": "leave 'n' out: the Responses API gives one answer per request",
            "logprobs": "write top_logprobs = N instead (and include the logprobs in the output)",
            "functions": "write the case's tools instead (functions is chat's old name for them)",
            "function_call": "write tool_choice instead (function_call is chat's old name for it)",
            **dict.fromkeys(_NO_SUCH_FIELD, "leave it out: the Responses API has no such field"),
        }
    )
    # The one key of the Responses API's stream_options; chat's include_usage is unknown there
    # (usage always comes with response.completed).
    _STREAM_OPTIONS: ClassVar[frozenset[str]] = frozenset({"include_obfuscation"})

    def param_problem(self, key: str, value: Any) -> str | None:
        if key == "stream_options" and not (isinstance(value, dict) and set(value) <= self._STREAM_OPTIONS):
            return (
                "leave stream_options out (the Responses API always sends usage with its last event),"
                " or give it include_obfuscation only"
            )
        if key == "response_format" and responses_format(value) is None:
            # Not one of chat's shapes: it would go out as response_format, unknown to the API.
            return (
                "give response_format as chat does (text, json_object, or json_schema with its"
                " json_schema table), or write text = { format = {...} } instead"
            )
        return super().param_problem(key, value)

    def check_messages(self, case: CaseSpec) -> None:
        """Refuse a case whose conversation or tools have no Responses form (responses_input).

        Raises:
            ConfigError: the case holds what the Responses API cannot express.
        """
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
        if "tool_choice" in params:
            params["tool_choice"] = responses_tool_choice(params["tool_choice"])
        if "reasoning_effort" in params:
            # reasoning.effort here (the API refuses the flat name), beside a reasoning object's keys.
            reasoning = params.get("reasoning")
            effort = params.pop("reasoning_effort")
            params["reasoning"] = {"effort": effort, **(reasoning if isinstance(reasoning, dict) else {})}
        text_format = responses_format(params.get("response_format"))
        if text_format is not None:
            # Beside the text config's other keys (verbosity); a text.format written out wins.
            del params["response_format"]
            text = params.get("text")
            params["text"] = {"format": text_format, **(text if isinstance(text, dict) else {})}
        body = merge_params(body, params)
        body["stream"] = True
        return HttpRequest(
            method="POST",
            url=f"{provider.base_url.rstrip('/')}/responses",
            headers=self.request_headers(provider, api_key),
            body=orjson.dumps(body),
        )
