"""Custom checks (``[cases.expect] python = "module:function"``): the reference's shape, and what a
check's return value means as an ``AssertionOutcome``. Pure: the job loader imports the function
(runner.job.checks) and grading only calls the callable it is handed.

A check returns a bool (its verdict), a number in [0, 1] (a score, passing at or above
``PASS_SCORE``), or a mapping ``{"pass": bool, "score": number, "reason": str}`` (each key optional,
but ``pass`` or ``score`` given). Anything else, or an exception, is an assertion error: the check
could not judge the answer, which never counts as a pass.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any, Final

from runner.grading.outcome import AssertionOutcome

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from runner.model import Completion

# A score alone passes at or above this: the midpoint, so a check that returns a probability of
# "correct" passes when it leans that way. A check that wants another bar returns {"pass": ...}.
PASS_SCORE: Final = 0.5
# A reason or an exception message longer than this is cut: it is stored with every unit.
REASON_LIMIT: Final = 2000
_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
_REFERENCE = re.compile(rf"^({_IDENTIFIER}(?:\.{_IDENTIFIER})*):({_IDENTIFIER})$")
_MAPPING_KEYS: Final = ("pass", "score", "reason")


def split_reference(value: object) -> tuple[str, str] | None:
    """``(module, function)`` of a ``"module:function"`` reference; None when it is not one."""
    match = _REFERENCE.match(value) if isinstance(value, str) else None
    return (match.group(1), match.group(2)) if match else None


def check_reference(value: object) -> list[str]:
    """The problems of ``[cases.expect] python``, each naming the key (empty when it is valid)."""
    if split_reference(value) is None:
        return [
            'python: must be "module:function", a Python file beside the job file and a function in it '
            '(python = "checks:is_capital" calls is_capital from checks.py)'
        ]
    return []


def run_check(
    check: Callable[[Completion, Mapping[str, Any]], object] | None,
    completion: Completion | None,
    variables: Mapping[str, Any],
) -> AssertionOutcome:
    """Call a custom check on a unit's completion and the row's vars, and read its verdict."""
    if check is None:
        # parse_job and a stored spec read back hold no function: only load_job imports Python.
        return _error("the check's function was not loaded (runner.load_job imports it)")
    if completion is None:
        return _error("no completion to check")
    try:
        value = check(completion, variables)
    except Exception as exc:  # the user's code: whatever it raises is this assertion's error
        return _error(f"{type(exc).__name__}: {exc}")
    return outcome_of(value)


def outcome_of(value: object) -> AssertionOutcome:
    """What a check's return value means (see the module docstring)."""
    if isinstance(value, bool):
        return AssertionOutcome(name="python", passed=value, detail=f"returned {value}")
    if _is_number(value):
        score = float(value)  # type: ignore[arg-type]
        if not 0.0 <= score <= 1.0:
            return _error(f"returned the score {score!r}, outside [0, 1]")
        passed = score >= PASS_SCORE
        sign = ">=" if passed else "<"
        return AssertionOutcome(
            name="python", passed=passed, score=score, detail=f"score {score:g} {sign} {PASS_SCORE:g}"
        )
    if isinstance(value, dict):
        return _outcome_of_mapping(value)
    return _error(
        f'returned {type(value).__name__}: return a bool, a score in [0, 1] or {{"pass": .., "score": .., '
        '"reason": ..}'
    )


def _outcome_of_mapping(value: Mapping[Any, Any]) -> AssertionOutcome:
    unknown = [repr(k) for k in value if k not in _MAPPING_KEYS]
    if unknown:
        return _error(f"returned unknown keys {', '.join(unknown)} (known: pass, score, reason)")
    verdict, score, reason = value.get("pass"), value.get("score"), value.get("reason")
    if verdict is None and score is None:
        return _error('returned a mapping without "pass" or "score"')
    if verdict is not None and not isinstance(verdict, bool):
        return _error(f'returned "pass" = {verdict!r}: it must be true or false')
    if score is not None and not (_is_number(score) and 0.0 <= float(score) <= 1.0):
        return _error(f'returned "score" = {score!r}: it must be a number in [0, 1]')
    if reason is not None and not isinstance(reason, str):
        return _error(f'returned "reason" = {type(reason).__name__}: it must be a string')
    number = None if score is None else float(score)
    passed = verdict if verdict is not None else (number or 0.0) >= PASS_SCORE
    detail = reason if reason else ("passed" if passed else "failed")
    return AssertionOutcome(name="python", passed=passed, score=number, detail=_cut(detail))


def _error(detail: str) -> AssertionOutcome:
    return AssertionOutcome(name="python", passed=False, error=True, detail=_cut(detail))


def _cut(text: str) -> str:
    return text if len(text) <= REASON_LIMIT else text[:REASON_LIMIT] + "…"


def _is_number(value: object) -> bool:
    # bool is an int subclass, handled before; NaN and infinities are no score.
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
