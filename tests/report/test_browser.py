"""Reports in a real headless Chromium: hostile model output runs nothing and fetches nothing."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import pytest

from runner.report.render import render, write_report
from runner.report.run import build_run_context
from tests.report.conftest import all_contexts
from tests.report.factories import HOSTILE, failed_unit, make_run, rated_run
from tests.report.png import luminance_stats

if TYPE_CHECKING:
    from pathlib import Path

    from jinja2 import Environment

    from tests.report.browser import Browser

# Slow (left out by `-m "not slow"`; CI runs them): a real headless Chromium per report.
pytestmark = pytest.mark.slow

KINDS = [pytest.param(k, id=k) for k in ("run", "diff", "trend", "cost")]
# Anything that could run script, load a resource or navigate, had a payload become markup.
ACTIVE = (
    "script, img, iframe, frame, object, embed, link, a, base, form, video, audio, source, "
    "meta[http-equiv=refresh]"
)
COUNT_HANDLERS = (
    "[...document.querySelectorAll('*')]"
    ".reduce((n, e) => n + [...e.attributes].filter(a => a.name.startsWith('on')).length, 0)"
)


def test_harness_sees_script_and_requests(browser: Browser, tmp_path: Path) -> None:
    """Positive control: a page that does run a script and fetch an image is caught by the same checks."""
    page = tmp_path / "control.html"
    page.write_text(
        "<!DOCTYPE html><title>control</title><script>console.error('CANARY')</script>"
        "<img src='http://evil.example/pixel.png'>",
        encoding="utf-8",
    )
    record, session = browser.load(page.as_uri())
    browser.close_tab(session)
    assert any(c["args"] == ["CANARY"] for c in record.console)
    assert "http://evil.example/pixel.png" in record.foreign_requests


@pytest.mark.parametrize("kind", KINDS)
def test_hostile_report_runs_nothing(browser: Browser, env: Environment, tmp_path: Path, kind: str) -> None:
    """With <script>, onerror, </textarea> and javascript: payloads in the data, nothing runs or loads."""
    context = all_contexts(hostile=True)[kind]
    path = write_report(tmp_path / f"{kind}.html", render(env, context))
    record, session = browser.load(path.as_uri())
    try:
        assert record.console == []
        assert record.exceptions == []
        assert record.errors == []
        assert record.requests == [path.as_uri()]
        assert browser.evaluate("document.title", session) == context.title
        assert browser.evaluate(f"document.querySelectorAll({ACTIVE!r}).length", session) == 0
        assert browser.evaluate(COUNT_HANDLERS, session) == 0
        if kind in ("run", "diff"):
            # The payloads are on the page as text: visible to the reader, inert to the browser.
            text = browser.evaluate("document.body.textContent", session)
            assert "<script>document.title='PWNED'" in text
            assert "<img src=x onerror=" in text
            assert '<a href="javascript:' in text
    finally:
        browser.close_tab(session)


@pytest.mark.parametrize("kind", KINDS)
def test_report_loads_without_console_errors(
    browser: Browser, env: Environment, tmp_path: Path, kind: str
) -> None:
    """Each report type loads from file:// with no console message or exception, its charts in the DOM."""
    context = all_contexts(hostile=False)[kind]
    path = write_report(tmp_path / f"{kind}.html", render(env, context))
    record, session = browser.load(path.as_uri())
    try:
        assert record.errors == []
        assert record.console == []
        assert record.foreign_requests == []
        charts = {"run": 7, "diff": 0, "trend": 6, "cost": 1}[kind]
        assert browser.evaluate("document.querySelectorAll('svg.chart').length", session) == charts
        assert browser.evaluate("document.querySelectorAll('h2').length", session) >= 2
    finally:
        browser.close_tab(session)


def test_run_report_screenshot(browser: Browser, env: Environment, tmp_path: Path) -> None:
    """The run report paints a non-blank page whose seven charts have drawn marks and a size on screen."""
    path = write_report(tmp_path / "run.html", render(env, all_contexts(hostile=False)["run"]))
    record, session = browser.load(path.as_uri(), height=2400)
    try:
        assert record.errors == []
        full = browser.screenshot(session)
        (tmp_path / "run.png").write_bytes(full)
        mean, variance, colours = luminance_stats(browser.screenshot(session, scale=0.25))
        assert 120 < mean < 254  # mostly light page, not all white
        assert variance > 200  # text, tables and charts, not a flat colour
        assert colours > 100  # the charts' palette and anti-aliased text
        marks = browser.evaluate(
            "[...document.querySelectorAll('svg.chart')].map(s => "
            "[s.querySelectorAll('rect, circle, polyline').length, s.getBoundingClientRect().width])",
            session,
        )
        assert len(marks) == 7
        assert all(count > 0 and width > 300 for count, width in marks)
    finally:
        browser.close_tab(session)


# Where the browser lays out the first and the last letter of "gnp.exe" in the answer that holds it.
LETTERS = """(() => {
  const pre = [...document.querySelectorAll('pre.answer')].find(p => p.textContent.includes('gnp.exe'));
  const walker = document.createTreeWalker(pre, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const at = node.data.indexOf('gnp.exe');
    if (at < 0) continue;
    const left = k => {
      const r = document.createRange();
      r.setStart(node, at + k);
      r.setEnd(node, at + k + 1);
      return r.getBoundingClientRect().left;
    };
    return {g: left(0), e: left(6), bidi: getComputedStyle(pre).unicodeBidi};
  }
  return null;
})()"""


def test_failed_run_shows_verdicts_visible_controls_and_no_empty_charts(
    browser: Browser, env: Environment, tmp_path: Path
) -> None:
    """A run without a successful attempt: an RLO cannot flip an answer, no raw NUL, charts say why empty."""
    data = make_run(6, seed=7)
    units = [failed_unit(u) for u in data.units]
    first = units[0]
    assert first.completion is not None
    choice = replace(first.completion.choices[0], text="report\u202egnp.exe\x00 done")
    units[0] = replace(first, completion=replace(first.completion, choices=(choice,)))
    context = build_run_context(replace(data, units=tuple(units)))
    path = write_report(tmp_path / "failed.html", render(env, context))
    record, session = browser.load(path.as_uri())
    try:
        assert record.errors == []
        letters = browser.evaluate(LETTERS, session)
        assert letters is not None
        assert letters["g"] < letters["e"]  # read left to right as sent, not reversed to "exe.png"
        assert letters["bidi"] == "isolate"
        text = browser.evaluate("document.body.textContent", session)
        assert "\u202e" not in text
        assert "\\u202e" in text
        assert "\u2400" in text  # the NUL, shown
        for chart in ("ttft", "latency"):
            figure = f"document.querySelector('#chart-{chart}')"
            assert browser.evaluate(f"{figure}.querySelectorAll('svg').length", session) == 0
            assert "no successful attempt" in browser.evaluate(f"{figure}.textContent", session)
        verdicts = browser.evaluate(
            "[...document.querySelectorAll('section.unit h3 span')].map(s => s.textContent)", session
        )
        assert verdicts == ["failed"] * 6
    finally:
        browser.close_tab(session)


def test_outcomes_and_pass_matrix_render_as_text(browser: Browser, env: Environment, tmp_path: Path) -> None:
    """Hostile reasons and case ids in the outcome tables and the matrix stay text; the cells read right."""
    payload = HOSTILE[1]
    context = build_run_context(rated_run(reason=payload, case_id=HOSTILE[0]))
    path = write_report(tmp_path / "rated.html", render(env, context))
    record, session = browser.load(path.as_uri())
    try:
        assert record.errors == []
        assert record.console == []
        assert record.foreign_requests == []
        assert browser.evaluate(f"document.querySelectorAll({ACTIVE!r}).length", session) == 0
        assert browser.evaluate(COUNT_HANDLERS, session) == 0
        cells = browser.evaluate(
            "[...document.querySelectorAll('table.matrix tbody tr')].map(r => "
            "[...r.querySelectorAll('td')].map(c => c.innerText.replace(/\\s+/g, ' ').trim()))",
            session,
        )
        dash = "\u2013"  # what a cell without a figure shows
        # Sorted by case id: "<script>..." before "flaky".
        assert cells[0][0] == HOSTILE[0]
        assert cells[1] == ["flaky", dash, "8/10 89% [57% to 98%] · 1 failed meets pass_rate 80%"]
        outcomes = browser.evaluate(
            "[...document.querySelectorAll('section.unit table.assertions tbody tr')].map(r => "
            "[...r.querySelectorAll('td')].map(c => c.textContent))",
            session,
        )
        assert ["python", "fail", "0.25", payload] in outcomes
        assert ["python", "error", dash, "KeyError: 'city'"] in outcomes
        # The unit table lists them too, folded under each row's checks.
        folded = browser.evaluate("document.querySelectorAll('details.outcomes tr').length", session)
        assert folded == sum(len(u.evaluated) for u in rated_run().units)
    finally:
        browser.close_tab(session)
