"""A case's canonical conversation (OpenAI chat's shape) as Responses API ``input`` items and tools.

``system`` / ``developer`` / ``user`` / ``assistant`` messages become ``message`` items (user parts:
``input_text`` / ``input_image``; assistant parts: ``output_text`` / ``refusal``), an assistant's
``tool_calls`` become ``function_call`` items after its message, a ``tool`` message a
``function_call_output``. What has no Responses form raises ``Untranslatable``: the job loader reports
it (``OpenAIResponsesDialect.check_messages``), so such a case never reaches the provider.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runner import jsontext
from runner.wire.dialects.conversation import IMAGE_TYPES, image_part

if TYPE_CHECKING:
    from runner.spec import CaseSpec


class Untranslatable(ValueError):
    """Part of a case the Responses API cannot express: ``key`` (``messages[2].content[0]``) and ``what``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.key, _, self.what = message.partition(": ")


def responses_input(case: CaseSpec) -> list[dict[str, Any]]:
    """The case's messages as ``input`` items (its ``system`` goes to ``instructions``, not here)."""
    items: list[dict[str, Any]] = []
    # Each function_call's call_id -> where it is, and the ones a function_call_output answered: the
    # API refuses an output without its call ("No tool call found for function call output with
    # call_id ...") and a call without its output ("No tool output found for function call ...").
    calls: dict[str, str] = {}
    answered: set[str] = set()
    for number, message in enumerate(case.messages):
        where = f"messages[{number}]"
        role = message.get("role")
        if role in ("system", "developer", "user"):
            items.append({"type": "message", "role": role, "content": _input_content(message, where)})
        elif role == "assistant":
            translated = _assistant(message, where)
            made = [item["call_id"] for item in translated if item["type"] == "function_call"]
            for k, call_id in enumerate(made):
                calls.setdefault(call_id, f"{where}.tool_calls[{k}]")
            items.extend(translated)
        elif role == "tool":
            output = _tool_output(message, where)
            if output["call_id"] not in calls:
                what = f"a tool result for no tool call {output['call_id']!r} before it"
                raise Untranslatable(f"{where}.tool_call_id: {what}")
            answered.add(output["call_id"])
            items.append(output)
        else:
            raise Untranslatable(f"{where}: role {role!r} has no Responses form")
    for call_id, place in calls.items():
        if call_id not in answered:
            raise Untranslatable(
                f"{place}: tool call {call_id!r} has no tool result (a tool message answering it)"
            )
    return items


def _input_content(message: dict[str, Any], where: str) -> str | list[dict[str, Any]]:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise Untranslatable(f"{where}: content must be a string or a list of parts")
    parts = []
    for number, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            parts.append({"type": "input_text", "text": part["text"]})
        elif kind == "image_url" and message.get("role") == "user":
            parts.append(_image(part.get("image_url"), f"{where}.content[{number}]"))
        else:
            raise Untranslatable(f"{where}.content[{number}]: a {kind!r} part has no Responses form here")
    return parts


def _image(value: Any, where: str) -> dict[str, Any]:
    # image_url is {"url": ..., "detail": ...} in chat (a bare string from some clients); the URL may
    # be a data: URL, which input_image takes as is.
    url = value.get("url") if isinstance(value, dict) else value
    if not isinstance(url, str) or not url:
        raise Untranslatable(f"{where}: an image_url part needs a url")
    # What input_image reads: an http(s) URL, or a base64 data: URL of PNG, JPEG, WEBP or GIF.
    part = image_part(url)
    if url.startswith("data:"):
        if part.data is None:
            raise Untranslatable(f"{where}: a data: URL image that is not base64")
        if part.media_type not in IMAGE_TYPES:
            raise Untranslatable(
                f"{where}: an image of type {part.media_type!r} (use {', '.join(sorted(IMAGE_TYPES))})"
            )
    elif not url.startswith(("https://", "http://")):
        raise Untranslatable(
            f"{where}: an image URL of scheme {url.split(':', 1)[0]!r} (use https: or data:)"
        )
    detail = value.get("detail") if isinstance(value, dict) else None
    return {"type": "input_image", "image_url": url, "detail": detail if isinstance(detail, str) else "auto"}


def _assistant(message: dict[str, Any], where: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    content = message.get("content")
    parts: list[dict[str, Any]] = []
    if isinstance(content, str) and content:
        parts.append({"type": "output_text", "text": content, "annotations": []})
    elif isinstance(content, list):
        for number, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text" and isinstance(part.get("text"), str):
                parts.append({"type": "output_text", "text": part["text"], "annotations": []})
            elif kind == "refusal" and isinstance(part.get("refusal"), str):
                parts.append({"type": "refusal", "refusal": part["refusal"]})
            else:
                raise Untranslatable(f"{where}.content[{number}]: a {kind!r} part has no Responses form here")
    elif content is not None:
        raise Untranslatable(f"{where}: content must be a string, a list of parts or null")
    if isinstance(message.get("refusal"), str):
        parts.append({"type": "refusal", "refusal": message["refusal"]})
    if parts:
        items.append({"type": "message", "role": "assistant", "content": parts})
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise Untranslatable(f"{where}.tool_calls: must be a list")
    for number, call in enumerate(calls):
        items.append(_function_call(call, f"{where}.tool_calls[{number}]"))
    if not items:
        raise Untranslatable(f"{where}: an assistant message needs content or tool_calls")
    return items


def _function_call(call: Any, where: str) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise Untranslatable(f"{where}: a tool call needs function.name")
    if not isinstance(call.get("id"), str) or not call["id"]:
        raise Untranslatable(f"{where}: a tool call needs an id (function_call_output items refer to it)")
    arguments = function.get("arguments", "")
    if not isinstance(arguments, str):
        arguments = jsontext.dumps_text(arguments)
    return {"type": "function_call", "call_id": call["id"], "name": function["name"], "arguments": arguments}


def _tool_output(message: dict[str, Any], where: str) -> dict[str, Any]:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise Untranslatable(f"{where}: a tool message needs the tool_call_id it answers")
    content = message.get("content")
    if isinstance(content, list):
        # Chat's tool content parts are text parts; the output is their text.
        texts = [
            part.get("text") for part in content if isinstance(part, dict) and part.get("type") == "text"
        ]
        if len(texts) != len(content) or not all(isinstance(text, str) for text in texts):
            raise Untranslatable(f"{where}: a tool message's parts must be text parts")
        content = "".join(texts)  # type: ignore[arg-type]
    if not isinstance(content, str):
        raise Untranslatable(f"{where}: a tool message needs its output as content")
    return {"type": "function_call_output", "call_id": call_id, "output": content}


def responses_tools(tools: tuple[dict[str, Any], ...]) -> list[dict[str, Any]]:
    """OpenAI chat function tools -> Responses function tools (flat: no ``function`` wrapper).

    ``strict`` is sent as chat meant it (default false): the Responses API defaults it to true,
    which would reject schemas chat accepts.
    """
    translated = []
    for tool in tools:
        function = tool.get("function", tool)
        entry: dict[str, Any] = {
            "type": "function",
            "name": function["name"],
            "parameters": function.get("parameters") or {"type": "object", "properties": {}},
            "strict": bool(function.get("strict", False)),
        }
        if function.get("description"):
            entry["description"] = function["description"]
        translated.append(entry)
    return translated


def responses_tool_choice(choice: Any) -> Any:
    """Chat's ``tool_choice`` in the Responses shape: a named function is flat, ``{"type": "function",
    "name": ...}``, as its tools are (chat's ``{"function": {"name": ...}}`` is a 400 there); the
    strings are the same, and any other value is sent as written."""
    function = choice.get("function") if isinstance(choice, dict) else None
    if isinstance(function, dict) and choice.get("type") == "function" and "name" not in choice:
        return {"type": "function", "name": function.get("name")}
    return choice


def responses_format(response_format: Any) -> dict[str, Any] | None:
    """Chat's ``response_format`` as the Responses API's ``text.format`` (it refuses
    ``response_format``): a ``json_schema`` one is flat, its ``json_schema`` object's keys beside
    the type. None: not one of chat's shapes (sent as written, for the API to name)."""
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind in ("text", "json_object"):
        return {"type": kind}
    schema = response_format.get("json_schema") if kind == "json_schema" else None
    if isinstance(schema, dict):
        return {"type": "json_schema", **schema}
    return None
