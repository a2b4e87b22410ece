"""The Emitter protocol: everything about a provider's wire shape that the simulator's server and script
leave to the dialect, and ``Task``, a request body as an emitter reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from runner.simulator.config import SimulatorConfig
    from runner.simulator.frames import EmitContext, Frame
    from runner.simulator.script import Expected


class InvalidRequestError(Exception):
    """Raised by ``Emitter.read`` for a body the real API refuses with 400; the message says why.

    The server answers with the dialect's 400 error body carrying this message, as the provider does.
    """


@dataclass(frozen=True, slots=True, kw_only=True)
class Task:
    """One request as the simulator answers it, read once from the JSON body by its dialect's emitter."""

    body: dict[str, Any]  # the object answered (Runware: the first task of the list), seeds the content
    model: str
    stream: bool
    choices: int  # how many answers (OpenAI ``n``, Runware ``numberResults``), 1 to 16
    max_tokens: int | None  # the output limit, when the request sets a positive one
    reasoning: bool  # the request itself asks for reasoning
    tools: tuple[tuple[str, dict[str, Any]], ...]  # (name, JSON schema) of each tool offered


@dataclass(frozen=True, slots=True, kw_only=True)
class Counts:
    """The token counts and cost of one answer, from which a dialect builds its usage object."""

    prompt: int
    completion: int
    reasoning: int
    searches: int  # MiroMind web searches
    cost: float  # USD at the configured prices


class Emitter(Protocol):
    """What differs between the dialects the simulator speaks; the server and script share the rest.

    The class attributes are the constants of the dialect's wire shape; the methods turn a request body
    into a ``Task`` and an ``Expected`` answer into the provider's bytes.
    """

    name: str  # the dialect, as job files spell it
    route: str  # the path the dialect's requests are POSTed to
    base_path: str  # what the official SDK's base URL adds to the origin
    response_id_prefix: str
    tool_call_prefix: str
    heartbeat: bytes  # what keeps a proxy awake during a long pause (an SSE comment or a ping event)
    words_before_tools: int  # how many answer words at most precede tool calls
    has_flavors: bool  # SimulatorConfig.flavor applies to this dialect

    def read(self, body: Any) -> Task | None:
        """The task a parsed JSON body asks for, or None when the dialect would refuse it (400).

        Raises:
            InvalidRequestError: the body is the dialect's, but the real API refuses it (says why).
        """
        ...

    def usage(
        self, task: Task, config: SimulatorConfig, counts: Counts
    ) -> tuple[dict[str, Any] | None, float | None]:
        """The dialect-native usage object the client ends with, and the cost it reports (None: not sent)."""
        ...

    def stream_frames(
        self, expected: Expected, task: Task, config: SimulatorConfig, ctx: EmitContext
    ) -> list[Frame]:
        """Every event of the stream, the terminal one included."""
        ...

    def response_body(self, expected: Expected, task: Task, ctx: EmitContext) -> bytes:
        """The non-streamed JSON body."""
        ...

    def error_body(self, status: int, *, quota: bool = False, task: Task | None = None) -> bytes:
        """The JSON error body sent with ``status`` (``task`` is None when the body was refused)."""
        ...

    def stream_error(self, *, miromind: bool, response_id: str, model: str, task: Task) -> list[Frame]:
        """The frames of a mid-stream error; the server ends the body after them."""
        ...


def model_name(body: dict[str, Any]) -> str:
    """The model the answer names: the request's, whatever its type."""
    return str(body.get("model", "sim-model"))


def choice_count(value: Any) -> int:
    """How many answers a count field asks for: 1 to 16, anything else means 1."""
    return value if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 16 else 1


def token_limit(value: Any) -> int | None:
    """A positive integer output limit, or None when the field is missing or unusable."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else None


def offered_tools(
    body: dict[str, Any], *, wrapper: str | None, schema: str
) -> tuple[tuple[str, dict[str, Any]], ...]:
    """(name, JSON schema) of each well-formed tool the request offers; none when tool_choice is "none".

    Args:
        wrapper: the key a tool's definition is nested under (OpenAI's ``function``), if any.
        schema: the key of the definition's JSON schema.
    """
    raw = body.get("tools")
    if not isinstance(raw, list) or body.get("tool_choice") == "none":
        return ()
    tools = []
    for tool in raw:
        spec = tool.get(wrapper, tool) if wrapper is not None and isinstance(tool, dict) else tool
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            continue
        params = spec.get(schema) or {}
        tools.append((spec["name"], params if isinstance(params, dict) else {}))
    return tuple(tools)
