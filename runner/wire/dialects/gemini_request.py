"""The ``gemini`` request: a case's canonical messages (OpenAI chat's shape) as a ``GenerateContentRequest``.

``contents`` take ``user`` / ``model`` roles; assistant tool calls become ``functionCall`` parts and
tool results ``functionResponse`` parts (named by the call they answer); images become ``inlineData``
(``data:`` URLs) or ``fileData`` (http URLs); the system prompt is ``systemInstruction``. What Gemini
cannot express raises ``ConfigError``, so the job fails at load instead of at the provider.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Final

import orjson

from runner.errors import ConfigError
from runner.spec import request_params

if TYPE_CHECKING:
    from runner.spec import CaseSpec, ProviderSpec

# What google-genai 3.x sends to (its default); "v1beta" serves the preview features.
DEFAULT_API_VERSION: Final = "v1"
DEFAULT_BASE_URL: Final = "https://generativelanguage.googleapis.com"
# Common params -> generationConfig names; the rest of a provider's params go in the body as written.
_GENERATION: Final = {
    "max_tokens": "maxOutputTokens",
    "max_completion_tokens": "maxOutputTokens",
    "max_output_tokens": "maxOutputTokens",
    "temperature": "temperature",
    "top_p": "topP",
    "top_k": "topK",
    "n": "candidateCount",
    "stop": "stopSequences",
    "seed": "seed",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
}
# Chat's reasoning_effort -> thinkingConfig.thinkingBudget, as Google's own OpenAI-compatible endpoint
# maps it (https://ai.google.dev/gemini-api/docs/openai: 1K, 8K and 24K tokens; "none" turns thinking
# off). A budget, not a thinkingLevel: 2.5 models refuse levels, Gemini 3 still takes budgets.
THINKING_BUDGETS: Final = {"none": 0, "low": 1024, "medium": 8192, "high": 24576}
# Params sent as the body's own fields (either spelling: proto3 JSON parsers accept both), beside
# the ones translated here; anything else would be an unknown field, a 400 (param_problem).
_BODY_FIELDS: Final = frozenset(
    {"safetySettings", "safety_settings", "toolConfig", "tool_config", "cachedContent", "cached_content"}
    | {"labels", "generationConfig", "tool_choice", "response_format", "reasoning_effort", "stream"}
)
# What a functionCall part Gemini did not make carries as its thoughtSignature: Gemini 3 refuses a call
# of the current turn without one ("Function call is missing a thought_signature"), and a case's calls
# were written, not returned by the model. Google documents this value for such histories
# (https://ai.google.dev/gemini-api/docs/thought-signatures). Sent to Gemini 3 and later (and to a
# model name runner cannot date), not to the 1.x and 2.x models that never asked for it.
SKIP_SIGNATURE: Final = "skip_thought_signature_validator"
_UNSIGNED_MODELS: Final = re.compile(r"(?:^|/)gemini-[12](?:[.-]|$)")
_THINKING_AMOUNTS: Final = frozenset({"thinkingBudget", "thinking_budget", "thinkingLevel", "thinking_level"})
# Chat's tool_choice strings -> FunctionCallingConfig.mode.
_CALLING_MODES: Final = {"auto": "AUTO", "required": "ANY", "none": "NONE"}
_FIX: Final = (
    "use OpenAI chat's shape (system, user, assistant with tool_calls, tool with tool_call_id; text and"
    " image_url parts), or list other providers in the case's providers"
)


def stream_url(base_url: str, api_version: str, model: str) -> str:
    """The streaming endpoint; a model named ``models/x`` (as Google lists them) is sent as ``x``."""
    model = model.removeprefix("models/")
    return f"{base_url.rstrip('/')}/{api_version}/models/{model}:streamGenerateContent?alt=sse"


def _refuse(case: CaseSpec, what: str, key: str | None = None) -> ConfigError:
    # ``key`` is relative to the case (``messages[2]``, ``tools[0]``), as the loader expects it.
    return ConfigError(f"case {case.id!r}: the gemini dialect cannot express {what}", key=key, fix=_FIX)


def gemini_body(provider: ProviderSpec | None, case: CaseSpec) -> dict[str, Any]:
    """The request body for ``case`` (``provider`` None: only the translation, as the load check does)."""
    contents, system = _contents(case)
    if provider is not None and not _UNSIGNED_MODELS.search(provider.model):
        _sign_calls(contents)
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": [{"text": text} for text in system]}
    if case.tools:
        declarations = [_declaration(case, tool, f"tools[{i}]") for i, tool in enumerate(case.tools)]
        body["tools"] = [{"functionDeclarations": declarations}]
    if provider is None:
        return body
    generation: dict[str, Any] = {}
    budget: int | None = None
    for key, value in request_params(provider, case).items():
        if key in _GENERATION:
            generation[_GENERATION[key]] = [value] if key == "stop" and isinstance(value, str) else value
        elif key == "generationConfig" and isinstance(value, dict):
            generation.update(value)
        elif key == "tool_choice" and (calling := _function_calling(value)) is not None:
            body["toolConfig"] = {"functionCallingConfig": calling}
        elif key == "response_format" and (response := _response_config(value)) is not None:
            generation.update(response)
        elif key == "reasoning_effort" and isinstance(value, str) and value in THINKING_BUDGETS:
            budget = THINKING_BUDGETS[value]
        elif key != "stream":  # streaming is the endpoint's, not a field
            body[key] = value
    if budget is not None:
        # Beside a thinkingConfig written out (its includeThoughts), unless it sets its own amount.
        thinking = generation.get("thinkingConfig")
        thinking = thinking if isinstance(thinking, dict) else {}
        if not set(thinking) & _THINKING_AMOUNTS:
            generation["thinkingConfig"] = {"thinkingBudget": budget, **thinking}
    if generation:
        body["generationConfig"] = generation
    return body


def _sign_calls(contents: list[dict[str, Any]]) -> None:
    """Each model turn's first functionCall part carries SKIP_SIGNATURE, as Gemini signs a step's calls
    (a turn holds one assistant message's calls: _contents refuses calls left unanswered)."""
    for content in contents:
        if content["role"] == "model":
            for part in content["parts"]:
                if "functionCall" in part:
                    part["thoughtSignature"] = SKIP_SIGNATURE
                    break


def param_problem(key: str, value: Any) -> str | None:
    """The fix for a request param gemini_body cannot send (Google answers 400 to an unknown field)."""
    if key == "reasoning_effort" and not (isinstance(value, str) and value in THINKING_BUDGETS):
        return f"give reasoning_effort one of {', '.join(map(repr, THINKING_BUDGETS))}"
    # Chat's shapes are translated; any other would go out as written, a field Google does not have.
    if key == "tool_choice" and _function_calling(value) is None:
        return (
            "give tool_choice as chat does ('auto', 'required', 'none' or"
            ' { type = "function", function = { name = "..." } }), or write toolConfig instead'
        )
    if key == "response_format" and _response_config(value) is None:
        return (
            "give response_format as chat does (text, json_object, or json_schema with its schema),"
            " or write generationConfig's responseMimeType and responseJsonSchema instead"
        )
    if key in _GENERATION or key in _BODY_FIELDS:
        return None
    return (
        f"leave {key!r} out, or write the field Google names under generationConfig"
        " (https://ai.google.dev/api/generate-content#generationconfig)"
    )


def _function_calling(choice: Any) -> dict[str, Any] | None:
    """Chat's ``tool_choice`` as a ``FunctionCallingConfig`` (None: not one of chat's shapes, sent as
    written for Google to name): ``required`` is ``ANY``, a named function ``ANY`` of that name only."""
    if isinstance(choice, str) and choice in _CALLING_MODES:
        return {"mode": _CALLING_MODES[choice]}
    function = choice.get("function") if isinstance(choice, dict) else None
    if isinstance(function, dict) and isinstance(function.get("name"), str):
        return {"mode": "ANY", "allowedFunctionNames": [function["name"]]}
    return None


def _response_config(response_format: Any) -> dict[str, Any] | None:
    """Chat's ``response_format`` as generationConfig fields: JSON is ``responseMimeType``
    application/json, a schema ``responseJsonSchema`` (JSON Schema, as chat's). None: not one of
    chat's shapes (sent as written, for Google to name)."""
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "text":
        return {"responseMimeType": "text/plain"}
    if kind == "json_object":
        return {"responseMimeType": "application/json"}
    schema = response_format.get("json_schema") if kind == "json_schema" else None
    if isinstance(schema, dict) and isinstance(schema.get("schema"), dict):
        return {"responseMimeType": "application/json", "responseJsonSchema": schema["schema"]}
    return None


def _declaration(case: CaseSpec, tool: dict[str, Any], key: str) -> dict[str, Any]:
    function = tool.get("function", tool)
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise _refuse(case, "a tool that is not an OpenAI function tool", key)
    entry: dict[str, Any] = {"name": function["name"]}
    if function.get("description"):
        entry["description"] = function["description"]
    if function.get("parameters"):
        entry["parameters"] = function["parameters"]  # the OpenAPI subset both API versions take
    return entry


def _contents(case: CaseSpec) -> tuple[list[dict[str, Any]], list[str]]:
    system = [case.system] if case.system is not None else []
    contents: list[dict[str, Any]] = []
    # The last assistant turn's calls not answered yet: tool_call_id -> function name (a
    # functionResponse is named, not id'd), and where that turn is. Google answers 400 unless the
    # turn after a function call turn holds one functionResponse per functionCall ("Please ensure
    # that the number of function response parts is equal to the number of function call parts of
    # the function call turn"), and a function response turn follows a function call turn.
    names: dict[str, str] = {}
    called_at = 0
    for index, message in enumerate(case.messages):
        role = message.get("role")
        if names and role in ("user", "assistant"):
            pending = ", ".join(sorted(names))
            raise _refuse(case, f"tool calls without results: {pending}", f"messages[{called_at}].tool_calls")
        try:
            gemini_role, parts = _turn(case, message, names)
            if names and role == "assistant":
                called_at = index
                # "Please ensure that function call turn comes immediately after a user turn or
                # after a function response turn": not the first turn of the conversation.
                if not contents or (len(contents) == 1 and contents[0]["role"] == "model"):
                    raise _refuse(case, "a tool-calling assistant turn with no user turn before it")
        except ConfigError as exc:
            exc.key = exc.key or f"messages[{index}]"  # relative to the case: the loader places it
            raise
        if gemini_role == "system":
            system.extend(part["text"] for part in parts)
            continue
        if contents and contents[-1]["role"] == gemini_role:
            contents[-1]["parts"].extend(parts)  # a turn's tool results go back together, in one turn
        else:
            contents.append({"role": gemini_role, "parts": parts})
    if not contents:
        raise _refuse(case, "a case without a user message", "messages")
    return contents, system


def _turn(case: CaseSpec, message: dict[str, Any], names: dict[str, str]) -> tuple[str, list[dict[str, Any]]]:
    """One canonical message as (Gemini role, parts); ``system`` for what goes to systemInstruction."""
    role = message.get("role")
    if role == "system":
        parts = _parts(case, message.get("content"))
        if any("text" not in part for part in parts):
            # systemInstruction is read as text: _contents keeps only the parts' text.
            raise _refuse(case, "non-text content in a system message")
        return "system", parts
    if role == "user":
        return "user", _parts(case, message.get("content"))
    if role == "assistant":
        return "model", _model_parts(case, message, names)
    if role == "tool":
        return "user", [_response_part(case, message, names)]
    raise _refuse(case, f"a message with role {role!r}")


def _parts(case: CaseSpec, content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}]
    if not isinstance(content, list) or not content:
        raise _refuse(case, "message content that is neither a string nor a list of parts")
    parts = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            parts.append({"text": part["text"]})
        elif kind == "image_url":
            parts.append(_image(case, part.get("image_url")))
        else:
            raise _refuse(case, f"a content part of type {kind!r}")
    return parts


def _image(case: CaseSpec, image: Any) -> dict[str, Any]:
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        raise _refuse(case, "an image_url part without a url")
    if url.startswith("data:"):
        header, sep, data = url[5:].partition(",")
        mime, _, encoding = header.partition(";")
        if not sep or encoding != "base64" or not mime:
            raise _refuse(case, "a data: URL that is not base64 with a media type")
        return {"inlineData": {"mimeType": mime, "data": data}}
    if url.startswith(("https://", "http://", "gs://")):
        return {"fileData": {"fileUri": url, "mimeType": _mime_of(url)}}
    raise _refuse(case, f"an image URL of scheme {url.partition(':')[0]!r}")


def _mime_of(url: str) -> str:
    suffix = url.rsplit("?", 1)[0].rsplit(".", 1)[-1].lower()
    return {"png": "image/png", "gif": "image/gif", "webp": "image/webp"}.get(suffix, "image/jpeg")


def _model_parts(case: CaseSpec, message: dict[str, Any], names: dict[str, str]) -> list[dict[str, Any]]:
    content = message.get("content")
    parts = [] if content in (None, "", []) else _parts(case, content)
    for call in message.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise _refuse(case, "an assistant tool call without a function name")
        try:
            args = orjson.loads(function.get("arguments") or "{}")
        except (orjson.JSONDecodeError, TypeError):
            args = None
        if not isinstance(args, dict):
            raise _refuse(case, f"tool call arguments that are not a JSON object ({function['name']})")
        if not isinstance(call.get("id"), str) or not call["id"]:
            raise _refuse(case, "a tool call without an id (its tool message answers it by id)")
        names[call["id"]] = function["name"]
        parts.append({"functionCall": {"name": function["name"], "args": args}})
    if not parts:
        raise _refuse(case, "an assistant message with neither content nor tool calls")
    return parts


def _response_part(case: CaseSpec, message: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    name = names.pop(message.get("tool_call_id") or "", None)
    if name is None:
        raise _refuse(
            case, "a tool message whose tool_call_id answers no tool call of the assistant turn before"
        )
    content = message.get("content")
    if isinstance(content, list):  # text parts: their text, joined
        if not all(
            isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
            for p in content
        ):
            # (a functionResponse holds JSON: an image in it would be dropped, not sent)
            raise _refuse(case, "non-text content in a tool message")
        content = "".join(p["text"] for p in content)
    try:
        value = orjson.loads(content) if isinstance(content, str) else None
    except orjson.JSONDecodeError:
        value = None
    # The response must be an object: a JSON object result is sent as is, anything else wrapped.
    response = value if isinstance(value, dict) else {"content": content}
    return {"functionResponse": {"name": name, "response": response}}
