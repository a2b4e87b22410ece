"""The [providers.simulator] table and the LATENCY / FAULT specs parse, or fail naming the key."""

from __future__ import annotations

import random
from typing import Any

import pytest
from click.testing import CliRunner

from runner.cli import cli
from runner.errors import ConfigError
from runner.simulator import Dist, Fault, SimulatorConfig, expected_output, parse_faults, parse_latency


def test_from_dict_full_table() -> None:
    """Every documented key of the table is read into the config."""
    config = SimulatorConfig.from_dict(
        {
            "seed": 7,
            "flavor": "miromind",
            "latency": {"ttft": "lognormal:0.3:0.5", "gap": 0.02, "heartbeat": 2},
            "faults": "1=http_429:ra=1,http_500@0.02",
            "output_tokens": 50,
            "reasoning": True,
            "cost": True,
            "price": {"input": 1.0, "output": 2.0},
            "tool_calls": 3,
        }
    )
    assert config.seed == 7
    assert config.latency.ttft == Dist(kind="lognormal", a=0.3, b=0.5)
    assert config.latency.gap == Dist(a=0.02)
    assert config.latency.heartbeat == 2
    assert config.faults.script == {1: Fault(name="http_429", arg="ra=1")}
    assert config.faults.rates == ((Fault(name="http_500"), 0.02),)
    assert config.output_tokens == Dist(a=50)
    assert (config.price_input, config.price_output, config.tool_calls) == (1.0, 2.0, 3)


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        pytest.param({"sed": 1}, "simulator.sed", id="unknown_key"),
        pytest.param({"seed": "x"}, "simulator.seed", id="seed_type"),
        pytest.param({"flavor": "groq"}, "simulator.flavor", id="flavor"),
        pytest.param({"latency": "ttft=gauss:1"}, "simulator.latency.ttft", id="dist_kind"),
        pytest.param({"latency": "jitter=1"}, "simulator.latency.jitter", id="latency_key"),
        pytest.param({"latency": "gap=uniform:2:1"}, "simulator.latency.gap", id="uniform_order"),
        pytest.param({"faults": "http_429@2"}, "simulator.faults", id="rate_range"),
        pytest.param({"faults": "explode@0.1"}, "simulator.faults", id="fault_name"),
        pytest.param({"faults": "1=http_429:soon"}, "simulator.faults", id="retry_hint"),
        pytest.param({"faults": "close_clean"}, "simulator.faults", id="no_rate"),
        pytest.param({"cost": 1}, "simulator.cost", id="bool"),
        pytest.param({"price": {"input": -1}}, "simulator.price.input", id="price"),
    ],
)
def test_bad_tables_name_the_key(raw: dict[str, Any], key: str) -> None:
    """A bad value raises ConfigError whose key names the offending entry."""
    with pytest.raises(ConfigError) as info:
        SimulatorConfig.from_dict(raw)
    assert info.value.key == key


def test_fault_plan_script_wins_over_rates() -> None:
    """A scripted attempt gets its fault even when a rate of 1.0 would pick another."""
    plan = parse_faults("2=close_clean:3,http_500@1")
    rng = random.Random(0)
    assert [str(plan.choose(n, rng)) for n in (1, 2, 3)] == ["http_500", "close_clean:3", "http_500"]


def test_latency_samples_are_seeded() -> None:
    """The same seed gives the same latency samples."""
    latency = parse_latency("gap=exp:0.01,chunk=uniform:1:4")
    first = [latency.gap.sample(random.Random(5)) for _ in range(3)]
    assert first == [latency.gap.sample(random.Random(5)) for _ in range(3)]


def test_expected_output_is_pure_and_seeded() -> None:
    """Same request and seed give the same answer; another seed gives another; runware ignores taskUUID."""
    request = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    one = expected_output("openai-chat", request, SimulatorConfig(seed=1))
    assert one == expected_output("openai-chat", request, SimulatorConfig(seed=1))
    assert one.choices != expected_output("openai-chat", request, SimulatorConfig(seed=2)).choices
    task = {"taskType": "textInference", "model": "r", "messages": request["messages"]}
    a = expected_output("runware", [{**task, "taskUUID": "a"}])
    b = expected_output("runware", [{**task, "taskUUID": "b"}])
    assert a.choices == b.choices


def test_simulate_help_documents_specs() -> None:
    """``runner simulate --help`` documents both mini-languages and shows an example."""
    result = CliRunner().invoke(cli, ["simulate", "--help"])
    assert result.exit_code == 0
    for needle in ("LATENCY SPEC", "FAULT SPEC", "lognormal", "close_abrupt", "Example: runner simulate"):
        assert needle in result.output


def test_simulate_rejects_a_bad_spec() -> None:
    """A bad --faults spec is a usage error (exit 2) naming the option."""
    result = CliRunner().invoke(cli, ["simulate", "--faults", "boom@1"])
    assert result.exit_code == 2
    assert "simulate.faults" in result.output
