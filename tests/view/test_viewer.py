"""The viewer over real HTTP on loopback: pages, links, paging, 404s, security headers, escaping, and a
database that stays untouched; on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from markupsafe import escape

from runner.errors import StorageError
from runner.store.db import open_database_readonly
from runner.view import app
from runner.view.app import CSP
from tests.report.factories import HOSTILE
from tests.view.conftest import SLASHED_CASE, Stored, serving


class _Page(HTMLParser):
    """Every tag, attribute name and link of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += [name for name, _ in attrs]
        self.links += [value or "" for name, value in attrs if name == "href" and tag == "a"]


def _get(url: str) -> httpx.Response:
    with httpx.Client(timeout=30) as client:
        return client.get(url)


def _parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


def _units_table(html: str) -> str:
    """The viewer's own unit table of a run page (the run report follows it on a small run)."""
    return html[html.index('id="units"') : html.index('id="report"')]


def _assert_safe(response: httpx.Response) -> None:
    assert response.headers["content-security-policy"] == CSP
    assert response.headers["x-content-type-options"] == "nosniff"


def test_index_lists_runs_and_filters(viewer: str, stored: Stored) -> None:
    """The index lists every run with a link to its page, and the job and status filters narrow it."""
    response = _get(viewer + "/")
    assert response.status_code == 200
    _assert_safe(response)
    page = _parse(response.text)
    for run_id in stored.runs:
        assert f"/runs/{run_id}" in page.links
    assert "/static/view.js" in response.text
    assert _get(viewer + "/?status=running").text.count("/runs/") == 0
    assert _get(viewer + "/?job=nightly-smoke").text.count('href="/runs/') == 3
    assert _get(viewer + "/?job=no-such-job").text.count('href="/runs/') == 0


def test_run_page_pages_sorts_filters_and_links_units(viewer: str, stored: Stored) -> None:
    """The run page shows failures first, in server-side pages, each unit linked to its own page."""
    run = stored.runs[0]
    response = _get(f"{viewer}/runs/{run}?limit=50")
    assert response.status_code == 200
    _assert_safe(response)
    html = response.text
    assert "Units 1\u201345 of 45 matching" in html
    table = _units_table(html)
    rows = re.findall(r'<td class="verdict-([a-z-]+)">', table)
    assert len(rows) == 45
    # Failures first: failed, then ok with a failed assertion, then passed (no unit is still going).
    ranks = {"failed": 0, "failed-assertions": 1, "passed": 2}
    assert [ranks[verdict] for verdict in rows] == sorted(ranks[verdict] for verdict in rows)
    assert set(rows) == set(ranks)
    links = [link for link in _parse(table).links if "/units/" in link]
    assert len(set(links)) >= 45
    assert _get(viewer + links[0]).status_code == 200
    # A page of 10, the next page, a filter and a sort: the server does each.
    first = _get(f"{viewer}/runs/{run}?limit=50&sort=case&offset=40").text
    assert "Units 41\u201345 of 45 matching" in first
    assert 'rel="prev"' in first
    assert 'rel="next"' not in first
    broken = _units_table(_get(f"{viewer}/runs/{run}?status=failed_assertions").text)
    verdicts = re.findall(r'<td class="verdict-([a-z-]+)">', broken)
    assert verdicts == ["failed-assertions"] * rows.count("failed-assertions")
    ok_only = _units_table(_get(f"{viewer}/runs/{run}?status=ok").text)
    assert 'class="verdict-failed"' not in ok_only
    assert 'class="verdict-passed"' in ok_only
    one_case = _get(f"{viewer}/runs/{run}?case=case-0001").text
    assert "of 6 matching" in one_case
    # Bad parameters fall back to defaults: never an error page.
    assert _get(f"{viewer}/runs/{run}?limit=x&offset=-4&sort=%3Cscript%3E").status_code == 200


def test_run_page_links_diff_trend_cost(viewer: str, stored: Stored) -> None:
    """The run page offers the other runs of its job to diff against; diff, trend and cost pages render."""
    a, b, _rated = stored.runs
    html = _get(f"{viewer}/runs/{b}").text
    assert f'<option value="{a}">' in html
    assert f'action="/runs/{b}/diff"' in html
    for path in (f"/runs/{b}/diff?against={a}", f"/runs/{b}/trend", f"/runs/{b}/cost"):
        response = _get(viewer + path)
        assert response.status_code == 200, path
        _assert_safe(response)
        assert "<style>" not in response.text  # the viewer's frame, not the report's inline one
        assert 'href="/static/report.css"' in response.text
    assert '<h2 id="flips">' in _get(f"{viewer}/runs/{b}/diff?against={a}").text
    assert '<h2 id="table">' in _get(f"{viewer}/runs/{b}/trend").text
    assert _get(f"{viewer}/runs/{b}/diff").status_code == 404  # no run picked


def test_diff_and_trend_of_runs_too_big_for_the_viewer_name_the_command(
    viewer: str, stored: Stored, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the viewer's bounds (lowered here: the server runs in this process), the diff and trend
    pages say which command writes the report instead of loading the runs."""
    a, b, _rated = stored.runs
    monkeypatch.setattr(app, "DIFF_UNITS_MAX", 5)
    monkeypatch.setattr(app, "TREND_UNITS_MAX", 5)
    diff = _get(f"{viewer}/runs/{b}/diff?against={a}")
    trend = _get(f"{viewer}/runs/{b}/trend")
    assert (diff.status_code, trend.status_code) == (200, 200)
    assert f"write this report with: runner diff {a} {b}" in diff.text
    assert "write this report with: runner trend " in trend.text
    assert '<h2 id="flips">' not in diff.text


def test_unit_page_with_a_slash_and_markup_in_its_case_id(viewer: str, stored: Stored) -> None:
    """A case id holding "/" and "<script>" has a working, escaped unit page and links to other runs."""
    run = stored.runs[2]
    key = f"mini/{SLASHED_CASE}/0"
    response = _get(f"{viewer}/runs/{run}/units/{quote(key, safe='/')}")
    assert response.status_code == 200
    _assert_safe(response)
    assert str(escape(SLASHED_CASE)) in response.text
    assert SLASHED_CASE not in response.text
    assert "Raw stream, read by read" in response.text
    other = _get(f"{viewer}/runs/{stored.runs[0]}/units/mini/case-0000/0")
    assert other.status_code == 200
    assert f"/runs/{stored.runs[1]}/units/mini/case-0000/0" in other.text  # the same unit, elsewhere


def test_unknown_run_and_unit_are_404_with_a_hint(viewer: str, stored: Stored) -> None:
    """An unknown run or unit answers 404 with the closest names, under the same headers."""
    missing = _get(f"{viewer}/runs/{stored.runs[0]}x")
    assert missing.status_code == 404
    _assert_safe(missing)
    assert "closest" in missing.text
    unit = _get(f"{viewer}/runs/{stored.runs[0]}/units/mini/nope/0")
    assert unit.status_code == 404
    assert "closest" in unit.text
    assert _get(f"{viewer}/nowhere").status_code == 404
    assert _get(f"{viewer}/static/../../pyproject.toml").status_code == 404
    assert _get(f"{viewer}/static/secret.txt").status_code == 404


def test_static_files_and_writes_refused(viewer: str) -> None:
    """The script and styles come from /static with their types; POST is refused (read-only)."""
    script = _get(viewer + "/static/view.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    _assert_safe(script)
    assert _get(viewer + "/static/view.css").headers["content-type"].startswith("text/css")
    with httpx.Client() as client:
        assert client.post(viewer + "/", content=b"x").status_code == 405


def test_hostile_output_is_text_on_every_page(viewer: str, stored: Stored) -> None:
    """Every hostile payload reaches the run and unit pages escaped; no page has script but our own."""
    run = stored.runs[0]
    html = _get(f"{viewer}/runs/{run}?limit=500").text
    for payload in HOSTILE:
        assert str(escape(payload)) in html
    page = _parse(html)
    assert page.tags.count("script") == 1
    assert not [a for a in page.attributes if a.startswith("on")]
    assert not [link for link in page.links if link.startswith(("javascript:", "http:", "https:", "//"))]
    assert "<script>document.title" not in html


def test_browsing_leaves_the_sqlite_file_unchanged(tmp_path: Path) -> None:
    """The database file's bytes and mtime are the same after a tour of the viewer's pages."""
    from tests.view.conftest import store_runs

    url = f"sqlite:///{tmp_path / 'runner.db'}"
    stored = store_runs(url)
    path = tmp_path / "runner.db"
    before = (path.stat().st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
    with serving(url) as base:
        for run in stored.runs:
            for path_ in ("", "?status=failed", "/trend", "/cost", f"/diff?against={stored.runs[0]}"):
                assert _get(f"{base}/runs/{run}{path_}").status_code == 200
        assert _get(f"{base}/runs/{stored.runs[0]}/units/mini/case-0000/0").status_code == 200
    assert (path.stat().st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest()) == before


def test_enforced_readonly_refuses_writes(stored: Stored) -> None:
    """The viewer's connection cannot write, even if a bug tried: the database itself refuses."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    with (
        open_database_readonly(stored.url, enforced=True) as database,
        database.session() as session,
        pytest.raises(DBAPIError, match=r"read-?only"),
        session.begin(),
    ):
        session.execute(text("DELETE FROM units"))


def test_missing_database_is_a_clear_error(tmp_path: Path) -> None:
    """A SQLite path with no file is refused before anything is created."""
    with pytest.raises(StorageError, match="no database at"):
        open_database_readonly(f"sqlite:///{tmp_path / 'none.db'}", enforced=True)
    assert not (tmp_path / "none.db").exists()


def test_sql_matrix_matches_the_reports(stored: Stored) -> None:
    """The run page's matrix, counted in SQL, has the same cells as the report's, counted from units."""
    from runner.grading.rates import required_rates
    from runner.report.api import load_run
    from runner.report.matrix import pass_matrix
    from runner.view.pages import run_matrix

    with open_database_readonly(stored.url, enforced=True) as database, database.session() as session:
        for run_id in stored.runs:
            data = load_run(session, run_id)
            expected = pass_matrix(data.units, required_rates(data.run.job_spec))
            matrix, more = run_matrix(session, data.run)
            assert more == 0
            assert matrix.providers == expected.providers
            assert sorted(matrix.rows, key=lambda r: r.case_id) == sorted(
                expected.rows, key=lambda r: r.case_id
            )
            assert (matrix.rated, matrix.below) == (expected.rated, expected.below)


def test_a_running_run_reloads_itself_and_a_finished_one_does_not(tmp_path: Path) -> None:
    """A run still in progress has a meta refresh on its page (and its units'); a finished run none."""
    from runner.store import repository
    from tests.store.factories import make_job, make_units
    from tests.view.conftest import store_runs

    url = f"sqlite:///{tmp_path / 'runner.db'}"
    stored = store_runs(url)
    from runner.store.db import open_database

    with open_database(url) as db, db.session() as session:
        running = repository.create_run(session, make_job("live"), host="box", version="0.1.0")
        repository.add_units(session, running.id, make_units(3))
    with serving(url) as base:
        live = _get(f"{base}/runs/{running.id}").text
        done = _get(f"{base}/runs/{stored.runs[0]}").text
    assert '<meta http-equiv="refresh" content="5">' in live
    assert "reloads every 5 s" in live
    assert "http-equiv" not in done


def test_a_broken_database_is_503_and_a_failing_page_500_both_with_the_headers(tmp_path: Path) -> None:
    """Not a 404 when the database fails (the run exists), and never werkzeug's own page without our
    Content-Security-Policy when a page fails on data it cannot read."""
    import sqlite3

    from tests.view.conftest import store_runs

    url = f"sqlite:///{tmp_path / 'runner.db'}"
    stored = store_runs(url)
    run = stored.runs[0]
    with serving(url) as base:
        unit = f"{base}/runs/{run}/units/mini/case-0000/0"
        assert _get(unit).status_code == 200
        with sqlite3.connect(tmp_path / "runner.db") as db:  # someone else breaks the stored data
            db.execute(
                "UPDATE results SET assertions = '[{\"name\": 1' WHERE unit_id IN "
                "(SELECT id FROM units WHERE key = 'mini/case-0000/0')"
            )
        failing = _get(unit)
        with sqlite3.connect(tmp_path / "runner.db") as db:
            db.execute("DROP TABLE attempts")
        broken = _get(f"{base}/runs/{run}")
    assert failing.status_code == 500
    _assert_safe(failing)
    assert "Traceback" not in failing.text
    assert broken.status_code == 503
    _assert_safe(broken)
    assert "database error" in broken.text
