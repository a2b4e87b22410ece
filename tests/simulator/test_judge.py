"""The simulator plays a judge: ``judge = { pass_when = REGEX }`` answers a verdict JSON by a rule."""

from __future__ import annotations

import json

import pytest

from runner.errors import ConfigError
from runner.grading.judge import verdict_outcome
from runner.simulator.config import SimulatorConfig
from runner.simulator.script import expected_output

JUDGE = SimulatorConfig.from_dict({"judge": {"pass_when": r"\bParis\b"}})


def grading_request(dialect: str, answer: str) -> dict[str, object]:
    text = f"<question>\nCapital of France? Paris or Lyon\n</question>\n<answer>\n{answer}\n</answer>"
    if dialect == "anthropic-messages":
        return {
            "model": "j",
            "max_tokens": 200,
            "stream": True,
            "messages": [{"role": "user", "content": text}],
        }
    return {"model": "j", "stream": True, "messages": [{"role": "user", "content": text}]}


@pytest.mark.parametrize("dialect", ["openai-chat", "anthropic-messages"])
@pytest.mark.parametrize(("answer", "passed"), [("It is Paris.", True), ("It is Lyon.", False)])
def test_the_verdict_follows_the_rule_over_the_graded_answer(dialect: str, answer: str, passed: bool) -> None:
    """Only the <answer> section counts (the question names Paris too); the verdict is fenced JSON."""
    text = expected_output(dialect, grading_request(dialect, answer), JUDGE).choices[0].text
    assert text.startswith("```json\n")
    assert json.loads(text.removeprefix("```json\n").removesuffix("\n```"))["pass"] is passed
    outcome = verdict_outcome(text, threshold=None)
    assert (outcome.passed, outcome.error, outcome.score) == (passed, False, 1.0 if passed else 0.0)


def test_the_same_request_gets_the_same_verdict() -> None:
    """Deterministic: a retried grading request is answered alike."""
    request = grading_request("openai-chat", "Paris")
    assert expected_output("openai-chat", request, JUDGE) == expected_output("openai-chat", request, JUDGE)


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        pytest.param({"pass_when": "("}, "simulator.judge.pass_when", id="bad-regex"),
        pytest.param({"when": "x"}, "simulator.judge", id="unknown-key"),
        pytest.param("x", "simulator.judge", id="not-a-table"),
    ],
)
def test_a_bad_judge_table_names_its_key(raw: object, key: str) -> None:
    """A judge table that is not {pass_when = REGEX} is refused, naming the key."""
    with pytest.raises(ConfigError) as caught:
        SimulatorConfig.from_dict({"judge": raw})
    assert caught.value.key == key
