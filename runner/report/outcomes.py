"""Which units' assertion outcomes the run report's unit table lists, so a huge run stays a file a
browser opens. Pure."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Protocol

if TYPE_CHECKING:
    from collections.abc import Sequence

    from runner.grading.assertions import AssertionOutcome

# Assertion outcomes listed in the unit table (every outcome is always in the cards shown in full, and
# in `runner export`). Beyond it a unit whose checks all passed shows only its count: a 100,000-unit
# run listing three outcomes a unit would put some 60 MB into the file.
OUTCOME_BUDGET: Final = 20_000


class Graded(Protocol):
    """A unit, or its table row: an id and the assertion outcomes that count."""

    @property
    def id(self) -> int: ...

    @property
    def evaluated(self) -> tuple[AssertionOutcome, ...]: ...


def listed_outcomes(units: Sequence[Graded], budget: int = OUTCOME_BUDGET) -> set[int]:
    """Ids of the units whose outcomes the table lists: all of them within ``budget`` outcomes, else
    those with a check that did not pass, in order, as many as the budget holds."""
    if sum(len(u.evaluated) for u in units) <= budget:
        return {u.id for u in units}
    listed: set[int] = set()
    for unit in units:
        if any(not o.passed for o in unit.evaluated) and len(unit.evaluated) <= budget:
            listed.add(unit.id)
            budget -= len(unit.evaluated)
    return listed


def outcomes_note(listed: int, units: int) -> str | None:
    """What the table says when it lists the outcomes of only ``listed`` of its ``units``."""
    if listed == units:
        return None
    return (
        f"The table lists the checks of {listed:,} of {units:,} units (those with a check that did not "
        "pass); the others show their counts. runner export has every outcome."
    )
