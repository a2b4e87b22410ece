"""The explicit registry of provider dialects: the one list of dialect names runner speaks.

Built by a function on first use (no import-time registration); the job loader and the CLI take their
dialect names from ``names()``.
"""

from __future__ import annotations

import functools
from types import MappingProxyType
from typing import TYPE_CHECKING

from runner.errors import ConfigError
from runner.wire.dialects.anthropic_messages import AnthropicMessagesDialect
from runner.wire.dialects.gemini import GeminiDialect
from runner.wire.dialects.openai_chat import OpenAIChatDialect
from runner.wire.dialects.openai_responses import OpenAIResponsesDialect
from runner.wire.dialects.runware import RunwareDialect

if TYPE_CHECKING:
    from collections.abc import Mapping

    from runner.wire.dialects.base import Dialect


def build_dialects() -> dict[str, Dialect]:
    """Every dialect runner speaks, by name, in a new dict: the list to extend when a wire shape is added."""
    dialects: tuple[Dialect, ...] = (
        OpenAIChatDialect(),
        AnthropicMessagesDialect(),
        RunwareDialect(),
        GeminiDialect(),
        OpenAIResponsesDialect(),
    )
    return {dialect.name: dialect for dialect in dialects}


@functools.cache
def registry() -> Mapping[str, Dialect]:
    """The dialects by name, read-only, built once on first use.

    Cached on purpose and safe to share: a dialect is stateless (the state of a stream lives in the
    accumulator it hands out), so one instance of each serves every attempt, and no test needs a reset.
    """
    return MappingProxyType(build_dialects())


def names() -> tuple[str, ...]:
    """Every dialect name, in the registry's order (openai-chat first)."""
    return tuple(registry())


def get_dialect(name: str) -> Dialect:
    """The dialect called ``name``.

    Raises:
        ConfigError: no dialect has that name; the message lists the known ones.
    """
    try:
        return registry()[name]
    except KeyError:
        known = ", ".join(sorted(registry()))
        raise ConfigError(f"unknown dialect {name!r}", fix=f"use one of: {known}") from None
