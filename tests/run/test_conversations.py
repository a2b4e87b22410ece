"""A multi-turn conversation (an assistant tool call, its result, a data: URL image) loaded from a job file
and sent through the engine to the simulator for each dialect: accepted where the dialect can express it,
a load error naming the case and the dialect where it cannot."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
import pytest
import trio

from runner.errors import ConfigError
from runner.job.load import parse_job
from tests.conversations import WEATHER_TOOL, tool_conversation
from tests.run.helpers import run_in_process

if TYPE_CHECKING:
    from pathlib import Path

    from runner.simulator.server import SimulatorHandle
    from tests.conftest import StartSimulator

pytestmark = pytest.mark.usefixtures("transport")  # on both transports (tests/run/conftest.py)

TEXT_TURNS = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "Hi."},
    {"role": "assistant", "content": "Hello."},
    {"role": "user", "content": [{"type": "text", "text": "Name a colour."}]},
]


def job_text(simulator: SimulatorHandle, dialect: str, case: dict[str, Any]) -> str:
    """A job file (JSON is YAML) of one provider of ``dialect`` on the simulator and one case."""
    provider = {
        "name": dialect,
        "dialect": dialect,
        "base_url": simulator.base_url(dialect),
        "model": "sim-model",
        "retry": {"max_attempts": 1},
    }
    return orjson.dumps({"providers": [provider], "cases": [case]}).decode()


@pytest.mark.parametrize(
    ("dialect", "case"),
    [
        ("openai-chat", {"id": "conv", "messages": tool_conversation(), "tools": [WEATHER_TOOL]}),
        ("anthropic-messages", {"id": "conv", "messages": tool_conversation(), "tools": [WEATHER_TOOL]}),
        ("runware", {"id": "conv", "messages": TEXT_TURNS}),
    ],
)
async def test_the_simulator_accepts_each_dialects_translation(
    tmp_path: Path, start_simulator: StartSimulator, dialect: str, case: dict[str, Any]
) -> None:
    """The strict simulator answers 200: the translated conversation is one the real API takes."""
    simulator = await start_simulator()
    job = parse_job(job_text(simulator, dialect, case), path="job.yaml", fmt="yaml")
    with trio.fail_after(30):
        _, units = await run_in_process(tmp_path, job)
    (unit,) = units
    assert unit.verdict == "passed", [attempt.error for attempt in unit.attempts]
    assert [entry.dialect for entry in simulator.log] == [dialect]


async def test_runware_refuses_the_tool_conversation_at_load(start_simulator: StartSimulator) -> None:
    """Runware's task API has no tool turns or images: one load error naming case, dialect and key."""
    simulator = await start_simulator()
    case = {"id": "conv", "messages": [{"role": "system", "content": "s"}, *tool_conversation()]}
    with pytest.raises(ConfigError) as caught:
        parse_job(job_text(simulator, "runware", case), path="job.yaml", fmt="yaml")
    error = caught.value
    assert error.key == "cases[0].messages[2].tool_calls"  # the file's index: the system turn counts
    assert "case 'conv': runware cannot express tool calls (provider 'runware')" in str(error)
    assert error.path == "job.yaml"
    assert error.line is not None
    assert len(simulator.log) == 0
