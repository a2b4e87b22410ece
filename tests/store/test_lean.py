"""The lean read (``repository.stream_units``) gives what ``lean_unit`` makes of the whole units, on SQLite
and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace

from runner.grading.assertions import AssertionOutcome
from runner.report.common import RunData
from runner.report.diff import DiffSide, answer_digest, stored_answer
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


def test_streamed_answers_digest_as_the_whole_units_do(db_url: str) -> None:
    """``stream_answers`` gives each unit's first choice as stored (a NUL and hostile text escaped on
    PostgreSQL, tool calls included), so ``runner diff`` digests what the whole units hold."""
    data = make_run(60, hostile=True)
    first = data.units[0]
    assert first.completion is not None
    odd = replace(first.completion.choices[0], text="nul \x00 here \u2400")
    units = (replace(first, completion=replace(first.completion, choices=(odd,))), *data.units[1:])
    with open_database(db_url) as db, db.session() as session:
        run_id = store_run(session, replace(data, units=units))
        streamed = {
            i: answer_digest(stored_answer(text, calls))
            for i, text, calls in repository.stream_answers(session, run_id)
        }
        whole = DiffSide.of(RunData(run=data.run, units=tuple(repository.iter_units(session, run_id))))
    assert any(c.tool_calls for u in units if u.completion for c in u.completion.choices)
    assert streamed == whole.answers
    assert len(streamed) == sum(1 for u in units if u.completion and u.completion.choices)
