"""The canonical conversation -> an Anthropic Messages request's ``system``, ``messages`` and ``tools``. Pure.

Anthropic takes the system prompt as a parameter, earlier tool calls as ``tool_use`` blocks in assistant
turns and their results as ``tool_result`` blocks in user turns, images as ``image`` blocks with a
base64 or URL source, and strictly alternating user / assistant turns: consecutive turns of one role
(a tool result followed by a user question) are merged into one turn of blocks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import orjson

from runner.wire.dialects.conversation import IMAGE_TYPES, Part, parts, text_of, tool_calls

if TYPE_CHECKING:
    from collections.abc import Callable

    from runner.errors import ConfigError
    from runner.spec import CaseSpec

    # (key relative to the case, what cannot be sent, fix) -> the dialect's load error
    Refuse = Callable[[str, str, str], ConfigError]

_ROLES: Final = frozenset({"system", "user", "assistant", "tool"})


def system_prompt(case: CaseSpec) -> str | None:
    """The case's system prompt and every system message's text, in order, joined by blank lines.

    Anthropic has no system turn: a system message in the middle of a conversation joins the prompt.
    """
    texts = [case.system] if case.system is not None else []
    texts += [text_of(m.get("content")) or "" for m in case.messages if m.get("role") == "system"]
    return "\n\n".join(texts) if texts else None


def anthropic_messages(case: CaseSpec) -> list[dict[str, Any]]:
    """The case's turns as Anthropic messages: roles alternate, tool results are user turns."""
    turns: list[tuple[str, list[dict[str, Any]] | str]] = []
    for message in case.messages:
        role = message.get("role")
        if role == "system":
            continue
        wire_role = "assistant" if role == "assistant" else "user"
        content = _content(message)
        if turns and turns[-1][0] == wire_role:
            turns[-1] = (wire_role, _blocks(turns[-1][1]) + _blocks(content))
        else:
            turns.append((wire_role, content))
    return [{"role": role, "content": content} for role, content in turns]


def _content(message: dict[str, Any]) -> list[dict[str, Any]] | str:
    """One canonical message's content in Anthropic's shape: a plain string stays a string."""
    role, content = message.get("role"), message.get("content")
    if role == "tool":
        result = text_of(content) or ""
        block = {"type": "tool_result", "tool_use_id": message.get("tool_call_id"), "content": result}
        return [block]
    if isinstance(content, str) and role != "assistant":
        return content
    # Anthropic refuses an empty text block ("text content blocks must be non-empty"): it adds nothing.
    blocks = [block for block in map(_block, parts(content)) if block.get("text") != ""]
    if role == "assistant":
        for call in tool_calls(message) or []:
            input_ = _arguments(call.arguments)
            blocks.append({"type": "tool_use", "id": call.id, "name": call.name, "input": input_})
        if isinstance(content, str) and len(blocks) == 1 and blocks[0]["type"] == "text":
            return content
    return blocks


def _arguments(text: str) -> Any:
    """The parsed arguments ({} for none); unparsable text is sent as is (never raises).

    check_case refuses it at load; a run stored before that check still builds a request, and the
    API's 400 names the problem rather than runner crashing on it.
    """
    if not text.strip():
        return {}
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def _block(part: Part) -> dict[str, Any]:
    if part.kind == "text":
        return {"type": "text", "text": part.text}
    if part.data is not None:
        source = {"type": "base64", "media_type": part.media_type, "data": part.data}
    else:
        source = {"type": "url", "url": part.url}
    return {"type": "image", "source": source}


def _blocks(content: list[dict[str, Any]] | str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else content


def anthropic_tool_choice(choice: Any) -> Any:
    """OpenAI's ``tool_choice`` -> Anthropic's (``required`` is ``any``; a named function a ``tool``)."""
    if choice in ("auto", "none"):
        return {"type": choice}
    if choice == "required":
        return {"type": "any"}
    function = choice.get("function") if isinstance(choice, dict) else None
    if isinstance(function, dict) and isinstance(function.get("name"), str):
        return {"type": "tool", "name": function["name"]}
    return choice  # already Anthropic's shape (or nonsense the API will name)


def check_case(case: CaseSpec, refuse: Refuse) -> None:
    """Raise ``refuse(...)`` for the first thing in the case the Messages API cannot take."""
    turns = [index for index, message in enumerate(case.messages) if message.get("role") != "system"]
    last = turns[-1] if turns else -1
    for index, message in enumerate(case.messages):
        key = f"messages[{index}]"
        role = message.get("role")
        if role not in _ROLES:
            raise refuse(key, f"role {role!r}", "use system, user, assistant or tool")
        if role in ("system", "tool") and text_of(message.get("content")) is None:
            raise refuse(f"{key}.content", f"non-text content in a {role} message", "send text only")
        if role == "tool" and not isinstance(message.get("tool_call_id"), str):
            raise refuse(key, "a tool result without tool_call_id", "set tool_call_id to the call's id")
        for number, part in enumerate(parts(message.get("content"))):
            _check_part(part, f"{key}.content[{number}]", role == "assistant", refuse)
        if role == "user" and not parts(message.get("content")):
            raise refuse(f"{key}.content", "an empty user turn", "give the turn some text")
        if role == "assistant":
            _check_calls(message, key, refuse)
        if role in ("user", "assistant"):
            _check_text(message, key, index == last, refuse)
    _check_pairs(case, refuse)


def _check_text(message: dict[str, Any], key: str, is_last: bool, refuse: Refuse) -> None:
    """Refuse a turn the API finds empty: no text but whitespace, and nothing else.

    The API refuses a message whose text blocks are whitespace only ("text content blocks must
    contain non-whitespace text"), an empty message but the final assistant one ("all messages must
    have non-empty content except for the optional final assistant message"), and a final assistant
    turn (a prefill) ending in whitespace ("final assistant content cannot end with trailing whitespace").
    """
    role, found = message.get("role"), parts(message.get("content"))
    texts = [part.text for part in found if part.kind == "text" and part.text]
    if any(part.kind != "text" for part in found) or (role == "assistant" and tool_calls(message)):
        return
    if role == "assistant" and is_last:
        if texts and texts[-1] != texts[-1].rstrip():
            fix = "end the turn without spaces or newlines"
            raise refuse(f"{key}.content", "a final assistant turn ending in whitespace", fix)
        return
    if role == "assistant" and not texts:
        fix = "give the turn some text or tool calls, or leave it out"
        raise refuse(f"{key}.content", "an empty assistant turn", fix)
    if texts and not any(text.strip() for text in texts):
        article = "an" if role == "assistant" else "a"
        raise refuse(f"{key}.content", f"{article} {role} turn of whitespace only", "give the turn some text")


def _check_pairs(case: CaseSpec, refuse: Refuse) -> None:
    """Every tool call is answered by the tool turns right after it, and every tool turn answers one.

    The Messages API refuses a tool_use without its tool_result in the next turn, and a tool_result
    whose tool_use is not in the turn before.
    """
    pending: dict[str, int] = {}  # unanswered call id -> index of the assistant turn that made it
    for index, message in enumerate(case.messages):
        role = message.get("role")
        if role == "tool":
            call_id = message.get("tool_call_id")
            if pending.pop(str(call_id), None) is None:
                fix = "answer a tool call of the assistant turn just before"
                raise refuse(
                    f"messages[{index}].tool_call_id", f"a tool result for unknown call {call_id!r}", fix
                )
            continue
        if role == "system":
            continue
        if pending:
            where = f"messages[{min(pending.values())}].tool_calls"
            fix = "add a tool turn for each call right after the assistant turn"
            raise refuse(where, f"tool calls without results: {', '.join(sorted(pending))}", fix)
        if role == "assistant":
            pending = {call.id: index for call in tool_calls(message) or []}


def _check_part(part: Part, key: str, in_assistant: bool, refuse: Refuse) -> None:
    if part.kind == "image" and in_assistant:
        raise refuse(key, "an image in an assistant turn", "move the image to a user message")
    if part.kind not in ("text", "image"):
        raise refuse(key, f"a {part.kind!r} content part", "use text and image_url parts only")
    if part.kind == "image" and part.url.startswith("data:"):
        if part.data is None or part.media_type not in IMAGE_TYPES:
            fix = f"use a base64 data: URL of type {', '.join(sorted(IMAGE_TYPES))}"
            raise refuse(key, "this data: URL image", fix)
    elif part.kind == "image" and not part.url.startswith(("https://", "http://")):
        raise refuse(key, f"an image URL of scheme {part.url.split(':', 1)[0]!r}", "use https: or data:")


def _check_calls(message: dict[str, Any], key: str, refuse: Refuse) -> None:
    calls = tool_calls(message)
    if calls is None:
        fix = 'give each call an id, type = "function" and function = {name = "...", arguments = "{}"}'
        raise refuse(f"{key}.tool_calls", "a malformed tool call", fix)
    for number, call in enumerate(calls):
        if not isinstance(_arguments(call.arguments), dict):
            where = f"{key}.tool_calls[{number}].function.arguments"
            raise refuse(where, "tool-call arguments that are not a JSON object", 'write "{...}"')
