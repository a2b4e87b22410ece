"""Provider dialects and their explicit registry (no import-time registration)."""

from __future__ import annotations

from runner.dialects.base import Accumulator, Dialect, HttpRequest

__all__ = ["Accumulator", "Dialect", "HttpRequest"]
