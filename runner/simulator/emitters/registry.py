"""The registry of the simulator's emitters: a read-only constant built once from ``build_emitters``
(emitters are stateless). Adding a dialect to the simulator means one emitter module and one line here.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING, Final

from runner.simulator.emitters.anthropic_messages import AnthropicMessagesEmitter
from runner.simulator.emitters.gemini import GeminiEmitter
from runner.simulator.emitters.openai_chat import OpenAIChatEmitter
from runner.simulator.emitters.openai_responses import OpenAIResponsesEmitter
from runner.simulator.emitters.runware import RunwareEmitter

if TYPE_CHECKING:
    from collections.abc import Mapping

    from runner.simulator.emitters.base import Emitter


def build_emitters() -> dict[str, Emitter]:
    """Every dialect the simulator speaks, by name, in a stable order."""
    emitters: tuple[Emitter, ...] = (
        OpenAIChatEmitter(),
        AnthropicMessagesEmitter(),
        RunwareEmitter(),
        GeminiEmitter(),
        OpenAIResponsesEmitter(),
    )
    return {emitter.name: emitter for emitter in emitters}


# Read-only: emitters are stateless, so one shared instance of each is safe.
EMITTERS: Final[Mapping[str, Emitter]] = MappingProxyType(build_emitters())
# Errors on requests that reach no dialect (an unknown path, unparsable HTTP) take OpenAI's shape, the one
# most clients understand.
FALLBACK: Final = "openai-chat"


def names() -> tuple[str, ...]:
    """The dialect names the simulator speaks: openai-chat, anthropic-messages, runware, gemini,
    openai-responses."""
    return tuple(EMITTERS)
