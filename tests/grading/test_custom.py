"""Custom checks (``[cases.expect] python``): what a check's return value or exception means."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import pytest

from runner.errors import ConfigError
from runner.grading.assertions import evaluate, parse_expect, validate_expect
from runner.grading.custom import outcome_of, run_check
from runner.model import Choice, Completion

if TYPE_CHECKING:
    from collections.abc import Mapping

ANSWER = Completion(complete=True, choices=(Choice(index=0, text="Paris", finish_reason="stop"),))


@pytest.mark.parametrize(
    ("value", "passed", "score", "detail"),
    [
        pytest.param(True, True, None, "returned True", id="true"),
        pytest.param(False, False, None, "returned False", id="false"),
        pytest.param(0.5, True, 0.5, "score 0.5 >= 0.5", id="score-at-bar"),
        pytest.param(0.49, False, 0.49, "score 0.49 < 0.5", id="score-below"),
        pytest.param(1, True, 1.0, "score 1 >= 0.5", id="int-score"),
        pytest.param({"pass": True, "reason": "capital"}, True, None, "capital", id="mapping-pass"),
        pytest.param({"score": 0.2}, False, 0.2, "failed", id="mapping-score"),
        pytest.param({"pass": True, "score": 0.1, "reason": "ok"}, True, 0.1, "ok", id="pass-over-score"),
    ],
)
def test_return_values_become_outcomes(value: object, passed: bool, score: float | None, detail: str) -> None:
    """A bool is the verdict, a score passes at 0.5, a mapping's pass wins over its score."""
    outcome = outcome_of(value)
    assert (outcome.name, outcome.passed, outcome.score, outcome.detail, outcome.error) == (
        "python",
        passed,
        score,
        detail,
        False,
    )


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        pytest.param(None, "returned NoneType", id="none"),
        pytest.param("yes", "returned str", id="string"),
        pytest.param(1.5, "outside [0, 1]", id="score-too-high"),
        pytest.param(float("nan"), "returned float", id="nan"),
        pytest.param({"passed": True}, "unknown keys 'passed'", id="typo-key"),
        pytest.param({"reason": "x"}, 'without "pass" or "score"', id="no-verdict"),
        pytest.param({"pass": "yes"}, "must be true or false", id="pass-not-bool"),
        pytest.param({"score": -0.1}, "must be a number in [0, 1]", id="score-negative"),
        pytest.param({"pass": True, "reason": 3}, "must be a string", id="reason-not-str"),
    ],
)
def test_bad_return_values_are_errors(value: object, needle: str) -> None:
    """A value that is no verdict is an assertion error (never a pass), saying what came back."""
    outcome = outcome_of(value)
    assert outcome.error
    assert not outcome.passed
    assert needle in outcome.detail


def test_an_exception_is_an_error_with_its_type_and_message() -> None:
    """A check that raises gives error=True with the exception's type and message."""

    def broken(completion: Completion, variables: Mapping[str, Any]) -> bool:
        raise KeyError("city")

    outcome = run_check(broken, ANSWER, {})
    assert (outcome.passed, outcome.error, outcome.detail) == (False, True, "KeyError: 'city'")


def test_the_check_gets_the_completion_and_the_vars() -> None:
    """The completion and the row's vars arrive as the two arguments, through evaluate."""
    seen: list[tuple[Completion, Mapping[str, Any]]] = []

    def capital(completion: Completion, variables: Mapping[str, Any]) -> dict[str, object]:
        seen.append((completion, variables))
        ok = completion.choices[0].text == variables["capital"]
        return {"pass": ok, "reason": f"want {variables['capital']}"}

    expect = parse_expect({"contains": "Par", "python": "checks:capital"})
    expect = dataclasses.replace(expect, check=capital)
    outcomes = evaluate(
        expect, ANSWER, ttft_s=None, duration_s=None, cost_usd=None, variables={"capital": "Paris"}
    )
    assert [(o.name, o.passed, o.detail) for o in outcomes] == [
        ("contains", True, "all found"),
        ("python", True, "want Paris"),
    ]
    assert seen == [(ANSWER, {"capital": "Paris"})]


def test_an_unloaded_check_is_an_error_not_a_pass() -> None:
    """parse_job imports no Python: its check reports an error rather than passing silently."""
    outcomes = evaluate(
        parse_expect({"python": "checks:capital"}), ANSWER, ttft_s=None, duration_s=None, cost_usd=None
    )
    assert outcomes[0].error
    assert "not loaded" in outcomes[0].detail


@pytest.mark.parametrize(
    ("table", "key", "needle"),
    [
        pytest.param({"python": "checks"}, "python", '"module:function"', id="no-function"),
        pytest.param({"python": "../x:f"}, "python", '"module:function"', id="path"),
        pytest.param({"python": 3}, "python", '"module:function"', id="not-string"),
        pytest.param({"contains": "x", "pass_rate": 0}, "pass_rate", "more than 0", id="rate-zero"),
        pytest.param({"contains": "x", "pass_rate": 1.2}, "pass_rate", "at most 1", id="rate-high"),
        pytest.param({"contains": "x", "pass_rate": True}, "pass_rate", "a number", id="rate-bool"),
        pytest.param({"pass_rate": 0.8}, "pass_rate", "add one", id="rate-alone"),
    ],
)
def test_bad_python_and_pass_rate_name_their_key(table: dict[str, object], key: str, needle: str) -> None:
    """An invalid python reference or pass_rate is a load error naming the key and the fix."""
    assert any(p.startswith(f"{key}:") for p in validate_expect(table))
    with pytest.raises(ConfigError) as caught:
        parse_expect(table)
    assert caught.value.key == key
    assert needle in (caught.value.fix or "")


def test_pass_rate_is_parsed_but_is_no_unit_assertion() -> None:
    """pass_rate is kept on the expectation and is not one of the per-unit keys."""
    expect = parse_expect({"contains": "x", "pass_rate": 0.8, "python": "pkg.checks:f"})
    assert expect.pass_rate == 0.8
    assert expect.python == "pkg.checks:f"
    assert expect.keys == ("contains", "python")
