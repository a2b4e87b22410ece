"""What the Responses API refuses in a request's parameters, checked as strictly as OpenAI does.

The API answers 400 ``invalid_request_error`` to a parameter it does not know, nested ones included
("Unknown parameter: 'stream_options.include_usage'."), and to a known one of the wrong type ("Invalid
type for 'max_output_tokens': expected an integer, but got a string instead."). A Chat Completions
param sent untranslated (``seed``, ``max_tokens``) fails here as it would in production. Written from
the API reference (``POST /v1/responses``), independently of runner's own translation (an oracle).
"""

from __future__ import annotations

from typing import Any, Final

# The request body's parameters (the API reference's "Request body").
_PARAMETERS: Final = frozenset(
    {"model", "input", "instructions", "max_output_tokens", "max_tool_calls", "metadata"}
    | {"parallel_tool_calls", "previous_response_id", "conversation", "prompt", "prompt_cache_key"}
    | {"prompt_cache_retention", "reasoning", "safety_identifier", "service_tier", "store", "stream"}
    | {"stream_options", "temperature", "text", "tool_choice", "tools", "top_logprobs", "top_p"}
    | {"truncation", "user", "include", "background", "context_management"}
)
# The keys of the parameters that are objects with fixed fields.
_NESTED: Final = {
    "stream_options": frozenset({"include_obfuscation"}),
    "reasoning": frozenset({"effort", "summary", "generate_summary"}),
    "text": frozenset({"format", "verbosity"}),
}
# parameter -> (the JSON types it takes, how the error names them); a bool is not a number here.
_TYPES: Final[dict[str, tuple[tuple[type, ...], str]]] = {
    "max_output_tokens": ((int,), "an integer"),
    "max_tool_calls": ((int,), "an integer"),
    "top_logprobs": ((int,), "an integer"),
    "temperature": ((int, float), "a number"),
    "top_p": ((int, float), "a number"),
    "instructions": ((str,), "a string"),
    "model": ((str,), "a string"),
    "previous_response_id": ((str,), "a string"),
    "user": ((str,), "a string"),
    "parallel_tool_calls": ((bool,), "a boolean"),
    "store": ((bool,), "a boolean"),
    "stream": ((bool,), "a boolean"),
    "background": ((bool,), "a boolean"),
    "metadata": ((dict,), "an object"),
    "include": ((list,), "an array"),
    "stream_options": ((dict,), "an object"),
    "reasoning": ((dict,), "an object"),
    "text": ((dict,), "an object"),
}


def parameters_problem(body: dict[str, Any]) -> str | None:
    """Why the Responses API would refuse this body's parameters with a 400, or None.

    ``input``, ``tools`` and ``tool_choice`` are the emitter's to check (their shapes, not their names).
    """
    for key, value in body.items():
        if key not in _PARAMETERS:
            return f"Unknown parameter: '{key}'."
        problem = _type_problem(key, value)
        if problem:
            return problem
        fields = _NESTED.get(key)
        if fields is not None and isinstance(value, dict):
            unknown = sorted(set(value) - fields)
            if unknown:
                return f"Unknown parameter: '{key}.{unknown[0]}'."
    return None


def _type_problem(key: str, value: Any) -> str | None:
    expected = _TYPES.get(key)
    if expected is None or value is None:  # null: the parameter's default, as the API reads it
        return None
    types, name = expected
    if isinstance(value, types) and (bool in types or not isinstance(value, bool)):
        return None
    return f"Invalid type for '{key}': expected {name}, but got {_json_type(value)} instead."


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
