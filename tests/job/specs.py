"""Specs for planning tests: an openai-chat provider and a one-message case, changed by keyword."""

from __future__ import annotations

import dataclasses
from typing import Any

from runner.spec import CaseSpec, ProviderSpec


def provider_spec(name: str, **changes: Any) -> ProviderSpec:
    """An openai-chat provider named ``name`` (model "m"), with ``changes`` applied."""
    spec = ProviderSpec(name=name, dialect="openai-chat", base_url="https://api.example.com/v1", model="m")
    return dataclasses.replace(spec, **changes)


def case_spec(case_id: str, **changes: Any) -> CaseSpec:
    """A case whose one user message is its id, with ``changes`` applied."""
    spec = CaseSpec(id=case_id, messages=({"role": "user", "content": case_id},))
    return dataclasses.replace(spec, **changes)
