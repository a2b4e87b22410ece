"""gemini emitter: ``streamGenerateContent?alt=sse``, one ``GenerateContentResponse`` per event, CRLF.

The model and the streaming choice are in the path (``/{version}/models/{model}:streamGenerateContent``),
so the server routes by ``match`` and reads with ``read_for``. Thought parts (``thought: true``) come
first, then text, then one ``functionCall`` part per call (its args whole, as Google sends them); the
last event of each candidate has its ``finishReason``. Every event has a ``usageMetadata``, the prompt
counted from the first one and the whole usage on the last, as Google repeats it, growing. The
request is checked as strictly as Google checks it: an ``assistant`` role, a missing ``contents`` or an
unknown field is a 400, so a wrongly translated conversation fails in tests as in production. Field names
are read as Google's proto3 JSON parser reads them: lowerCamelCase or the proto's snake_case name
(google-genai sends ``thinking_config.include_thoughts`` and ``parameters_json_schema`` as snake_case).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Final

import orjson

from runner.simulator.emitters.base import Counts, InvalidRequestError, Task, choice_count, token_limit
from runner.simulator.faults import error_message
from runner.simulator.frames import EmitContext, Frame, interleave

if TYPE_CHECKING:
    from runner.simulator.config import SimulatorConfig
    from runner.simulator.script import Expected, ExpectedChoice

HEARTBEAT: Final = b": keep-alive\r\n\r\n"
# /{api_version}/models/{model}:{method}; the model may hold dots and dashes, never a slash.
ROUTE: Final = re.compile(r"/(v1|v1beta|v1alpha)/models/([^/:]+):(streamGenerateContent|generateContent)")
FINISH: Final = {"stop": "STOP", "tool_calls": "STOP", "length": "MAX_TOKENS"}
# status -> Google's RPC status name; other statuses get a generic one by class (4xx or 5xx)
STATUSES: Final = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_TOP: Final = frozenset(
    {"contents", "systemInstruction", "tools", "toolConfig", "generationConfig", "safetySettings"}
    | {"cachedContent", "labels"}
)
_GENERATION: Final = frozenset(
    {"temperature", "topP", "topK", "candidateCount", "maxOutputTokens", "stopSequences", "seed"}
    | {"presencePenalty", "frequencyPenalty", "responseMimeType", "responseSchema", "responseJsonSchema"}
    | {"thinkingConfig", "responseLogprobs", "logprobs", "responseModalities", "mediaResolution"}
)
# generationConfig's scalar fields: proto3 JSON takes a number or its decimal string, never a bool,
# list or object (https://protobuf.dev/programming-guides/json/).
_NUMBERS: Final = frozenset(
    {"temperature", "topP", "topK", "candidateCount", "maxOutputTokens", "seed", "presencePenalty"}
    | {"frequencyPenalty", "logprobs"}
)
# Gemini 3 and later: a model whose function calls need their thought signature back.
_SIGNING_MODEL: Final = re.compile(r"gemini-([0-9]+)")
_THINKING: Final = frozenset({"includeThoughts", "thinkingBudget", "thinkingLevel"})
_CALLING: Final = frozenset({"mode", "allowedFunctionNames"})
_CALLING_MODES: Final = frozenset({"MODE_UNSPECIFIED", "AUTO", "ANY", "NONE", "VALIDATED"})
_TOOL_KINDS: Final = frozenset(
    {"functionDeclarations", "googleSearch", "googleSearchRetrieval", "codeExecution", "urlContext"}
    | {"retrieval", "computerUse", "fileSearch", "googleMaps"}
)
_DECLARATION: Final = frozenset(
    {"name", "description", "parameters", "parametersJsonSchema", "response", "responseJsonSchema"}
)
# The part fields whose values are messages (their own keys are field names); args, response and the
# schemas are free-form JSON, whose keys are data and are never renamed.
_PART_MESSAGES: Final = ("inlineData", "fileData", "functionCall", "functionResponse")
_PART_DATA: Final = frozenset(
    {"text", "inlineData", "fileData", "functionCall", "functionResponse", "executableCode"}
    | {"codeExecutionResult"}
)


def _sse(payload: Any) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\r\n\r\n"  # Google ends lines with CRLF


class GeminiEmitter:
    """Google's Gemini API: candidates with parts, thought parts, whole function calls."""

    name: str = "gemini"
    route: str = "/v1/models/sim-model:streamGenerateContent"  # one concrete path; ROUTE matches all
    base_path: str = ""  # google-genai takes the origin and adds /{version}/models/... itself
    response_id_prefix: str = "resp-"
    tool_call_prefix: str = "fc-"
    heartbeat: bytes = HEARTBEAT
    words_before_tools: int = 4
    has_flavors: bool = False

    def match(self, path: str) -> tuple[str, bool] | None:
        """(model, streamed) for a path this dialect serves, or None."""
        found = ROUTE.fullmatch(path)
        if found is None:
            return None
        return found.group(2), found.group(3) == "streamGenerateContent"

    def read(self, body: Any) -> Task | None:
        return self.read_for(body, model="sim-model", stream=True)

    def read_for(self, body: Any, *, model: str, stream: bool) -> Task | None:
        """The task of a body POSTed for ``model``; None when Google would answer 400."""
        body = _camel_body(body)
        if not _valid(body):
            return None
        if _signs_calls(model) and (unsigned := _unsigned_call(body["contents"])) is not None:
            raise InvalidRequestError(
                "Function call is missing a thought_signature in functionCall parts. This is required"
                f" for tools to work correctly. Additional data, function call `{unsigned}`."
            )
        config = body.get("generationConfig") or {}
        thinking = config.get("thinkingConfig")
        return Task(
            # The script reads messages / system / tools (seed, prompt size) and the model from the body.
            body={
                **body,
                "model": model,
                "messages": body["contents"],
                "system": body.get("systemInstruction"),
            },
            model=model,
            stream=stream,
            choices=choice_count(config.get("candidateCount", 1)),
            max_tokens=token_limit(config.get("maxOutputTokens")),
            reasoning=isinstance(thinking, dict) and thinking.get("includeThoughts") is True,
            tools=_tools(body),
        )

    def usage(
        self, task: Task, config: SimulatorConfig, counts: Counts
    ) -> tuple[dict[str, Any] | None, float | None]:
        # candidatesTokenCount leaves the thoughts out; they are counted apart.
        usage = {
            "promptTokenCount": counts.prompt,
            "candidatesTokenCount": counts.completion - counts.reasoning,
            "totalTokenCount": counts.prompt + counts.completion,
        }
        if counts.reasoning:
            usage["thoughtsTokenCount"] = counts.reasoning
        return usage, None

    def stream_frames(
        self, expected: Expected, task: Task, config: SimulatorConfig, ctx: EmitContext
    ) -> list[Frame]:
        # Google repeats usageMetadata on every event, growing: the prompt is counted from the first
        # one, so a stream cut short still says what it read. The whole usage rides on the last
        # event, with the last finishReason.
        early = _early_usage(expected.usage)
        frames = interleave([_candidate_frames(expected, c, ctx, early) for c in expected.choices])
        last = orjson.loads(frames[-1].wire[6:])
        last["usageMetadata"] = expected.usage
        frames[-1] = Frame(_sse(last), frames[-1].token)
        return frames

    def response_body(self, expected: Expected, task: Task, ctx: EmitContext) -> bytes:
        candidates = [_candidate(c, _all_parts(c), finish=True) for c in expected.choices]
        return orjson.dumps(_response(expected, ctx, candidates, usage=expected.usage))

    def error_body(self, status: int, *, quota: bool = False, task: Task | None = None) -> bytes:
        default = "INTERNAL" if status >= 500 else "FAILED_PRECONDITION"
        error = {
            "code": status,
            "message": error_message(status, quota=quota),
            "status": STATUSES.get(status, default),
        }
        return orjson.dumps({"error": error})

    def stream_error(self, *, miromind: bool, response_id: str, model: str, task: Task) -> list[Frame]:
        error = {
            "code": 503,
            "message": "The model is overloaded. Please try again later.",
            "status": "UNAVAILABLE",
        }
        return [Frame(_sse({"error": error}))]


def _early_usage(usage: Any) -> dict[str, Any] | None:
    """The usageMetadata of the events before the last: the prompt alone, as Google counts it then."""
    if not isinstance(usage, dict) or "promptTokenCount" not in usage:
        return None
    prompt = usage["promptTokenCount"]
    return {"promptTokenCount": prompt, "totalTokenCount": prompt}


def _candidate_frames(
    expected: Expected, choice: ExpectedChoice, ctx: EmitContext, usage: dict[str, Any] | None
) -> list[Frame]:
    parts = [{"text": piece, "thought": True} for piece in ctx.group(choice.reasoning_tokens)]
    parts += [{"text": piece} for piece in ctx.group(choice.text_tokens)]
    parts += [_call_part(call.id, call.name, call.arguments) for call in choice.tool_calls]
    if not parts:
        parts = [{"text": ""}]
    frames = []
    for k, part in enumerate(parts):
        finish = k == len(parts) - 1
        payload = _response(expected, ctx, [_candidate(choice, [part], finish=finish)], usage=usage)
        frames.append(Frame(_sse(payload), True))
    return frames


def _all_parts(choice: ExpectedChoice) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    if choice.reasoning_tokens:
        parts.append({"text": choice.reasoning, "thought": True})
    if choice.text_tokens:
        parts.append({"text": choice.text})
    parts += [_call_part(call.id, call.name, call.arguments) for call in choice.tool_calls]
    return parts


def _call_part(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"functionCall": {"id": call_id, "name": name, "args": orjson.loads(arguments)}}


def _candidate(choice: ExpectedChoice, parts: list[dict[str, Any]], *, finish: bool) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": choice.index}
    if finish:
        candidate["finishReason"] = FINISH[choice.finish_reason]
    return candidate


def _response(
    expected: Expected, ctx: EmitContext, candidates: list[dict[str, Any]], *, usage: dict[str, Any] | None
) -> dict[str, Any]:
    out: dict[str, Any] = {"candidates": candidates}
    if usage is not None:
        out["usageMetadata"] = usage
    out["modelVersion"] = expected.model
    out["responseId"] = ctx.response_id
    return out


def _tools(body: dict[str, Any]) -> tuple[tuple[str, dict[str, Any]], ...]:
    config = body.get("toolConfig")
    calling = config.get("functionCallingConfig") if isinstance(config, dict) else None
    if isinstance(calling, dict) and calling.get("mode") == "NONE":
        return ()
    found = []
    for tool in body.get("tools") or ():
        for declaration in tool.get("functionDeclarations") or ():
            schema = declaration.get("parameters") or declaration.get("parametersJsonSchema") or {}
            found.append((declaration["name"], schema))
    return tuple(found)


# -- request validation: what the real API answers 400 -------------------------------------------------


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def _fields(value: Any) -> Any:
    """A message's keys as lowerCamelCase; anything but a dict is left for validation to refuse."""
    return {_camel(key): item for key, item in value.items()} if isinstance(value, dict) else value


def _camel_content(content: Any) -> Any:
    content = _fields(content)
    if isinstance(content, dict) and isinstance(content.get("parts"), list):
        parts = [_fields(part) for part in content["parts"]]
        for part in parts:
            for key in _PART_MESSAGES:
                if isinstance(part, dict) and key in part:
                    part[key] = _fields(part[key])
        content["parts"] = parts
    return content


def _camel_body(body: Any) -> Any:
    """The body with every field name (not free-form JSON data) in lowerCamelCase, as the proto3 JSON
    mapping lets a parser accept both: https://protobuf.dev/programming-guides/json/ ("Parsers accept
    both the lowerCamelCase name ... and the original proto field name")."""
    body = _fields(body)
    if not isinstance(body, dict):
        return body
    if isinstance(body.get("contents"), list):
        body["contents"] = [_camel_content(content) for content in body["contents"]]
    if "systemInstruction" in body:
        body["systemInstruction"] = _camel_content(body["systemInstruction"])
    config = body["generationConfig"] = _fields(body.get("generationConfig"))
    if isinstance(config, dict) and "thinkingConfig" in config:
        config["thinkingConfig"] = _fields(config["thinkingConfig"])
    if config is None:
        del body["generationConfig"]
    calling = body.get("toolConfig")
    if isinstance(calling, dict):
        body["toolConfig"] = {key: _fields(value) for key, value in _fields(calling).items()}
    if isinstance(body.get("tools"), list):
        tools = [_fields(tool) for tool in body["tools"]]
        for tool in tools:
            if isinstance(tool, dict) and isinstance(tool.get("functionDeclarations"), list):
                tool["functionDeclarations"] = [_fields(d) for d in tool["functionDeclarations"]]
        body["tools"] = tools
    return body


def _valid(body: Any) -> bool:
    if not isinstance(body, dict) or not set(body) <= _TOP:
        return False
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        return False  # "contents is not specified"
    if not all(_valid_content(content, roles=("user", "model")) for content in contents):
        return False
    if not _valid_function_turns(contents):
        return False
    system = body.get("systemInstruction")
    if system is not None and not _valid_content(system, roles=("user", "system")):
        return False
    config = body.get("generationConfig")
    if config is not None and not _valid_generation(config):
        return False
    return _valid_tools(body.get("tools")) and _valid_tool_config(body.get("toolConfig"))


def _valid_generation(config: Any) -> bool:
    """Google's GenerationConfig: known fields only (nested thinkingConfig too), each of its type."""
    if not isinstance(config, dict) or not set(config) <= _GENERATION:
        return False  # "Unknown name ... at 'generation_config': Cannot find field."
    for key in _NUMBERS & config.keys():
        if not _number(config[key]):
            return False  # "Invalid value at 'generation_config.max_output_tokens'"
    stops = config.get("stopSequences")
    if stops is not None and not (isinstance(stops, list) and all(isinstance(s, str) for s in stops)):
        return False
    thinking = config.get("thinkingConfig")
    return thinking is None or (isinstance(thinking, dict) and set(thinking) <= _THINKING)


def _number(value: Any) -> bool:
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return False
        return True
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def _valid_tool_config(config: Any) -> bool:
    """ToolConfig: functionCallingConfig (mode one of Google's, allowedFunctionNames) or retrievalConfig."""
    if config is None:
        return True
    if not isinstance(config, dict) or not set(config) <= {"functionCallingConfig", "retrievalConfig"}:
        return False
    calling = config.get("functionCallingConfig")
    if calling is None:
        return True
    if not isinstance(calling, dict) or not set(calling) <= _CALLING:
        return False
    names = calling.get("allowedFunctionNames")
    if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        return False
    return calling.get("mode", "MODE_UNSPECIFIED") in _CALLING_MODES  # "Invalid value ... (TYPE_ENUM)"


def _valid_function_turns(contents: list[dict[str, Any]]) -> bool:
    """Google's rules for function turns: a function call turn comes right after a user turn (or a
    function response turn, a user turn too), and the turn after it, if any, holds exactly one
    functionResponse part per functionCall part; a function response turn only follows one."""
    calls = 0  # functionCall parts of the turn before
    for number, content in enumerate(contents):
        role = content.get("role", "user")
        made = sum("functionCall" in part for part in content["parts"])
        answered = sum("functionResponse" in part for part in content["parts"])
        if made and (number == 0 or contents[number - 1].get("role", "user") != "user"):
            return False  # "... function call turn comes immediately after a user turn ..."
        if (calls or answered) and answered != calls:
            return False  # "... the number of function response parts is equal to ..."
        calls = made if role == "model" else 0
    return True


def _valid_content(content: Any, *, roles: tuple[str, ...]) -> bool:
    if not isinstance(content, dict) or not set(content) <= {"role", "parts"}:
        return False
    if "role" in content and content["role"] not in roles:
        return False  # "Please use a valid role: user, model." (an OpenAI "assistant" lands here)
    parts = content.get("parts")
    return isinstance(parts, list) and bool(parts) and all(_valid_part(part) for part in parts)


def _valid_part(part: Any) -> bool:
    if not isinstance(part, dict):
        return False
    data = [key for key in part if key in _PART_DATA]
    if len(data) != 1 or not set(part) <= _PART_DATA | {"thought", "thoughtSignature"}:
        return False  # a part holds exactly one kind of data
    value = part[data[0]]
    if data[0] == "text":
        return isinstance(value, str)
    if data[0] == "inlineData":
        return isinstance(value, dict) and all(isinstance(value.get(k), str) for k in ("mimeType", "data"))
    if data[0] == "fileData":
        return isinstance(value, dict) and isinstance(value.get("fileUri"), str)
    if data[0] == "functionCall":
        return isinstance(value, dict) and isinstance(value.get("name"), str) and _object(value.get("args"))
    if data[0] == "functionResponse":
        return (
            isinstance(value, dict) and isinstance(value.get("name"), str) and _object(value.get("response"))
        )
    return isinstance(value, dict)


def _object(value: Any) -> bool:
    return value is None or isinstance(value, dict)


def _valid_tools(tools: Any) -> bool:
    if tools is None:
        return True
    if not isinstance(tools, list):
        return False
    for tool in tools:
        if not isinstance(tool, dict) or not tool or not set(tool) <= _TOOL_KINDS:
            return False  # an OpenAI {"type": "function", ...} tool lands here
        declarations = tool.get("functionDeclarations")
        if declarations is None:
            continue  # googleSearch, codeExecution...: accepted, never called here
        if not isinstance(declarations, list):
            return False
        for declaration in declarations:
            if not isinstance(declaration, dict) or not isinstance(declaration.get("name"), str):
                return False
            if not set(declaration) <= _DECLARATION:
                return False
    return True


def _signs_calls(model: str) -> bool:
    found = _SIGNING_MODEL.match(model)
    return found is not None and int(found.group(1)) >= 3


def _unsigned_call(contents: list[dict[str, Any]]) -> str | None:
    """The name of the first function call of the current turn without its thoughtSignature, or None.

    Gemini 3 checks the turn since the last user message that is not function responses: in each of
    its model steps, the first functionCall part must carry the signature the model gave it
    (https://ai.google.dev/gemini-api/docs/thought-signatures); earlier turns are not checked.
    """
    start = 0
    for number, content in enumerate(contents):
        if content.get("role", "user") == "user" and any(
            "functionResponse" not in p for p in content["parts"]
        ):
            start = number
    for content in contents[start + 1 :]:
        if content.get("role") != "model":
            continue
        first = next((part for part in content["parts"] if "functionCall" in part), None)
        if first is not None and not first.get("thoughtSignature"):
            return str(first["functionCall"].get("name"))
    return None
