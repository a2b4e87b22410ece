"""The simulator's emitters, one per dialect behind the ``Emitter`` protocol, and their registry."""

from __future__ import annotations

from runner.simulator.emitters.base import Counts, Emitter, InvalidRequestError, Task
from runner.simulator.emitters.registry import EMITTERS, FALLBACK, build_emitters, names

__all__ = [
    "EMITTERS",
    "FALLBACK",
    "Counts",
    "Emitter",
    "InvalidRequestError",
    "Task",
    "build_emitters",
    "names",
]
