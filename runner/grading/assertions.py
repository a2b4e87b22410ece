"""Assertions of a job's ``[cases.expect]`` table: parsed once at load, evaluated per result; pure.

The job loader calls :func:`parse_expect`, which turns the table into a typed ``Expectation`` or raises a
``ConfigError`` naming the key and the fix; the engine calls :func:`evaluate` on a unit's final
completion and stores the outcomes with the result. Text assertions read the first choice's answer text.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from typing import TYPE_CHECKING, Any, Final

from runner.errors import ConfigError
from runner.grading import custom
from runner.grading.outcome import AssertionOutcome as AssertionOutcome  # re-exported: callers import it here
from runner.model import FINISH_REASONS
from runner.spec import Expectation, JudgeExpectation, ToolCallExpectation

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from runner.model import Choice, Completion

EXPECT_KEYS: Final = (
    "contains",
    "not_contains",
    "regex",
    "equals",
    "json_valid",
    "tool_call",
    "finish_reason",
    "max_ttft_s",
    "max_duration_s",
    "max_cost_usd",
    "judge",  # graded by a judge provider's request after the unit's final result (runner.grading.judge)
    "python",
    "pass_rate",  # not a per-unit assertion: judged over a case's repeats (runner.grading.rates)
)
# A judged unit's ``judge`` outcome until its grading unit answers.
PENDING_JUDGE: Final = AssertionOutcome(name="judge", passed=False, pending=True, detail="grading pending")
# The JSON-schema subset tool_call.arguments may use. Annotation keywords are accepted and ignored;
# any other keyword is a problem, so a schema never silently checks less than its author thinks.
SCHEMA_KEYWORDS: Final = ("type", "properties", "required", "enum", "items", "additionalProperties")
SCHEMA_ANNOTATIONS: Final = ("title", "description", "default", "examples", "$schema", "$comment")
SCHEMA_TYPES: Final = ("object", "array", "string", "number", "integer", "boolean", "null")


# --- validation ------------------------------------------------------------------------------------


def _strings(value: object) -> tuple[str, ...] | None:
    """A string or a non-empty list of strings as a tuple; None when it is neither."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    return None


def _is_number(value: object) -> bool:
    # bool is an int subclass; `max_ttft_s = true` is a mistake, not 1 second.
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def validate_schema(schema: object, path: str) -> list[str]:
    """Problems of a JSON schema written in the supported subset, each naming its ``path``."""
    if not isinstance(schema, dict):
        return [f"{path}: a JSON schema must be a table/object, got {type(schema).__name__}"]
    problems: list[str] = []
    for key in schema:
        if key not in SCHEMA_KEYWORDS and key not in SCHEMA_ANNOTATIONS:
            problems.append(
                f"{path}.{key}: unsupported JSON-schema keyword (supported: {', '.join(SCHEMA_KEYWORDS)})"
            )
    if "type" in schema:
        types = _strings(schema["type"])
        if types is None or any(t not in SCHEMA_TYPES for t in types):
            problems.append(f"{path}.type: must be one of {', '.join(SCHEMA_TYPES)} (or a list of them)")
    properties = schema.get("properties", {})
    if not isinstance(properties, dict):
        problems.append(f"{path}.properties: must be a table/object of schemas")
    else:
        for name, sub in properties.items():
            problems += validate_schema(sub, f"{path}.properties.{name}")
    if "required" in schema and (
        not isinstance(schema["required"], list) or not all(isinstance(r, str) for r in schema["required"])
    ):
        problems.append(f"{path}.required: must be a list of property names")
    if "enum" in schema and (not isinstance(schema["enum"], list) or not schema["enum"]):
        problems.append(f"{path}.enum: must be a non-empty list of allowed values")
    if "items" in schema:
        problems += validate_schema(schema["items"], f"{path}.items")
    extra = schema.get("additionalProperties", True)
    if not isinstance(extra, bool):
        problems += validate_schema(extra, f"{path}.additionalProperties")
    return problems


def _check_tool_call_spec(value: object) -> list[str]:
    if not isinstance(value, dict):
        return ["tool_call: must be a table with `name` and/or `arguments` (a JSON schema)"]
    problems = [
        f"tool_call.{key}: unknown key (expected `name`, `arguments`)"
        for key in value
        if key not in ("name", "arguments")
    ]
    if not value:
        problems.append("tool_call: give at least `name` or `arguments`")
    if "name" in value and (not isinstance(value["name"], str) or not value["name"]):
        problems.append("tool_call.name: must be a non-empty string")
    if "arguments" in value:
        problems += validate_schema(value["arguments"], "tool_call.arguments")
    return problems


_JUDGE_KEYS: Final = ("provider", "rubric", "threshold", "prompt")


def _check_judge_spec(value: object) -> list[str]:
    """Problems of a ``judge`` table; that its provider is a judge of the job is checked by the loader."""
    if not isinstance(value, dict):
        return ['judge: must be a table: {provider = "<judge provider>", rubric = "..."}']
    problems = [
        f"judge.{key}: unknown key (expected {', '.join(_JUDGE_KEYS)})"
        for key in value
        if key not in _JUDGE_KEYS
    ]
    for key in ("provider", "rubric"):
        if not isinstance(value.get(key), str) or not value[key].strip():
            problems.append(f"judge.{key}: required, a non-empty string")
    threshold = value.get("threshold")
    if threshold is not None and (not _is_number(threshold) or not 0 <= threshold <= 1):
        problems.append("judge.threshold: must be a number from 0 to 1 (a score at or above it passes)")
    if "prompt" in value and (not isinstance(value["prompt"], str) or not value["prompt"].strip()):
        problems.append("judge.prompt: must be a non-empty template string")
    return problems


def validate_expect(spec: object) -> list[str]:
    """Every problem of one ``[cases.expect]`` table, each naming its key; empty when it is valid."""
    if not isinstance(spec, dict):
        return [f"expect: must be a table/object, got {type(spec).__name__}"]
    problems: list[str] = []
    for key, value in spec.items():
        if key not in EXPECT_KEYS:
            close = difflib.get_close_matches(key, EXPECT_KEYS, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(EXPECT_KEYS)}"
            problems.append(f"{key}: unknown assertion ({hint})")
        elif key in ("contains", "not_contains"):
            if _strings(value) is None:
                problems.append(f"{key}: must be a string or a non-empty list of strings")
        elif key == "regex":
            patterns = _strings(value)
            if patterns is None:
                problems.append("regex: must be a pattern or a non-empty list of patterns")
            else:
                for pattern in patterns:
                    try:
                        re.compile(pattern)
                    except re.error as exc:
                        problems.append(
                            f"regex: {pattern!r} is not a valid regular expression ({exc}); fix the pattern"
                        )
        elif key == "equals":
            if not isinstance(value, str):
                problems.append("equals: must be a string")
        elif key == "json_valid":
            if not isinstance(value, bool):
                problems.append("json_valid: must be true or false")
        elif key == "tool_call":
            problems += _check_tool_call_spec(value)
        elif key == "python":
            problems += custom.check_reference(value)
        elif key == "judge":
            problems += _check_judge_spec(value)
        elif key == "pass_rate":
            if not _is_number(value) or not 0 < value <= 1:
                problems.append("pass_rate: must be a number more than 0 and at most 1 (0.8: 80% of repeats)")
        elif key == "finish_reason":
            reasons = _strings(value)
            if reasons is None or any(r not in FINISH_REASONS for r in reasons):
                problems.append(f"finish_reason: must be one of {', '.join(FINISH_REASONS)} (or a list)")
        elif not _is_number(value) or value <= 0:
            problems.append(f"{key}: must be a number more than 0")
    if "pass_rate" in spec and not any(key in EXPECT_KEYS for key in spec if key != "pass_rate"):
        problems.append("pass_rate: rates the repeats that pass their assertions; add one (contains, ...)")
    return problems


def parse_expect(raw: object) -> Expectation:
    """One ``[cases.expect]`` table as a typed ``Expectation``; the table is kept as written.

    Raises:
        ConfigError: the table is invalid. ``key`` is the offending key inside the table (None for the
            table itself), ``fix`` says what is wrong with it; the loader adds the file and line.
    """
    problems = validate_expect(raw)
    if problems or not isinstance(raw, dict):
        key, _, problem = problems[0].partition(": ")
        raise ConfigError("invalid assertion", key=None if key == "expect" else key, fix=problem)
    tool_call = raw.get("tool_call")
    judge = raw.get("judge")
    return Expectation(
        contains=_strings(raw.get("contains")),
        not_contains=_strings(raw.get("not_contains")),
        regex=_strings(raw.get("regex")),
        equals=raw.get("equals"),
        json_valid=raw.get("json_valid"),
        tool_call=None
        if tool_call is None
        else ToolCallExpectation(name=tool_call.get("name"), arguments=tool_call.get("arguments")),
        finish_reason=_strings(raw.get("finish_reason")),
        max_ttft_s=_optional_float(raw.get("max_ttft_s")),
        max_duration_s=_optional_float(raw.get("max_duration_s")),
        max_cost_usd=_optional_float(raw.get("max_cost_usd")),
        judge=None
        if judge is None
        else JudgeExpectation(
            provider=judge["provider"],
            rubric=judge["rubric"],
            threshold=_optional_float(judge.get("threshold")),
            prompt=judge.get("prompt"),
        ),
        python=raw.get("python"),
        pass_rate=_optional_float(raw.get("pass_rate")),
        table=dict(raw),
    )


def _optional_float(value: float | None) -> float | None:
    return None if value is None else float(value)


# --- JSON-schema subset ----------------------------------------------------------------------------


def _type_matches(value: object, name: str) -> bool:
    checks: dict[str, Callable[[object], bool]] = {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "number": _is_number,
        "integer": lambda v: _is_number(v) and float(v).is_integer(),  # type: ignore[arg-type]
        "boolean": lambda v: isinstance(v, bool),
        "null": lambda v: v is None,
    }
    return checks[name](value)


def schema_errors(value: object, schema: Mapping[str, Any], path: str = "$") -> list[str]:
    """Where ``value`` breaks a (validated) subset schema, as ``path: reason`` strings."""
    if "type" in schema:
        types = _strings(schema["type"]) or ()
        if not any(_type_matches(value, t) for t in types):
            return [f"{path}: expected {' or '.join(types)}, got {_json_type(value)}"]
    errors: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {json.dumps(value)} is not one of {json.dumps(schema['enum'])}")
    if isinstance(value, dict):
        properties: Mapping[str, Any] = schema.get("properties", {})
        errors += [
            f"{path}: missing required {name!r}" for name in schema.get("required", ()) if name not in value
        ]
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            if name in properties:
                errors += schema_errors(item, properties[name], f"{path}.{name}")
            elif extra is False:
                errors.append(f"{path}: unexpected property {name!r}")
            elif isinstance(extra, dict):
                errors += schema_errors(item, extra, f"{path}.{name}")
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            errors += schema_errors(item, schema["items"], f"{path}[{index}]")
    return errors


def _json_type(value: object) -> str:
    for name in SCHEMA_TYPES:
        if name != "integer" and _type_matches(value, name):
            return name
    return type(value).__name__


# --- evaluation ------------------------------------------------------------------------------------


def _excerpt(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")


def _eval_tool_call(spec: ToolCallExpectation, choice: Choice | None) -> AssertionOutcome:
    calls = choice.tool_calls if choice else ()
    wanted = spec.name
    named = [c for c in calls if wanted is None or c.name == wanted]
    if not named:
        seen = ", ".join(c.name for c in calls) or "none"
        return AssertionOutcome(
            name="tool_call", passed=False, detail=f"no call to {wanted!r} (calls: {seen})"
        )
    if spec.arguments is None:
        return AssertionOutcome(name="tool_call", passed=True, detail=f"called {named[0].name!r}")
    reasons: list[str] = []
    for call in named:
        try:
            arguments = json.loads(call.arguments)
        except ValueError as exc:
            reasons.append(f"{call.name}: arguments are not JSON ({exc})")
            continue
        errors = schema_errors(arguments, spec.arguments)
        if not errors:
            return AssertionOutcome(name="tool_call", passed=True, detail=f"{call.name!r} arguments match")
        reasons.append(f"{call.name}: " + "; ".join(errors[:5]))
    return AssertionOutcome(name="tool_call", passed=False, detail=" | ".join(reasons))


def _eval_limit(name: str, limit: float, measured: float | None, unit: str) -> AssertionOutcome:
    if measured is None:
        return AssertionOutcome(name=name, passed=False, detail=f"not measured (limit {limit:g} {unit})")
    passed = measured <= limit
    sign = "<=" if passed else ">"
    return AssertionOutcome(name=name, passed=passed, detail=f"{measured:.4g} {unit} {sign} {limit:g} {unit}")


# Limit key -> (the limit, what was measured, its unit).
_Limits = dict[str, tuple[float | None, float | None, str]]


def _eval_key(key: str, expect: Expectation, choice: Choice | None, limits: _Limits) -> AssertionOutcome:
    """The outcome of one assertion key (one of ``expect.keys``) but ``python``."""
    text = choice.text if choice else ""
    if key == "contains":
        missing = [s for s in expect.contains or () if s not in text]
        detail = f"missing {', '.join(map(repr, missing))}" if missing else "all found"
        return AssertionOutcome(name=key, passed=not missing, detail=detail)
    if key == "not_contains":
        found = [s for s in expect.not_contains or () if s in text]
        detail = f"found {', '.join(map(repr, found))}" if found else "none found"
        return AssertionOutcome(name=key, passed=not found, detail=detail)
    if key == "regex":
        failed = [p for p in expect.regex or () if re.search(p, text) is None]
        detail = f"no match for {', '.join(map(repr, failed))}" if failed else "all matched"
        return AssertionOutcome(name=key, passed=not failed, detail=detail)
    if key == "equals":
        # Surrounding whitespace is formatting, not content: models end answers with a newline.
        passed = text.strip() == (expect.equals or "").strip()
        detail = "equal" if passed else f"got {_excerpt(text.strip())}"
        return AssertionOutcome(name=key, passed=passed, detail=detail)
    if key == "json_valid":
        try:
            json.loads(text)
            is_json, why = True, "valid JSON"
        except ValueError as exc:
            is_json, why = False, f"not JSON: {exc}"
        return AssertionOutcome(name=key, passed=is_json is expect.json_valid, detail=why)
    if key == "tool_call" and expect.tool_call is not None:
        return _eval_tool_call(expect.tool_call, choice)
    if key == "finish_reason":
        got = choice.finish_reason if choice else None
        passed = got in (expect.finish_reason or ())
        return AssertionOutcome(name=key, passed=passed, detail=f"finish reason {got!r}")
    limit, measured, unit = limits[key]  # max_ttft_s, max_duration_s or max_cost_usd: set, so not None
    return _eval_limit(key, limit or 0.0, measured, unit)


def evaluate(
    expect: Expectation,
    completion: Completion | None,
    *,
    ttft_s: float | None,
    duration_s: float | None,
    cost_usd: float | None,
    variables: Mapping[str, Any] | None = None,
) -> tuple[AssertionOutcome, ...]:
    """Check an expectation against a unit's final completion, one outcome per key in table order.

    ``ttft_s`` and ``duration_s`` are the final attempt's; ``cost_usd`` is the unit's total (all its
    attempts). A figure that was never measured fails its limit rather than passing it silently.
    ``variables`` are the case's row vars, handed to a custom check (``python``) with the completion.
    ``judge`` is ``pending`` here: a judge provider's request grades it later (runner.grading.judge),
    and its verdict then replaces this outcome.
    """
    choice = completion.choices[0] if completion and completion.choices else None
    limits: _Limits = {
        "max_ttft_s": (expect.max_ttft_s, ttft_s, "s"),
        "max_duration_s": (expect.max_duration_s, duration_s, "s"),
        "max_cost_usd": (expect.max_cost_usd, cost_usd, "USD"),
    }
    return tuple(
        custom.run_check(expect.check, completion, variables or {})
        if key == "python"
        else PENDING_JUDGE
        if key == "judge"
        else _eval_key(key, expect, choice, limits)
        for key in expect.keys
    )
