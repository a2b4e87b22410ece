"""Provider dialects: one module per wire shape, and the registry (``registry.py``) that names them."""

from __future__ import annotations

from runner.wire.dialects.base import Accumulator, Dialect, HttpRequest
from runner.wire.dialects.registry import build_dialects, get_dialect, names, registry

__all__ = ["Accumulator", "Dialect", "HttpRequest", "build_dialects", "get_dialect", "names", "registry"]
