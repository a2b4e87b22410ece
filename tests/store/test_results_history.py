"""Results per attempt (revision 0007): ``--retry failed`` keeps a unit's earlier result rows, stamped
``replaced_at``; every reader takes the current rows only; the migration keeps existing rows current."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from runner.grading.assertions import PENDING_JUDGE, AssertionOutcome
from runner.report.api import build_run_report
from runner.report.export import write_export
from runner.store import repository
from runner.store.db import downgrade, open_database, upgrade
from runner.store.models import Base
from runner.store.records import UnitFinish
from runner.store.repository.browse import find_unit, provider_tallies, run_rows, run_tally
from runner.store.repository.pages import UnitQuery, case_counts, unit_page
from runner.store.repository.writes import apply_verdict

from .factories import HELD, failed_attempt, finished_run, ok_attempt
from .test_migrations import ATTEMPT_0001, NOW, RUN_0001, UNITS_0001

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

LEASE = 30.0
RETRIED = datetime(2026, 11, 30, 21, 0, tzinfo=UTC)
BROKEN = AssertionOutcome(name="contains", passed=False, detail="missing 'x'")
HISTORY = (
    "SELECT a.number, r.text, r.completion_id, r.replaced_at IS NOT NULL FROM results r"
    " JOIN attempts a ON a.id = r.attempt_id JOIN units u ON u.id = r.unit_id"
    " WHERE u.key = :key ORDER BY r.id"
)


def _finish_again(
    session: Session,
    run_id: str,
    status: Literal["ok", "failed"],
    *,
    assertions: tuple[AssertionOutcome, ...] | None = None,
) -> None:
    """Reopen the run's failed unit (``--retry failed``) and finish it with a new attempt."""
    repository.resume_run(session, run_id, retry_failed=True, now=RETRIED)
    (unit,) = repository.claim_units(session, run_id, "new", limit=1, lease_seconds=LEASE)
    attempt = ok_attempt(unit.key) if status == "ok" else failed_attempt(unit.key, kind="timeout")
    repository.write_batch(
        session,
        [UnitFinish(unit_id=unit.id, owner="new", status=status, attempt=attempt, assertions=assertions)],
    )


def test_each_retry_keeps_the_result_it_replaces(session: Session) -> None:
    """Failed, retried into a failure, retried into an answer: three result rows, one per final
    attempt, the two replaced ones whole (completion id and extras included); the unit reads the last."""
    run_id, (_, failed) = finished_run(session, [("ok", None), ("failed", None)])
    _finish_again(session, run_id, "failed")
    _finish_again(session, run_id, "ok")
    with session.begin():
        rows = [tuple(row) for row in session.execute(text(HISTORY), {"key": failed.key})]
    assert rows == [
        (1, "The wea", "chatcmpl-part", True),
        (2, "The wea", "chatcmpl-part", True),
        (3, "The weather in Tokyo is sunny.", "chatcmpl-123", False),
    ]
    view = next(v for v in repository.iter_units(session, run_id) if v.key == failed.key)
    assert view.completion is not None
    assert [c.text for c in view.completion.choices] == ["The weather in Tokyo is sunny."]
    assert view.completion.extras == {"system_fingerprint": "fp_1"}


def test_replaced_outcomes_count_nowhere(session: Session) -> None:
    """A failed unit holding failed outcomes (as older runners stored them), retried into a pass: no
    failed assertion in the count, the pass rates or the breakdown."""
    run_id, _ = finished_run(session, [("failed", (BROKEN,))])
    _finish_again(session, run_id, "ok", assertions=(HELD,))
    assert repository.count_failed_assertions(session, run_id) == 0
    assert repository.graded_verdicts(session, run_id) == [("case-0", "mini", True)]
    assert repository.failure_breakdown(session, run_id) == ()


def test_a_retried_units_replaced_row_stays_and_is_counted_by_no_reader(session: Session) -> None:
    """A failed unit holding a failed outcome on its partial output (as older runners stored it), retried
    into a pass: its replaced row stays, and every reader sees the one current row only -- the tallies
    of ``runner runs`` / ``runner show``, the viewer's pages, the run report, the export, the breakdown."""
    run_id, (_, retried) = finished_run(session, [("ok", (HELD,)), ("failed", (BROKEN,))])
    _finish_again(session, run_id, "ok", assertions=(HELD,))
    with session.begin():
        rows = [tuple(row) for row in session.execute(text(HISTORY), {"key": retried.key})]
    assert rows == [
        (1, "The wea", "chatcmpl-part", True),
        (2, "The weather in Tokyo is sunny.", "chatcmpl-123", False),
    ]
    answer = ["The weather in Tokyo is sunny."]

    # runner runs / runner show: two ok units, both passed, one check each.
    (row,) = run_rows(session)
    for tally in (row.tally, run_tally(session, run_id), provider_tallies(session, run_id)["mini"]):
        assert (tally.units, tally.ok, tally.failed_assertions) == (2, 2, 0)
        assert (tally.checks_passed, tally.checks_total) == (2, 2)
    # runner view: the case counts, the unit table and the unit page.
    assert [c.failed_assertions for c in case_counts(session, run_id)] == [0, 0]
    views, total = unit_page(session, run_id, UnitQuery())
    assert total == 2
    assert [[c.text for c in v.completion.choices] for v in views if v.completion] == [answer, answer]
    found = find_unit(session, run_id, retried.key)
    assert found is not None
    assert found.completion is not None
    assert [c.text for c in found.completion.choices] == answer
    assert found.assertions == (HELD,)
    # The run report (a lean scan, then the units it shows in full).
    report = build_run_report(session, run_id)
    assert (report.summary.ok, report.summary.passed, report.summary.failed_assertions) == (2, 2, 0)
    lean = [v for v in repository.stream_units(session, run_id) if v.key == retried.key]
    assert [v.assertions for v in lean] == [(HELD,)]
    (full,) = repository.units_by_id(session, run_id, [retried.id])
    assert full.completion is not None
    assert [c.text for c in full.completion.choices] == answer
    # runner export: one record per unit, the current answer, no partial output.
    out = io.StringIO()
    assert write_export(repository.iter_units(session, run_id), out, "jsonl") == 2
    assert 'The wea"' not in out.getvalue()
    assert len([json.loads(line) for line in out.getvalue().splitlines()]) == 2
    # The end-of-run breakdown and the counts behind the summary and the exit code.
    assert repository.failure_breakdown(session, run_id) == ()
    assert repository.count_failed_assertions(session, run_id) == 0
    assert repository.count_grading_pending(session, run_id) == 0


def test_a_judges_verdict_lands_on_the_current_row_only(session: Session) -> None:
    """A retried unit whose replaced row still holds a pending judge outcome: the judge's verdict
    replaces the current row's pending outcome, and the replaced row is left as it was."""
    run_id, (unit,) = finished_run(session, [("failed", (PENDING_JUDGE,))])
    _finish_again(session, run_id, "ok", assertions=(HELD, PENDING_JUDGE))
    assert repository.count_grading_pending(session, run_id) == 1
    (graded,) = repository.ungraded_units(session, run_id, ["case-0"])
    assert graded.completion is not None
    assert [c.text for c in graded.completion.choices] == ["The weather in Tokyo is sunny."]
    verdict = AssertionOutcome(name="judge", passed=True, detail="the judge agrees", score=1.0)
    with session.begin():
        apply_verdict(session.connection(), unit.id, verdict)
    with session.begin():
        stored = session.execute(
            text("SELECT replaced_at IS NOT NULL, assertions FROM results WHERE unit_id = :u ORDER BY id"),
            {"u": unit.id},
        ).all()
    assert [(replaced, _json(data)) for replaced, data in stored] == [
        (True, [PENDING_JUDGE.to_dict()]),
        (False, [HELD.to_dict(), verdict.to_dict()]),
    ]
    assert repository.count_grading_pending(session, run_id) == 0
    assert repository.graded_verdicts(session, run_id) == [("case-0", "mini", True)]


def _json(data: object) -> object:
    """A JSON column as read by raw SQL: text on SQLite, already decoded on PostgreSQL."""
    return json.loads(data) if isinstance(data, str) else data


def test_upgrading_a_0006_database_keeps_its_results_current_and_downgrading_drops_history(
    db_url: str,
) -> None:
    """Rows written at 0006 are the current results at head; a retry then keeps them as history, and a
    downgrade to 0006 deletes that history and brings back one row per (unit, choice)."""
    with open_database(db_url, migrate=False) as database:
        upgrade(database, "0006")
        with database.engine.begin() as conn:
            conn.execute(text(RUN_0001), {"spec": "{}", "prices": "{}", "tags": "[]", "now": NOW})
            conn.execute(text(UNITS_0001))
            conn.execute(text(ATTEMPT_0001), {"now": NOW})
            conn.execute(text(RESULT_0006), {"now": NOW})
        upgrade(database)
        with database.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
            assert conn.execute(text("SELECT text, replaced_at FROM results")).all() == [("The wea", None)]
        with database.session() as session:
            (failed, _) = repository.iter_units(session, "r-old001")
            assert failed.completion is not None
            assert failed.completion.choices[0].text == "The wea"
            repository.resume_run(session, "r-old001", retry_failed=True, now=RETRIED)
            (failed, _) = repository.iter_units(session, "r-old001")
            assert failed.completion is None  # no current result while it runs again
        with database.engine.begin() as conn:
            conn.execute(text(RESULT_0006), {"now": NOW})  # the retry's answer beside the replaced row
            assert conn.execute(text("SELECT count(*) FROM results")).scalar_one() == 2
        with pytest.raises(IntegrityError), database.engine.begin() as conn:
            conn.execute(text(RESULT_0006), {"now": NOW})  # still one current row per (unit, choice)
        downgrade(database, "0006")
        with database.engine.begin() as conn:
            assert conn.execute(text("SELECT count(*) FROM results")).scalar_one() == 1
        with pytest.raises(IntegrityError), database.engine.begin() as conn:
            conn.execute(text(RESULT_0006), {"now": NOW})


# The partial output of unit p/c/1's failed attempt (UNITS_0001, ATTEMPT_0001), as 0001 to 0006 store it.
RESULT_0006 = (
    "INSERT INTO results (unit_id, attempt_id, choice_index, text, reasoning, reasoning_steps,"
    " tool_calls, complete, extras, created_at) SELECT u.id, a.id, 0, 'The wea', '', '[]', '[]', false,"
    " '{}', :now FROM units u JOIN attempts a ON a.unit_id = u.id WHERE u.key = 'p/c/1'"
)
