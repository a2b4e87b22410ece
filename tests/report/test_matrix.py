"""The run report's pass matrix and assertion outcomes: the context's figures and the rendered cells."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from runner.report.matrix import MATRIX_ROWS_MAX, pass_matrix
from runner.report.outcomes import listed_outcomes, outcomes_note
from runner.report.render import render
from runner.report.run import build_run_context
from tests.report.factories import failed_unit, rated_run

if TYPE_CHECKING:
    from jinja2 import Environment


def test_cells_count_repeats_rate_graded_ones_and_judge_the_bar() -> None:
    """8 of 10 passed; the rate is over the 9 with a result (8/9 meets 0.8); unrated cells carry no bar."""
    matrix = pass_matrix(rated_run().units, {"flaky": 0.8})
    assert matrix.providers == ("claude", "mini")
    flaky, solid = matrix.rows
    assert flaky.case_id == "flaky"
    assert flaky.cells[0] is None  # the case never ran on claude
    cell = flaky.cells[1]
    assert cell is not None
    assert (cell.label, cell.failed, cell.rate.passed, cell.rate.graded) == ("8/10", 1, 8, 9)
    assert cell.rate_text == "89% [57% to 98%]"
    assert cell.bar_text == "meets pass_rate 80%"
    assert cell.css == "failed"  # not every repeat passed
    claude, mini = solid.cells
    assert claude is not None
    assert mini is not None
    assert (claude.label, claude.css, claude.bar_text) == ("0/1", "failed", None)
    assert (mini.label, mini.css) == ("1/1", "passed")
    assert (matrix.rated, matrix.below) == (1, 0)
    assert pass_matrix(rated_run().units, {"flaky": 0.9}).below == 1


def test_a_huge_matrix_keeps_the_worst_cases() -> None:
    """Over MATRIX_ROWS_MAX cases, the rows kept are the lowest pass shares, and a note says so."""
    unit = rated_run().units[0]
    units = [replace(unit, case_id=f"c{i:05d}") for i in range(MATRIX_ROWS_MAX + 5)]
    units[3] = failed_unit(units[3])
    matrix = pass_matrix(units, {})
    assert len(matrix.rows) == MATRIX_ROWS_MAX
    assert "c00003" in [row.case_id for row in matrix.rows]
    assert matrix.note is not None
    assert f"of {MATRIX_ROWS_MAX + 5}" in matrix.note


def test_the_report_shows_every_outcome_and_the_matrix(env: Environment) -> None:
    """Cards and rows list each assertion with pass / fail / error, its score and its escaped reason."""
    context = build_run_context(rated_run())
    assert context.matrix is not None
    html = render(env, context)
    assert 'id="matrix"' in html
    assert "89% [57% to 98%]" in html
    assert "meets pass_rate 80%" in html
    assert "cases below pass_rate" in html
    assert "too &lt;b&gt;vague&lt;/b&gt;" in html
    assert "too <b>vague" not in html
    assert '<td class="num">0.25</td>' in html
    assert ">error</td>" in html
    assert "KeyError: &#39;city&#39;" in html
    rows = [row for page in context.pages for row in page.rows]
    assert sum(len(row.outcomes) for row in rows) == sum(len(u.evaluated) for u in rated_run().units)
    # pass_rate is no unit check: a failed unit lists only the case's real keys as not evaluated.
    failed_card = next(card for card in context.cards if card.verdict == "failed")
    assert failed_card.not_evaluated == ("contains",)


def test_a_huge_run_lists_the_outcomes_of_units_that_did_not_pass() -> None:
    """Over the budget, only units with a check that did not pass list their outcomes; a note says so."""
    units = rated_run().units
    assert listed_outcomes(units) == {u.id for u in units}
    assert build_run_context(rated_run()).outcomes_note is None
    failing = {u.id for u in units if any(not o.passed for o in u.evaluated)}
    assert len(failing) == 2
    assert listed_outcomes(units, budget=5) == failing
    assert listed_outcomes(units, budget=2) == {min(failing)}  # the first fits, the next does not
    assert outcomes_note(2, 12) == (
        "The table lists the checks of 2 of 12 units (those with a check that did not pass); "
        "the others show their counts. runner export has every outcome."
    )
