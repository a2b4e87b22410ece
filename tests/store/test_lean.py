"""The lean read (``repository.stream_units``) gives what ``lean_unit`` makes of the whole units, on SQLite
and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace

from runner.grading.assertions import AssertionOutcome
from runner.store import repository
from runner.store.db import open_database
from runner.store.lean import lean_unit
from tests.report.dbfixture import store_run
from tests.report.factories import make_run


def test_streamed_units_are_the_lean_form_of_the_whole_ones(db_url: str) -> None:
    """Every unit streamed lean equals ``lean_unit`` of it read whole: the same facts, attempts'
    figures, model, assertions (a NUL in one, escaped on PostgreSQL) and verdict, in unit order."""
    data = make_run(90, hostile=True)
    odd = AssertionOutcome(name="contains", passed=False, detail="a\x00b\u2400")
    failed = next(u for u in data.units if u.status == "failed")
    # Two units with the same stored assertions and different verdicts (a failed unit's do not count).
    units = [
        replace(data.units[0], status="ok", assertions=(odd,)),
        *(replace(u, assertions=(odd,)) if u is failed else u for u in data.units[1:]),
    ]
    with open_database(db_url) as db, db.session() as session:
        run_id = store_run(session, replace(data, units=tuple(units)))
        lean = list(repository.stream_units(session, run_id, batch=7))
        whole = list(repository.iter_units(session, run_id))
    assert lean == [lean_unit(unit)._replace(view=None) for unit in whole]
    assert [(u.assertions, u.verdict) for u in lean if u.key in (units[0].key, failed.key)] == [
        ((odd,), "failed assertions"),
        ((odd,), "failed"),
    ]
