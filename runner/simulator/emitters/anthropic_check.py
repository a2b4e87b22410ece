"""What the Messages API refuses with a 400, checked as strictly as Anthropic does.

A wrongly translated conversation must fail against the simulator as it would in production: a
``system`` or ``tool`` role in ``messages``, two turns of one role in a row, OpenAI's ``image_url`` parts,
a ``tool_result`` that answers no ``tool_use`` of the turn before, a ``tool_use`` left unanswered.
Written from Anthropic's API reference, independently of runner's own translation (an oracle).
"""

from __future__ import annotations

from typing import Any, Final

_BLOCKS: Final = {
    "user": frozenset({"text", "image", "document", "tool_result"}),
    "assistant": frozenset({"text", "tool_use", "thinking", "redacted_thinking"}),
}
_MEDIA_TYPES: Final = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
# The request body's fields (the API reference's, beta ones included: the same endpoint takes them
# with an anthropic-beta header). Any other is "Extra inputs are not permitted": chat's n, stop or
# response_format sent untranslated fail here as at Anthropic.
_FIELDS: Final = frozenset(
    {"model", "messages", "max_tokens", "system", "metadata", "stop_sequences", "stream", "temperature"}
    | {"top_k", "top_p", "tools", "tool_choice", "thinking", "service_tier", "container", "mcp_servers"}
    | {"context_management", "output_config", "output_format", "inference_geo", "speed", "cache_control"}
)
# field -> (the JSON types it takes, pydantic's words for it); a bool is no number here.
_TYPES: Final[dict[str, tuple[tuple[type, ...], str]]] = {
    "model": ((str,), "a valid string"),
    "max_tokens": ((int,), "a valid integer"),
    "temperature": ((int, float), "a valid number"),
    "top_p": ((int, float), "a valid number"),
    "top_k": ((int,), "a valid integer"),
    "stream": ((bool,), "a valid boolean"),
    "stop_sequences": ((list,), "a valid list"),
    "metadata": ((dict,), "a valid dictionary"),
    "thinking": ((dict,), "a valid dictionary"),
    "tool_choice": ((dict,), "a valid dictionary"),
}
_TOOL_CHOICES: Final = frozenset({"auto", "any", "tool", "none"})


def messages_problem(body: dict[str, Any]) -> str | None:
    """Why Anthropic would refuse this request body with 400 invalid_request_error, or None."""
    # model and max_tokens are left to Task's defaults: the simulator's own tests send bare bodies.
    problem = (
        _fields_problem(body)
        or _system_problem(body.get("system"))
        or _tools_problem(body.get("tools"))
        or _tool_choice_problem(body.get("tool_choice"))
    )
    if problem:
        return problem
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    pending: set[str] = set()  # tool_use ids the next user turn must answer
    for index, message in enumerate(messages):
        before = messages[index - 1] if index else None
        problem = _message_problem(message, before, pending, is_last=index == len(messages) - 1)
        if problem:
            return f"messages.{index}: {problem}"
    return None


def _message_problem(message: Any, before: Any, pending: set[str], *, is_last: bool) -> str | None:
    if not isinstance(message, dict):
        return "Input should be a valid dictionary"
    role = message.get("role")
    if role not in _BLOCKS:
        return f"Input should be 'user' or 'assistant' (got role {role!r})"
    if isinstance(before, dict) and before.get("role") == role:
        return "roles must alternate between 'user' and 'assistant'"
    content = message.get("content")
    prefill = role == "assistant" and is_last
    if prefill and content in ("", []):
        return None  # the optional final assistant message may be empty
    if isinstance(content, str):
        blocks: list[Any] = [{"type": "text", "text": content}]
    elif isinstance(content, list) and content:
        blocks = content
    else:
        return "all messages must have non-empty content except for the optional final assistant message"
    problem = _text_problem(blocks, prefill=prefill)
    if problem:
        return problem
    answered: set[str] = {
        str(b.get("tool_use_id")) for b in blocks if isinstance(b, dict) and b.get("type") == "tool_result"
    }
    if pending - answered and role == "user":
        return f"tool_use ids were found without tool_result blocks immediately after: {sorted(pending)}"
    if answered - pending:
        return f"unexpected tool_use_id found in tool_result blocks: {sorted(answered - pending)}"
    pending.clear()
    for number, block in enumerate(blocks):
        problem = _block_problem(block, role)
        if problem:
            return f"content.{number}: {problem}"
        if block.get("type") == "tool_use":
            pending.add(str(block["id"]))
    return None


def _text_problem(blocks: list[Any], *, prefill: bool) -> str | None:
    texts: list[str] = [
        b["text"]
        for b in blocks
        if isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)
    ]
    texts = [text for text in texts if text]
    if texts and len(texts) == len(blocks) and not any(text.strip() for text in texts):
        return "text content blocks must contain non-whitespace text"
    last = blocks[-1]
    if (
        prefill
        and isinstance(last, dict)
        and isinstance(last.get("text"), str)
        and last["text"] != last["text"].rstrip()
    ):
        return "final assistant content cannot end with trailing whitespace"
    return None


def _block_problem(block: Any, role: str) -> str | None:
    if not isinstance(block, dict):
        return "Input should be a valid dictionary"
    kind = block.get("type")
    if kind not in _BLOCKS[role]:
        return f"Input tag {kind!r} found using 'type' does not match any of the expected tags for {role}"
    if kind == "text" and (not isinstance(block.get("text"), str) or not block["text"]):
        return "text content blocks must be non-empty"
    if kind == "image":
        return _image_problem(block.get("source"))
    if kind == "tool_use":
        ok = isinstance(block.get("id"), str) and isinstance(block.get("name"), str)
        return None if ok and isinstance(block.get("input"), dict) else "tool_use needs id, name and input"
    if kind == "tool_result" and not isinstance(block.get("tool_use_id"), str):
        return "tool_use_id: Field required"
    return None


def _image_problem(source: Any) -> str | None:
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "base64":
        if source.get("media_type") not in _MEDIA_TYPES:
            return f"source.media_type: Input should be one of {sorted(_MEDIA_TYPES)}"
        return (
            None if isinstance(source.get("data"), str) and source["data"] else "source.data: Field required"
        )
    if kind == "url":
        return None if isinstance(source.get("url"), str) else "source.url: Field required"
    return "source: Input tag does not match 'base64', 'url' or 'file'"


def _system_problem(system: Any) -> str | None:
    if system is None or isinstance(system, str):
        return None
    if isinstance(system, list) and all(isinstance(b, dict) and b.get("type") == "text" for b in system):
        return None
    return "system: Input should be a valid string or a list of text blocks"


def _tools_problem(tools: Any) -> str | None:
    if tools is None:
        return None
    if not isinstance(tools, list):
        return "tools: Input should be a valid list"
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            return f"tools.{index}.name: Field required"
        schema = tool.get("input_schema")
        if "type" not in tool and (not isinstance(schema, dict) or schema.get("type") != "object"):
            return f"tools.{index}.input_schema: Input should be a JSON schema of type object"
    return None


def _fields_problem(body: dict[str, Any]) -> str | None:
    """An unknown field or a known one of the wrong type, in pydantic's words, as the API says it."""
    for key, value in body.items():
        if key not in _FIELDS:
            return f"{key}: Extra inputs are not permitted"
        expected = _TYPES.get(key)
        if expected is None:
            continue
        types, words = expected
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            return f"{key}: Input should be {words}"
    metadata = body.get("metadata")
    extra = sorted(set(metadata) - {"user_id"}) if isinstance(metadata, dict) else []
    if extra:
        return f"metadata.{extra[0]}: Extra inputs are not permitted"
    stops = body.get("stop_sequences")
    if isinstance(stops, list) and not all(isinstance(stop, str) for stop in stops):
        return "stop_sequences: Input should be a valid list of strings"
    return None


def _tool_choice_problem(choice: Any) -> str | None:
    if choice is None:
        return None
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind not in _TOOL_CHOICES:
        return f"tool_choice: Input tag {kind!r} found using 'type' does not match any of the expected tags"
    if kind == "tool" and not isinstance(choice.get("name"), str):
        return "tool_choice.tool.name: Field required"
    return None
