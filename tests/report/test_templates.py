"""Template contract: every template renders with StrictUndefined from fixture contexts, escaped."""

from __future__ import annotations

import re
from dataclasses import replace
from html.parser import HTMLParser

import pytest
from markupsafe import escape

from runner.report.cost import CostContext
from runner.report.diff import DiffContext
from runner.report.render import make_environment, render, reports_dir
from runner.report.run import ANSWER_BUDGET_CHARS, FAILED_CARDS_MAX, RunReportContext, build_run_context
from runner.report.trend import TrendContext
from tests.report.conftest import all_contexts
from tests.report.factories import HOSTILE, make_run

KINDS = ["run", "diff", "trend", "cost"]


class _Tags(HTMLParser):
    """Collects every start tag and attribute name of a document."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += [name for name, _ in attrs]


def _parse(html: str) -> _Tags:
    parser = _Tags()
    parser.feed(html)
    return parser


def test_every_template_is_rendered_by_some_report() -> None:
    """Each page template is named by a context type, and every other file is a partial or the CSS."""
    files = {p.name for p in reports_dir().iterdir() if p.is_file()}  # view/: the viewer's (tests/view)
    pages = {kind.template for kind in (RunReportContext, DiffContext, TrendContext, CostContext)}
    assert pages <= files
    assert {f for f in files - pages if not f.startswith("_")} == {"report.css"}


@pytest.mark.parametrize("kind", [pytest.param(k, id=k) for k in KINDS])
@pytest.mark.parametrize("hostile", [pytest.param(False, id="plain"), pytest.param(True, id="hostile")])
def test_each_report_renders_self_contained(kind: str, hostile: bool) -> None:
    """Each report renders strictly into one page with no script, no event handler and no external URL."""
    html = render(make_environment(), all_contexts(hostile=hostile)[kind])
    parsed = _parse(html)
    assert html.startswith("<!DOCTYPE html>")
    assert "script" not in parsed.tags
    assert not {"iframe", "img", "link", "object", "embed", "a"} & set(parsed.tags)
    assert not [a for a in parsed.attributes if a.startswith("on")]
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//|javascript:)""", html, re.IGNORECASE)
    assert "<style>" in html
    assert "Content-Security-Policy" in html


def test_hostile_output_appears_as_text() -> None:
    """Every hostile payload reaches the run report escaped, visible as the text the model sent."""
    html = render(make_environment(), all_contexts(hostile=True)["run"])
    for payload in HOSTILE:
        assert str(escape(payload)) in html
    assert "<script>document.title" not in html


def test_run_report_shows_what_the_issue_asks() -> None:
    """The run report has the summary, per-provider figures, the seven charts, cases and paged units."""
    context = all_contexts(hostile=False)["run"]
    assert isinstance(context, RunReportContext)
    html = render(make_environment(), context)
    for heading in ("Summary", "Per provider", "Charts", "Cases shown in full", "All units"):
        assert f">{heading}</h2>" in html
    for chart in ("ttft", "latency", "ttft-box", "gap-box", "errors", "error-kinds", "cost"):
        assert f'id="chart-{chart}"' in html
    assert html.count("<svg") == 7
    assert html.count("<tr><td>mini</td>") + html.count("<tr><td>claude</td>") + html.count(
        "<tr><td>runware</td>"
    ) >= len(context.pages[0].rows)
    assert "<details><summary>reasoning" in html
    assert '"city": "Tokyo"' in html.replace("&#34;", '"')  # tool arguments pretty-printed
    assert "arguments are not valid JSON" in html


def test_strict_undefined_catches_a_missing_field() -> None:
    """A template that reads a field the context lacks fails loudly instead of printing nothing."""
    env = make_environment()
    with pytest.raises(Exception, match="no attribute 'nope'"):
        env.from_string("{{ report.nope }}").render(report=all_contexts(hostile=False)["cost"])


def test_large_run_is_paged_and_sampled() -> None:
    """A big run keeps the expanded cases few and splits the unit table into pages of 500 rows."""
    data = make_run(1200, answer_chars=50)
    context = build_run_context(data)
    assert len(context.pages) == 3
    assert sum(len(p.rows) for p in context.pages) == 1200
    not_passed = sum(u.verdict != "passed" for u in data.units)
    assert not_passed > FAILED_CARDS_MAX  # the cap is what this test checks
    assert len(context.cards) == FAILED_CARDS_MAX + 3 * 10
    assert [card.verdict for card in context.cards[:FAILED_CARDS_MAX]].count("passed") == 0


def test_empty_run_renders() -> None:
    """A run with no units yet renders with its figures shown as not measured."""
    data = make_run(3)
    html = render(make_environment(), build_run_context(replace(data, units=())))
    assert "0 / 0" in html


def test_a_run_cut_off_while_planning_says_so() -> None:
    """A `planning` run (killed while storing its units) tells its reader to resume it, even when
    every unit stored so far has a result."""
    data = make_run(3)
    done = replace(data, run=replace(data.run, status="planning"), units=())
    html = render(make_environment(), build_run_context(done))
    assert "planning did not complete" in html
    assert f"runner run --resume {data.run.id}" in html


def test_answers_are_cut_evenly_past_the_budget() -> None:
    """Past the table's character budget each row's answer is cut and says how much was left out."""
    data = make_run(1600, answer_chars=6000)
    context = build_run_context(data)
    rows = [row for page in context.pages for row in page.rows]
    assert all(len(row.answer) <= ANSWER_BUDGET_CHARS // 1600 for row in rows)
    assert all(row.cut_chars > 0 for row in rows)
    assert all(len(choice.text) >= 6000 for card in context.cards for choice in card.choices)
    html = render(make_environment(), context)
    assert "more characters not shown here" in html
