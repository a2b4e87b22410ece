"""``AssertionOutcome``: what one checked assertion of a unit says, as stored, exported and reported. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping


@dataclass(frozen=True, slots=True, kw_only=True)
class AssertionOutcome:
    """One checked assertion: ``name`` is the expect key, ``detail`` says what was seen (exports call it
    the reason).

    ``score`` is a graded assertion's score in [0, 1] (a judge's or a custom check's), None for the
    string checks. ``error`` marks an assertion that could not be judged (a judge answer without a
    verdict, a custom check that raised): it never passes, and reports tell it apart from a failure.
    ``pending`` marks a ``judge`` outcome whose grading request has not answered yet: neither a pass
    nor a failure (the unit's verdict is "not done" until the judge's verdict replaces it).
    """

    name: str
    passed: bool
    detail: str
    score: float | None = None
    error: bool = False
    pending: bool = False

    def __post_init__(self) -> None:
        if self.error and self.passed:
            raise ValueError("an assertion that could not be judged cannot pass")
        if self.pending and (self.passed or self.error):
            raise ValueError("an assertion still being graded has no outcome yet")

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "passed": self.passed, "detail": self.detail}
        # Only when set, so outcomes stored before these fields existed read back unchanged.
        if self.score is not None:
            data["score"] = self.score
        if self.error:
            data["error"] = True
        if self.pending:
            data["pending"] = True
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AssertionOutcome:
        score = data.get("score")
        return cls(
            name=str(data["name"]),
            passed=bool(data["passed"]),
            detail=str(data.get("detail", "")),
            score=float(score) if score is not None else None,
            error=bool(data.get("error", False)),
            pending=bool(data.get("pending", False)),
        )
