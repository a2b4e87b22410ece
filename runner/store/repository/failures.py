"""What went wrong in a run, per provider: failed units by their final error kind, units with failed
assertions by assertion, and the first few unit keys of each (``runner run``'s end-of-run breakdown)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from sqlalchemy import and_, false, func, select, text

from runner.store.repository.sql import (
    ATTEMPTS,
    CURRENT_RESULT,
    HAS_FAILED_OUTCOME,
    JOB_UNIT,
    RESULTS,
    UNITS,
    transaction,
)
from runner.store.rows import assertions_from_json

if TYPE_CHECKING:
    from collections.abc import Mapping

    from sqlalchemy.orm import Session

# The kind shown for a failed unit that has no attempt to name one (none was stored).
NO_ATTEMPT: Final = "no_attempt"


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderFailures:
    """One provider's failures in a run. Counts are units; ``*_units``: the first few keys, in unit order."""

    provider: str
    failed: int = 0  # units without a result (verdict ``failed``)
    error_kinds: Mapping[str, int] = field(default_factory=dict)  # final attempt's kind -> units, most first
    failed_units: tuple[str, ...] = ()
    failed_assertions: int = 0  # ok units with at least one failed assertion
    assertions: Mapping[str, int] = field(default_factory=dict)  # assertion name -> units failing it
    assertion_units: tuple[str, ...] = ()


def failure_breakdown(session: Session, run_id: str, *, examples: int = 3) -> tuple[ProviderFailures, ...]:
    """Per provider with any failure (in name order): failed units counted by the error kind of their
    final attempt (the last one not superseded), ok units with failed assertions counted by assertion
    name (a unit failing two assertions counts under both), and up to ``examples`` unit keys of each.

    Reads only the run's failed units and the assertion outcomes of its ok ones, in one transaction.
    """
    earlier = ATTEMPTS.alias("earlier")  # the unit's attempts, apart from the one joined
    final_number = (
        select(func.max(earlier.c.number))
        .where(earlier.c.unit_id == UNITS.c.id, earlier.c.superseded == false())
        .correlate(UNITS)
        .scalar_subquery()
    )
    failed_query = (
        select(UNITS.c.provider, UNITS.c.key, ATTEMPTS.c.error_kind)
        .select_from(
            UNITS.outerjoin(
                ATTEMPTS, and_(ATTEMPTS.c.unit_id == UNITS.c.id, ATTEMPTS.c.number == final_number)
            )
        )
        .where(UNITS.c.run_id == run_id, UNITS.c.status == "failed", JOB_UNIT)
        .order_by(UNITS.c.id)
    )
    assertion_query = (
        select(UNITS.c.provider, UNITS.c.key, RESULTS.c.assertions)
        .join(RESULTS, RESULTS.c.unit_id == UNITS.c.id)
        .where(UNITS.c.run_id == run_id, UNITS.c.status == "ok", RESULTS.c.assertions.is_not(None))
        .where(CURRENT_RESULT)
        .order_by(UNITS.c.id)
    )
    failed: dict[str, _Tally] = {}
    missed: dict[str, _Tally] = {}
    with transaction(session, write=False) as conn:
        for provider, key, kind in conn.execute(failed_query):
            failed.setdefault(provider, _Tally()).add(key, [kind or NO_ATTEMPT], examples)
        # Only the results with a failed outcome leave the database (a 100,000-unit run: 2.2 s -> ms).
        failing = HAS_FAILED_OUTCOME.get(conn.dialect.name)
        if failing is not None:
            assertion_query = assertion_query.where(text(failing))
        for provider, key, data in conn.execute(assertion_query):
            names = [o.name for o in assertions_from_json(data) if not o.passed and not o.pending]
            if names:
                missed.setdefault(provider, _Tally()).add(key, list(dict.fromkeys(names)), examples)
    empty = _Tally()
    return tuple(
        ProviderFailures(
            provider=name,
            failed=(f := failed.get(name, empty)).units,
            error_kinds=f.ordered(),
            failed_units=tuple(f.keys),
            failed_assertions=(m := missed.get(name, empty)).units,
            assertions=m.ordered(),
            assertion_units=tuple(m.keys),
        )
        for name in sorted({*failed, *missed})
    )


@dataclass(slots=True)
class _Tally:
    """Units counted while reading: in all, per name, and the first few keys."""

    units: int = 0
    names: Counter[str] = field(default_factory=Counter)
    keys: list[str] = field(default_factory=list)

    def add(self, key: str, names: list[str], examples: int) -> None:
        self.units += 1
        self.names.update(names)
        if len(self.keys) < examples:
            self.keys.append(key)

    def ordered(self) -> dict[str, int]:
        """Most units first; ties in name order, so the breakdown reads the same every time."""
        return dict(sorted(self.names.items(), key=lambda item: (-item[1], item[0])))
