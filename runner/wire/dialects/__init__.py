"""Provider dialects and their explicit registry (built by a function, no import-time registration)."""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING, Final

from runner.errors import ConfigError
from runner.wire.dialects.anthropic_messages import AnthropicMessagesDialect
from runner.wire.dialects.base import Accumulator, Dialect, HttpRequest
from runner.wire.dialects.openai_chat import OpenAIChatDialect
from runner.wire.dialects.runware import RunwareDialect

if TYPE_CHECKING:
    from collections.abc import Mapping


def build_dialects() -> dict[str, Dialect]:
    """Every dialect runner speaks, by name: the one list to extend when a wire shape is added."""
    dialects: tuple[Dialect, ...] = (OpenAIChatDialect(), AnthropicMessagesDialect(), RunwareDialect())
    return {dialect.name: dialect for dialect in dialects}


# Read-only: dialects are stateless, so one shared instance of each is safe.
DIALECTS: Final[Mapping[str, Dialect]] = MappingProxyType(build_dialects())


def get_dialect(name: str) -> Dialect:
    """The dialect called ``name``.

    Raises:
        ConfigError: no dialect has that name; the message lists the known ones.
    """
    try:
        return DIALECTS[name]
    except KeyError:
        known = ", ".join(sorted(DIALECTS))
        raise ConfigError(f"unknown dialect {name!r}", fix=f"use one of: {known}") from None


__all__ = ["DIALECTS", "Accumulator", "Dialect", "HttpRequest", "build_dialects", "get_dialect"]
