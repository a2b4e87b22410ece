"""Durable storage: the schema, migrations on open, the repository (all SQL) and the writer task."""

from __future__ import annotations

from runner.store.db import Database, open_database, resolve_url
from runner.store.records import (
    AttemptView,
    AttemptWrite,
    BatchOutcome,
    ClaimedUnit,
    RunInfo,
    UnitFinish,
    UnitView,
    WriteItem,
)

__all__ = [
    "AttemptView",
    "AttemptWrite",
    "BatchOutcome",
    "ClaimedUnit",
    "Database",
    "RunInfo",
    "UnitFinish",
    "UnitView",
    "WriteItem",
    "open_database",
    "resolve_url",
]
