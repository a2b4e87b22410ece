"""The run report at scale: streamed from the store in one pass, its table bounded, the same page as the
in-memory build for a small run, on SQLite and PostgreSQL."""

from __future__ import annotations

import gc
import re
from dataclasses import replace
from typing import TYPE_CHECKING

import pytest

from runner.report.api import build_run_report, load_run, write_run_report
from runner.report.render import make_environment, render, stream_report
from runner.report.run import build_run_context, run_context, scan_run
from runner.report.scan import ROWS_MAX
from runner.store.db import open_database
from tests.report.conftest import GENERATED
from tests.report.dbfixture import store_run
from tests.report.factories import make_run

if TYPE_CHECKING:
    from pathlib import Path

    from runner.report.run import RunReportContext


def _at(context: RunReportContext) -> RunReportContext:
    return replace(context, generated_at=GENERATED)


def test_streamed_report_equals_the_in_memory_one(db_url: str, tmp_path: Path) -> None:
    """A small run's report streamed from the store (lean units, then the shown ones in full) is the
    page built from the whole run loaded in memory, and the file streamed out equals the string."""
    data = make_run(90, hostile=True)
    with open_database(db_url) as db, db.session() as session:
        run_id = store_run(session, data)
        streamed = _at(build_run_report(session, run_id))
        loaded = _at(build_run_context(load_run(session, run_id)))
    env = make_environment()
    html = render(env, streamed)
    assert html == render(env, loaded)
    assert stream_report(env, streamed, tmp_path / "run.html").read_text(encoding="utf-8") == html
    assert streamed.rows_note is None
    assert sum(len(page.rows) for page in streamed.pages) == 90


def test_a_big_run_keeps_a_bounded_table_and_says_so(db_url: str, tmp_path: Path) -> None:
    """Past its row cap the table holds every unit not passed, then a sample of passed ones, and the
    page says how many of how many it shows; the file stops growing with the run."""
    rows_max = 1000
    sizes = []
    for units in (1500, 3000):
        data = make_run(units, answer_chars=200)
        with open_database(db_url) as db, db.session() as session:
            run_id = store_run(session, data)
            path = write_run_report(session, run_id, tmp_path / f"run-{units}.html", rows_max=rows_max)
            context = build_run_report(session, run_id, rows_max=rows_max)
        sizes.append(path.stat().st_size)
        rows = [row for page in context.pages for row in page.rows]
        assert len(rows) == rows_max
        failing = sum(u.verdict != "passed" for u in data.units)
        assert failing < rows_max < units  # so the sample has both kinds
        assert sum(row.verdict != "passed" for row in rows) == failing
        assert rows == sorted(rows, key=lambda r: (r.provider, r.case_id, r.repeat))
        assert context.summary.units == units  # the figures count every unit, not the sample
        html = path.read_text(encoding="utf-8")
        assert f"Showing {rows_max:,} of {units:,} units" in html
        assert f"runner export {run_id}" in html
        assert "runner export has every unit." in html
    # Twice the units: the same table and cards, only the matrix (cases) and tallies grow.
    assert sizes[1] < sizes[0] * 1.5


def test_the_row_sample_is_spread_and_reproducible() -> None:
    """The passed rows of a sampled table come from every provider and the same ones every time."""
    data = make_run(2000, answer_chars=50)
    first = run_context(scan_run(data.run, data.units, rows_max=800), generated_at=GENERATED)
    again = run_context(scan_run(data.run, reversed(data.units), rows_max=800), generated_at=GENERATED)
    keys = [row.key for page in first.pages for row in page.rows]
    assert keys == [row.key for page in again.pages for row in page.rows]
    passed = [row.key for page in first.pages for row in page.rows if row.verdict == "passed"]
    assert {key.split("/")[0] for key in passed} == {"mini", "claude", "runware"}
    assert len({re.sub(r"/\d+$", "", key) for key in passed}) > 100  # many cases, not the first few


def test_default_cap_leaves_small_runs_whole() -> None:
    """Runs up to ROWS_MAX units list every unit, as before the cap."""
    assert ROWS_MAX >= 1200
    context = build_run_context(make_run(1200, answer_chars=20))
    assert sum(len(page.rows) for page in context.pages) == 1200
    assert context.rows_note is None


@pytest.mark.slow
def test_big_report_loads_in_chromium_without_errors(tmp_path: Path) -> None:
    """A 20,000-unit report (sampled table, every chart) opens in headless Chromium with no console
    message, and its charts and sample note are on the page."""
    from tests.report.browser import CHROMIUM, Browser

    if not CHROMIUM:
        pytest.skip("no Chromium")
    data = make_run(20_000, answer_chars=300, hostile=True)
    context = run_context(scan_run(data.run, data.units), generated_at=GENERATED)
    path = stream_report(make_environment(), context, tmp_path / "big.html")
    assert path.stat().st_size < 10_000_000
    profile = tmp_path / "profile"
    profile.mkdir()
    browser = Browser(profile)
    try:
        record, session = browser.load(path.as_uri())
        assert record.errors == []
        assert record.console == []
        assert record.foreign_requests == []
        assert browser.evaluate("document.querySelectorAll('svg.chart').length", session) == 7
        assert browser.evaluate("document.querySelector('p.sampled') !== null", session)
        browser.close_tab(session)
    finally:
        browser.close()


@pytest.mark.parametrize("enabled", [pytest.param(True, id="enabled"), pytest.param(False, id="disabled")])
def test_writing_a_report_leaves_the_cycle_collector_as_it_found_it(
    db_url: str, tmp_path: Path, enabled: bool
) -> None:
    """The collector paused while a report is made is running again after it, and stays paused when
    the caller had paused it."""
    data = make_run(30)
    with open_database(db_url) as db, db.session() as session:
        run_id = store_run(session, data)
        if not enabled:
            gc.disable()
        try:
            write_run_report(session, run_id, tmp_path / "run.html")
            assert gc.isenabled() is enabled
        finally:
            gc.enable()
