"""Assertions of [cases.expect]: every key passes and fails, and bad specs name their key."""

from __future__ import annotations

import pytest

from runner.errors import ConfigError
from runner.grading.assertions import (
    AssertionOutcome,
    evaluate,
    parse_expect,
    schema_errors,
    validate_expect,
)
from runner.model import Choice, Completion, ToolCall
from runner.spec import Expectation, ToolCallExpectation

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "unit": {"enum": ["c", "f"]},
        "days": {"type": "integer"},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["city"],
    "additionalProperties": False,
}


def _completion(
    text: str = "", *, calls: tuple[ToolCall, ...] = (), finish: str | None = "stop"
) -> Completion:
    choice = Choice(index=0, text=text, tool_calls=calls, finish_reason=finish)  # type: ignore[arg-type]
    return Completion(complete=True, choices=(choice,))


def _one(
    expect: dict[str, object], completion: Completion | None, **figures: float | None
) -> AssertionOutcome:
    measured: dict[str, float | None] = {"ttft_s": 0.5, "duration_s": 2.0, "cost_usd": 0.01, **figures}
    outcomes = evaluate(
        parse_expect(expect),
        completion,
        ttft_s=measured["ttft_s"],
        duration_s=measured["duration_s"],
        cost_usd=measured["cost_usd"],
    )
    assert len(outcomes) == 1
    return outcomes[0]


def _call(arguments: str, name: str = "get_weather") -> Completion:
    return _completion(calls=(ToolCall(id="c1", name=name, arguments=arguments),), finish="tool_calls")


CASES = [
    pytest.param({"contains": "Tokyo"}, _completion("Sunny in Tokyo"), {}, True, id="contains-pass"),
    pytest.param(
        {"contains": ["Tokyo", "rain"]}, _completion("Sunny in Tokyo"), {}, False, id="contains-fail"
    ),
    pytest.param({"not_contains": "sorry"}, _completion("Sunny"), {}, True, id="not_contains-pass"),
    pytest.param(
        {"not_contains": ["x", "sorry"]}, _completion("I'm sorry"), {}, False, id="not_contains-fail"
    ),
    pytest.param({"regex": r"\d+ ?°C"}, _completion("It is 21 °C"), {}, True, id="regex-pass"),
    pytest.param({"regex": r"^\d+$"}, _completion("twenty"), {}, False, id="regex-fail"),
    pytest.param({"equals": "42"}, _completion("42\n"), {}, True, id="equals-pass-trailing-newline"),
    pytest.param({"equals": "42"}, _completion("4242"), {}, False, id="equals-fail"),
    pytest.param({"json_valid": True}, _completion('{"a": [1, 2]}'), {}, True, id="json_valid-pass"),
    pytest.param({"json_valid": True}, _completion('{"a": [1, 2}'), {}, False, id="json_valid-fail"),
    pytest.param({"json_valid": False}, _completion("plain words"), {}, True, id="json_valid-false-pass"),
    pytest.param({"tool_call": {"name": "get_weather"}}, _call("{}"), {}, True, id="tool_call-name-pass"),
    pytest.param({"tool_call": {"name": "get_time"}}, _call("{}"), {}, False, id="tool_call-name-fail"),
    pytest.param(
        {"tool_call": {"name": "get_weather"}}, _completion("no tools"), {}, False, id="tool_call-none"
    ),
    pytest.param(
        {"tool_call": {"name": "get_weather", "arguments": WEATHER_SCHEMA}},
        _call('{"city": "Tokyo", "unit": "c", "days": 3, "tags": ["a"]}'),
        {},
        True,
        id="tool_call-schema-pass",
    ),
    pytest.param(
        {"tool_call": {"arguments": WEATHER_SCHEMA}},
        _call('{"unit": "k"}'),
        {},
        False,
        id="tool_call-schema-fail",
    ),
    pytest.param(
        {"tool_call": {"arguments": WEATHER_SCHEMA}},
        _call('{"city": "To'),
        {},
        False,
        id="tool_call-args-not-json",
    ),
    pytest.param({"finish_reason": "stop"}, _completion("x"), {}, True, id="finish_reason-pass"),
    pytest.param({"finish_reason": ["length"]}, _completion("x"), {}, False, id="finish_reason-fail"),
    pytest.param({"max_ttft_s": 1}, _completion("x"), {"ttft_s": 0.4}, True, id="max_ttft_s-pass"),
    pytest.param({"max_ttft_s": 1}, _completion("x"), {"ttft_s": 1.5}, False, id="max_ttft_s-fail"),
    pytest.param({"max_ttft_s": 1}, _completion("x"), {"ttft_s": None}, False, id="max_ttft_s-unmeasured"),
    pytest.param(
        {"max_duration_s": 10}, _completion("x"), {"duration_s": 9.9}, True, id="max_duration_s-pass"
    ),
    pytest.param(
        {"max_duration_s": 10}, _completion("x"), {"duration_s": 10.1}, False, id="max_duration_s-fail"
    ),
    pytest.param({"max_cost_usd": 0.02}, _completion("x"), {"cost_usd": 0.01}, True, id="max_cost_usd-pass"),
    pytest.param({"max_cost_usd": 0.02}, _completion("x"), {"cost_usd": 0.03}, False, id="max_cost_usd-fail"),
    pytest.param({"contains": "x"}, None, {}, False, id="no-completion-fails"),
]


@pytest.mark.parametrize(("expect", "completion", "figures", "passed"), CASES)
def test_each_key_passes_and_fails(
    expect: dict[str, object], completion: Completion | None, figures: dict[str, float | None], passed: bool
) -> None:
    """Each assertion key gives the expected outcome, named after the key, with a detail."""
    assert not validate_expect(expect)
    outcome = _one(expect, completion, **figures)
    assert outcome.name == next(iter(expect))
    assert outcome.passed is passed
    assert outcome.detail


def test_outcomes_keep_the_spec_order_and_round_trip() -> None:
    """evaluate returns one outcome per key in spec order, and outcomes survive to_dict/from_dict."""
    expect = {"contains": "a", "finish_reason": "stop", "max_ttft_s": 2}
    outcomes = evaluate(parse_expect(expect), _completion("abc"), ttft_s=1.0, duration_s=1.0, cost_usd=None)
    assert [o.name for o in outcomes] == list(expect)
    assert tuple(AssertionOutcome.from_dict(o.to_dict()) for o in outcomes) == outcomes


def test_schema_errors_say_where() -> None:
    """Schema mismatches are reported with a JSON path and the reason."""
    errors = schema_errors({"city": 3, "extra": 1, "tags": ["a", 2]}, WEATHER_SCHEMA)
    assert "$.city: expected string, got number" in errors
    assert "$: unexpected property 'extra'" in errors
    assert "$.tags[1]: expected string, got number" in errors


INVALID = [
    pytest.param({"contain": "x"}, "contain: unknown assertion", id="unknown-key"),
    pytest.param({"contains": 3}, "contains: must be a string", id="contains-type"),
    pytest.param({"not_contains": []}, "not_contains: must be a string", id="not_contains-empty"),
    pytest.param(
        {"regex": "([a-z]"}, "regex: '([a-z]' is not a valid regular expression", id="regex-invalid"
    ),
    pytest.param({"equals": 42}, "equals: must be a string", id="equals-type"),
    pytest.param({"json_valid": "yes"}, "json_valid: must be true or false", id="json_valid-type"),
    pytest.param({"tool_call": "get_weather"}, "tool_call: must be a table", id="tool_call-type"),
    pytest.param({"tool_call": {}}, "tool_call: give at least", id="tool_call-empty"),
    pytest.param({"tool_call": {"nam": "x"}}, "tool_call.nam: unknown key", id="tool_call-unknown-key"),
    pytest.param(
        {"tool_call": {"name": ""}}, "tool_call.name: must be a non-empty string", id="tool_call-name"
    ),
    pytest.param(
        {"tool_call": {"arguments": {"type": "obj"}}},
        "tool_call.arguments.type: must be one of",
        id="schema-type",
    ),
    pytest.param(
        {"tool_call": {"arguments": {"properties": {"a": {"minLength": 2}}}}},
        "tool_call.arguments.properties.a.minLength: unsupported JSON-schema keyword",
        id="schema-unsupported-keyword",
    ),
    pytest.param(
        {"tool_call": {"arguments": {"required": "city"}}},
        "tool_call.arguments.required: must be a list",
        id="schema-req",
    ),
    pytest.param(
        {"tool_call": {"arguments": {"enum": []}}}, "tool_call.arguments.enum: must be", id="schema-enum"
    ),
    pytest.param({"finish_reason": "done"}, "finish_reason: must be one of", id="finish_reason-value"),
    pytest.param({"max_ttft_s": 0}, "max_ttft_s: must be a number more than 0", id="max_ttft_s-zero"),
    pytest.param(
        {"max_duration_s": "5"}, "max_duration_s: must be a number more than 0", id="max_duration_s-type"
    ),
    pytest.param(
        {"max_cost_usd": True}, "max_cost_usd: must be a number more than 0", id="max_cost_usd-bool"
    ),
    pytest.param(["contains"], "expect: must be a table", id="not-a-table"),
]


@pytest.mark.parametrize(("spec", "problem"), INVALID)
def test_invalid_specs_name_the_key(spec: object, problem: str) -> None:
    """An invalid expect spec yields a problem that starts with the offending key."""
    problems = validate_expect(spec)
    assert any(p.startswith(problem) for p in problems), problems


EVERY_KEY = {
    "contains": ["a"],
    "not_contains": "b",
    "regex": ["^a"],
    "equals": "a",
    "json_valid": False,
    "tool_call": {"name": "f", "arguments": {**WEATHER_SCHEMA, "description": "weather args"}},
    "finish_reason": ["stop", "tool_calls"],
    "max_ttft_s": 1.5,
    "max_duration_s": 30,
    "max_cost_usd": 0.5,
}


def test_valid_spec_with_every_key_has_no_problems() -> None:
    """A spec using every key at once, annotations in its schema included, is valid."""
    assert validate_expect(EVERY_KEY) == []


def test_parse_expect_gives_one_typed_field_per_key() -> None:
    """parse_expect turns every key into its typed field and keeps the table as written, in order."""
    expect = parse_expect(EVERY_KEY)
    assert expect == Expectation(
        contains=("a",),
        not_contains=("b",),
        regex=("^a",),
        equals="a",
        json_valid=False,
        tool_call=ToolCallExpectation(name="f", arguments={**WEATHER_SCHEMA, "description": "weather args"}),
        finish_reason=("stop", "tool_calls"),
        max_ttft_s=1.5,
        max_duration_s=30.0,
        max_cost_usd=0.5,
    )
    assert isinstance(expect.max_duration_s, float)
    assert expect.table == EVERY_KEY
    assert expect.keys == tuple(EVERY_KEY)


@pytest.mark.parametrize(("spec", "problem"), INVALID)
def test_parse_expect_raises_the_first_problem_with_its_key(spec: object, problem: str) -> None:
    """parse_expect raises a ConfigError whose key and fix are the problem validate_expect names."""
    with pytest.raises(ConfigError) as info:
        parse_expect(spec)
    key, _, fix = validate_expect(spec)[0].partition(": ")
    assert info.value.key == (None if key == "expect" else key)
    assert info.value.fix == fix
    assert str(info.value.args[0]) == "invalid assertion"


def test_an_empty_expectation_checks_nothing() -> None:
    """An empty expect table is falsy and yields no outcomes; a record built in code keeps field order."""
    empty = parse_expect({})
    assert not empty
    assert evaluate(empty, _completion("x"), ttft_s=None, duration_s=None, cost_usd=None) == ()
    built = Expectation(max_ttft_s=1.0, contains=("x",))
    assert built
    assert built.keys == ("contains", "max_ttft_s")


def test_a_graded_outcome_round_trips_its_score_and_error() -> None:
    graded = AssertionOutcome(name="judge", passed=False, detail="too vague", score=0.25)
    unjudged = AssertionOutcome(name="judge", passed=False, detail="no verdict in the answer", error=True)
    for outcome in (graded, unjudged):
        assert AssertionOutcome.from_dict(outcome.to_dict()) == outcome
    # An outcome stored before score / error existed reads back as a plain string check.
    assert AssertionOutcome.from_dict({"name": "contains", "passed": True, "detail": "ok"}).score is None


def test_an_unjudged_outcome_cannot_pass() -> None:
    with pytest.raises(ValueError, match="cannot pass"):
        AssertionOutcome(name="python", passed=True, detail="raised", error=True)
