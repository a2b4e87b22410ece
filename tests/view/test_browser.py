"""The viewer in a real headless Chromium: index -> run -> unit -> raw stream, sort, filter and a diff
picked from the run page, with no console error and no CSP violation; hostile output runs nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

from tests.report.conftest import browser  # noqa: F401 - the shared Chromium fixture
from tests.report.factories import HOSTILE
from tests.view.conftest import serving

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.report.browser import Browser, PageLoad

# Slow (left out by `-m "not slow"`; CI runs them): two simulated runs and a real Chromium.
pytestmark = pytest.mark.slow

DEMO_JOB = Path(__file__).parents[2] / "jobs" / "demo.toml"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A viewer on two runs of the offline demo job with every stream captured: its base URL."""
    folder = tmp_path_factory.mktemp("demo")
    url = f"sqlite:///{folder / 'runner.db'}"
    for _ in range(2):
        subprocess.run(
            [
                sys.executable,
                "-m",
                "runner",
                "run",
                str(DEMO_JOB),
                "--db",
                url,
                "--capture",
                "all",
                "--report",
                str(folder / "report.html"),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
    with serving(url) as base:
        yield base


def _clean(record: PageLoad, base: str) -> None:
    """No console message, no exception, no CSP report, and nothing fetched from elsewhere."""
    assert record.errors == []
    assert record.console == []
    assert all(urlsplit(u).netloc == urlsplit(base).netloc or u.startswith("data:") for u in record.requests)


def _visit(chromium: Browser, url: str, base: str) -> str:
    record, session = chromium.load(url)
    _clean(record, base)
    return session


def test_index_run_unit_raw_stream_sort_filter_diff(browser: Browser, demo: str) -> None:  # noqa: F811
    """A reader's path through the viewer works end to end, with our script sorting and filtering."""
    session = _visit(browser, demo + "/", demo)
    runs = browser.evaluate("[...document.querySelectorAll('table#runs a')].map(a => a.href)", session)
    assert len(runs) == 2
    browser.close_tab(session)

    session = _visit(browser, runs[0], demo)
    # Sort the provider table by its first column, descending after a second click.
    names = (
        "[...document.querySelector('table.providers').tBodies[0].rows]"
        ".map(r => r.cells[0].textContent.trim())"
    )
    header = "document.querySelector('table.providers thead th')"
    browser.evaluate(f"{header}.click()", session)
    ascending = browser.evaluate(names, session)
    browser.evaluate(f"{header}.click()", session)
    assert browser.evaluate(names, session) == sorted(ascending, reverse=True)
    assert ascending == sorted(ascending)
    # Filter the unit table's rows by text (the box our script puts above it).
    rows = "document.querySelector('table.rows').tBodies[0].rows"
    total = browser.evaluate(f"{rows}.length", session)
    shown = browser.evaluate(
        "(() => { const box = document.querySelector('table.rows').previousElementSibling;"
        " box.value = 'melious'; box.dispatchEvent(new Event('input'));"
        f" return [...{rows}].filter(r => !r.hidden).length; }})()",
        session,
    )
    assert 0 < shown < total
    unit = browser.evaluate("document.querySelector('table.rows a[href*=\"/units/\"]').href", session)
    # The diff form: pick the other run and build the URL its submit would load.
    picked = browser.evaluate(
        "(() => { const f = document.querySelector('form[action$=\"/diff\"]');"
        " return f.action + '?' + new URLSearchParams(new FormData(f)); })()",
        session,
    )
    browser.close_tab(session)

    session = _visit(browser, unit, demo)
    reads = browser.evaluate(
        "[...document.querySelectorAll('table.stream tbody tr')].map(r => r.cells[1].textContent)", session
    )
    assert len(reads) > 3
    assert all(t.endswith(("ms", " s")) for t in reads)  # the arrival time of every read
    events = browser.evaluate("document.querySelectorAll('table.stream div.event').length", session)
    assert events > 0
    assert browser.evaluate("document.querySelectorAll('svg.timeline rect').length", session) >= 1
    elsewhere = browser.evaluate("[...document.querySelectorAll('p.elsewhere a')].map(a => a.href)", session)
    assert len(elsewhere) == 1
    browser.close_tab(session)

    assert f"against={urlsplit(runs[1]).path.rsplit('/', 1)[1]}" in picked
    session = _visit(browser, picked, demo)
    assert browser.evaluate("document.querySelector('h2#flips') !== null", session)
    browser.close_tab(session)
    for extra in ("/trend", "/cost"):
        browser.close_tab(_visit(browser, runs[0] + extra, demo))


def test_hostile_output_runs_nothing_in_the_viewer(browser: Browser, viewer: str, stored: object) -> None:  # noqa: F811
    """Script tags, handlers, </script> and javascript: links in model output stay text in the viewer."""
    from tests.view.conftest import Stored

    assert isinstance(stored, Stored)
    for path in (f"/runs/{stored.runs[0]}?limit=500", f"/runs/{stored.runs[2]}", "/"):
        record, session = browser.load(viewer + path)
        try:
            _clean(record, viewer)
            title = browser.evaluate("document.title", session)
            assert "PWNED" not in title
            scripts = browser.evaluate("[...document.scripts].map(s => s.getAttribute('src'))", session)
            assert scripts == ["/static/view.js"]
            assert (
                browser.evaluate(
                    "document.querySelectorAll('img, iframe, object, embed, base').length", session
                )
                == 0
            )
            handlers = browser.evaluate(
                "[...document.querySelectorAll('*')].reduce((n, e) => "
                "n + [...e.attributes].filter(a => a.name.startsWith('on')).length, 0)",
                session,
            )
            assert handlers == 0
            links = browser.evaluate("[...document.links].map(a => a.protocol)", session)
            assert set(links) <= {"http:"}
            if path != "/":
                text = browser.evaluate("document.body.textContent", session)
                assert HOSTILE[0] in text
        finally:
            browser.close_tab(session)
