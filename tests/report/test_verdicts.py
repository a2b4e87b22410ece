"""The run report tells the truth: one verdict per unit, assertions only on final results, counts that say
what they count, no empty charts, reasoning latency shown, and answers that cannot reorder the page."""

from __future__ import annotations

from dataclasses import replace

from markupsafe import Markup

from runner.grading.assertions import PENDING_JUDGE, AssertionOutcome
from runner.report import render as rendering
from runner.report.common import RunData
from runner.report.render import make_environment, render
from runner.report.run import RunReportContext, build_run_context
from runner.store.records import ErrorView
from tests.report.factories import failed_unit, make_run

HELD = AssertionOutcome(name="contains", passed=True, detail="all found")
BROKEN = AssertionOutcome(name="max_ttft_s", passed=False, detail="ttft 2.000 s")


def _four_verdicts() -> RunData:
    """One unit of each verdict, the passed one first (as the units' own order would put it)."""
    data = make_run(12, seed=7)
    first, second, third, fourth = data.units[:4]
    units = (
        replace(first, status="ok", assertions=(HELD,)),
        replace(second, status="ok", assertions=(HELD, BROKEN)),
        failed_unit(third),
        replace(fourth, status="pending", attempts=(), completion=None, assertions=(), finished_at=None),
    )
    return replace(data, units=units)


def _context(data: RunData) -> RunReportContext:
    return build_run_context(data)


def test_each_unit_gets_one_verdict_and_the_worst_are_shown_first() -> None:
    """A unit whose assertions failed is not 'ok': it gets a card first, then failed, then not done."""
    data = _four_verdicts()
    context = _context(data)
    keys = {u.verdict: u.key for u in data.units}
    shown = [(card.key, card.verdict) for card in context.cards]
    assert shown == [
        (keys["failed assertions"], "failed assertions"),
        (keys["failed"], "failed"),
        (keys["not done"], "not done"),
        (keys["passed"], "passed"),
    ]
    summary = context.summary
    assert (summary.passed, summary.failed_assertions, summary.failed, summary.unfinished) == (1, 1, 1, 1)
    assert "0 of 0" not in context.cards_note
    assert "1 with failed assertions" in context.cards_note
    html = render(make_environment(), context)
    assert 'class="unit verdict-failed-assertions"' in html
    assert "failed assertions" in html.split('id="providers"')[1].split("</table>")[0]  # per-provider table


def test_a_unit_without_a_final_result_has_its_assertions_not_evaluated() -> None:
    """Outcomes stored for a failed unit's partial output count neither as passed nor as failed."""
    data = make_run(6, seed=7)
    broken = replace(data, units=tuple(failed_unit(u) for u in data.units))
    context = _context(broken)
    assert context.summary.ok == 0
    assert (context.summary.assertions_passed, context.summary.assertions_total) == (0, 0)
    assert context.summary.assertions_not_evaluated == 12
    assert all(card.assertions == () for card in context.cards)
    assert all(card.not_evaluated == ("contains", "contains") for card in context.cards)
    html = render(make_environment(), context)
    assert "12 not evaluated" in html
    assert ">passed</td>" not in html


def test_a_judge_still_grading_is_counted_not_evaluated() -> None:
    """An ok unit whose judge has not answered: its other checks count, the judge is not evaluated yet
    (it was counted as a failed check); its row says the judge is grading."""
    data = make_run(3, seed=7)
    held = AssertionOutcome(name="contains", passed=True, detail="found")
    units = tuple(
        replace(u, status="ok", assertions=(held, PENDING_JUDGE)) for u in data.units if u.completion
    )
    context = _context(RunData(run=data.run, units=units))
    n = len(units)
    assert (context.summary.assertions_passed, context.summary.assertions_total) == (n, n)
    assert context.summary.assertions_not_evaluated == n
    html = render(make_environment(), context)
    assert f"{n} not evaluated" in html
    assert "1/1 (+1 grading)" in html


def test_not_evaluated_assertions_are_counted_from_the_job() -> None:
    """A failed unit with no stored outcomes still counts its case's expect keys as not evaluated."""
    data = make_run(3, seed=7)
    cases = [{"id": u.case_id, "expect": {"contains": "x", "max_ttft_s": 1.0}} for u in data.units]
    units = tuple(replace(failed_unit(u), assertions=()) for u in data.units)
    run = replace(data.run, job_spec={"cases": cases})
    context = _context(RunData(run=run, units=units))
    assert context.summary.assertions_not_evaluated == 6
    assert context.cards[0].not_evaluated == ("contains", "max_ttft_s")


def test_counts_say_what_they_count() -> None:
    """The report's assertion figure counts checks, and says so; unit figures say they count units."""
    html = render(make_environment(), _context(_four_verdicts()))
    summary = html.split('id="summary"')[1].split('id="providers"')[0]
    assert "checks passed" in summary
    assert "assertions passed" not in summary
    assert "units passed" in summary
    assert "units with failed assertions" in summary


def test_charts_of_a_run_without_a_successful_attempt_say_so() -> None:
    """With no successful attempt the latency charts say "no successful attempt" instead of empty axes."""
    data = make_run(6, seed=7)
    context = _context(replace(data, units=tuple(failed_unit(u) for u in data.units)))
    by_id = {chart.id: chart for chart in context.charts}
    for latency in ("ttft", "latency", "ttft-box", "gap-box"):
        assert by_id[latency].empty == "no successful attempt"
    assert by_id["errors"].empty is None
    assert by_id["error-kinds"].empty is None
    html = render(make_environment(), context)
    assert html.count("<svg") == 3  # errors, errors by kind, cost
    assert html.count("no successful attempt") >= 4


def test_time_to_first_reasoning_token_is_shown_beside_ttft() -> None:
    """Per provider TTFR percentiles and each attempt's TTFR are in the context and on the page."""
    context = _context(make_run(30, seed=7))
    by_name = {p.name: p.stats for p in context.providers}
    assert by_name["claude"].ttfr_p50 is not None
    assert by_name["claude"].ttfr_p90 is not None
    assert by_name["mini"].ttfr_p50 is None  # no reasoning stream: shown as not measured
    claude = next(c for c in context.cards if c.provider == "claude")
    assert all(a.ttfr_s is not None for a in claude.attempts)
    html = render(make_environment(), context)
    assert "TTFR p50" in html
    assert "TTFR p99" in html
    assert html.split('class="attempts"')[1].count("TTFR") >= 1


def test_visible_shows_control_characters_and_escapes_the_rest() -> None:
    """C0/C1 controls and bidi controls become visible escapes; newlines, tabs and markup stay text."""
    visible = rendering.visible
    shown = visible("a\x00b\u202ec\n\td<b>\x7f\x85\u2066\u200f")
    assert isinstance(shown, Markup)
    assert "\x00" not in shown
    assert "\u202e" not in shown
    assert '<span class="ctl" title="U+0000 control character">\u2400</span>' in shown
    assert '<span class="ctl" title="U+202E RIGHT-TO-LEFT OVERRIDE">\\u202e</span>' in shown
    assert "\\u0085" in shown
    assert "\u2421" in shown  # DEL
    assert "\\u2066" in shown
    assert "\\u200f" in shown
    assert "\n\td&lt;b&gt;" in shown
    assert visible(None) == ""


def test_answers_cannot_flip_the_page_or_carry_raw_nul() -> None:
    """An answer with an RLO override and NUL bytes reaches the HTML as visible escapes, isolated."""
    data = make_run(3, seed=7)
    unit = data.units[0]
    assert unit.completion is not None
    choice = replace(unit.completion.choices[0], text="report\u202egnp.exe\x00 done", reasoning="\x00think")
    error = ErrorView(kind="server_error", message="bad\x00\u202eboom", http_status=500)
    attempts = (*unit.attempts[:-1], replace(unit.attempts[-1], error=error))
    unit = replace(
        unit, completion=replace(unit.completion, choices=(choice,)), attempts=attempts, status="failed"
    )
    html = render(make_environment(), _context(replace(data, units=(unit, *data.units[1:]))))
    assert "\x00" not in html
    assert "\u202e" not in html
    assert '<pre class="answer" dir="auto">report<span class="ctl"' in html
    assert "gnp.exe" in html


def test_a_judged_unit_shows_the_judges_reason_and_the_grading_cost() -> None:
    """A judge's verdict shows its reason; one still grading is "not done"; grading cost has a card."""
    data = make_run(4, seed=7)
    first, second = data.units[:2]
    verdict = AssertionOutcome(name="judge", passed=False, score=0.2, detail="cites no source at all")
    pending = AssertionOutcome(name="judge", passed=False, pending=True, detail="grading pending")
    units = (
        replace(first, status="ok", assertions=(verdict,)),
        replace(second, status="ok", assertions=(pending,)),
    )
    context = _context(replace(data, units=units, grading_cost=0.0123))
    assert [u.verdict for u in units] == ["failed assertions", "not done"]
    html = render(make_environment(), context)
    assert "cites no source at all" in html
    summary = html.split('id="summary"')[1].split('id="providers"')[0]
    assert "grading cost" in summary
    assert "0.0123" in summary
    assert "grading cost" not in render(make_environment(), _context(replace(data, units=units)))
