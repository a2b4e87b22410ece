"""The judge's verdict: the first JSON object of a judge provider's answer -> the ``judge`` outcome. Pure.

A judge answers in prose as often as not: the verdict object may sit in a code fence, after a sentence,
or among other braces. The first ``{...}`` that decodes as a JSON object is the verdict; an answer
without one, or with one that says neither ``pass`` nor ``score``, is an assertion ``error``, never a pass.
"""

from __future__ import annotations

import json
import math
from typing import Any, Final

from runner.grading.outcome import AssertionOutcome

NAME: Final = "judge"
# A reason longer than this is cut: it is stored with every graded unit and shown in reports.
REASON_MAX: Final = 500
_DECODER: Final = json.JSONDecoder()


def first_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in ``text`` (code fences and text around it tolerated), or None.

    Every ``{`` is tried in order with a raw decode, so a brace in prose before the verdict (or an
    object that is not valid JSON) is skipped rather than ending the search.
    """
    start = text.find("{")
    while start != -1:
        try:
            value, _ = _DECODER.raw_decode(text, start)
        except ValueError:
            value = None
        if isinstance(value, dict):
            return value
        start = text.find("{", start + 1)
    return None


def verdict_outcome(answer: str, *, threshold: float | None) -> AssertionOutcome:
    """The ``judge`` outcome of a judge's answer text.

    With ``threshold``, a ``score`` at or above it passes (a verdict without a score is an error);
    without one, the boolean ``pass`` field decides. A score outside [0, 1] is no score: an error.
    """
    verdict = first_json_object(answer)
    if verdict is None:
        return _error(f"the judge's answer holds no JSON object: {_excerpt(answer)}")
    reason = _reason(verdict.get("reason"))
    score = verdict.get("score")
    if score is not None and not _is_score(score):
        return _error(f"the judge's score {score!r} is not a number from 0 to 1 ({reason})")
    score = None if score is None else float(score)
    if threshold is not None:
        if score is None:
            return _error(f"the judge gave no score to compare with the threshold {threshold:g} ({reason})")
        passed = score >= threshold
        sign = ">=" if passed else "<"
        return AssertionOutcome(
            name=NAME, passed=passed, score=score, detail=f"score {score:g} {sign} {threshold:g}: {reason}"
        )
    verdict_pass = verdict.get("pass")
    if isinstance(verdict_pass, bool):
        return AssertionOutcome(name=NAME, passed=verdict_pass, score=score, detail=reason)
    if verdict_pass is not None:
        return _error(f"the judge's pass {verdict_pass!r} is not true or false ({reason})")
    return _error(f"the judge's verdict has neither pass nor score ({reason})")


def failed_grading(message: str) -> AssertionOutcome:
    """The ``judge`` outcome when the grading request itself failed (after its retries)."""
    return _error(f"the grading request failed: {message}")


def _error(detail: str) -> AssertionOutcome:
    return AssertionOutcome(name=NAME, passed=False, error=True, detail=detail[:REASON_MAX])


def _is_score(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0 <= value <= 1
    )


def _reason(value: object) -> str:
    if value is None:
        return "no reason given"
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= REASON_MAX else text[: REASON_MAX - 1] + "…"


def _excerpt(text: str, limit: int = 120) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")
