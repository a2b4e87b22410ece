"""Reports from a real migrated SQLite database filled through the store's API, and the CLI commands."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from click.testing import CliRunner

from runner.cli import cli
from runner.report.api import (
    build_cost_report,
    build_diff_report,
    build_run_report,
    build_trend_report,
    load_run,
)
from runner.report.diff import build_diff_context
from runner.report.render import make_environment, render
from runner.report.stats import group_stats
from runner.report.trend import build_trend_context
from runner.store.db import open_database
from tests.report.dbfixture import store_run
from tests.report.factories import make_run

if TYPE_CHECKING:
    from pathlib import Path

    from runner.report.common import RunData
    from runner.report.render import ReportContext


@pytest.fixture
def database(tmp_path: Path) -> tuple[str, list[str], list[RunData]]:
    """A migrated SQLite file with three runs of one job (the later ones slower), hostile output included."""
    url = f"sqlite:///{tmp_path / 'reports.db'}"
    runs = [
        make_run(45, seed=7, run_id="a", hostile=True),
        make_run(
            45,
            seed=8,
            run_id="b",
            hostile=True,
            slower=1.6,
            start=make_run(1).run.started_at + timedelta(days=1),
        ),
        make_run(30, seed=9, run_id="c", start=make_run(1).run.started_at + timedelta(days=2)),
    ]
    with open_database(url) as db, db.session() as session:
        ids = [store_run(session, data) for data in runs]
    return url, ids, runs


def test_loaded_run_matches_what_was_stored(database: tuple[str, list[str], list[RunData]]) -> None:
    """A run read back through the store has the same units and the same figures as the one written."""
    url, ids, runs = database
    with open_database(url) as db, db.session() as session:
        loaded = load_run(session, ids[0])
    assert loaded.run.job_name == runs[0].run.job_name
    assert sorted(u.key for u in loaded.units) == sorted(u.key for u in runs[0].units)
    assert group_stats(loaded.units) == group_stats(runs[0].units)
    by_key = {u.key: u for u in loaded.units}
    for unit in runs[0].units:
        assert by_key[unit.key].assertions == unit.assertions
        assert by_key[unit.key].completion.choices[0].text == unit.completion.choices[0].text  # type: ignore[union-attr]


def test_every_template_renders_from_the_database(database: tuple[str, list[str], list[RunData]]) -> None:
    """Each report type renders with StrictUndefined from contexts built on the fixture database."""
    url, ids, _ = database
    env = make_environment()
    with open_database(url) as db, db.session() as session:
        contexts: list[ReportContext] = [
            build_run_report(session, "latest"),
            build_diff_report(session, ids[0], ids[1]),
            build_trend_report(session, "nightly-smoke", last=5),
            build_cost_report(session, by=("provider", "day", "tag")),
        ]
    for context in contexts:
        html = render(env, context)
        assert "<script" not in html
        assert context.title.split(":")[0] in html


def test_diff_from_the_database_equals_the_diff_of_the_runs_held_whole(
    database: tuple[str, list[str], list[RunData]],
) -> None:
    """The diff reads its runs lean with digests of the answers and reads in full only the units it shows:
    the same figures, flips (their errors included), changed answers and verdict as from the whole runs."""
    url, ids, _ = database
    with open_database(url) as db, db.session() as session:
        pairs = [(ids[0], ids[1]), (ids[1], ids[2]), (ids[0], ids[0])]
        lean = [build_diff_report(session, a, b) for a, b in pairs]
        whole = [
            build_diff_context(load_run(session, a), load_run(session, b), generated_at=made.generated_at)
            for (a, b), made in zip(pairs, lean, strict=True)
        ]
    assert lean == whole
    assert [d.answers_changed > 0 for d in lean] == [True, True, False]  # none against itself
    assert any(f.name == "status" and f.detail for f in lean[0].flips)  # B's error, read in full


def test_trend_from_the_database_equals_the_trend_of_the_runs_held_whole(
    database: tuple[str, list[str], list[RunData]],
) -> None:
    """The trend tallies each run as it streams (lean units, never the whole run): its headers, charts
    and per-provider figures are those of the runs read whole."""
    url, ids, _ = database
    with open_database(url) as db, db.session() as session:
        streamed = build_trend_report(session, "nightly-smoke", last=5)
        whole = build_trend_context(
            "nightly-smoke", [load_run(session, i) for i in ids], generated_at=streamed.generated_at
        )
    assert [r.id for r in streamed.runs] == ids  # oldest first
    assert len(streamed.rows) > len(ids)  # several providers a run
    assert streamed == whole


def test_run_report_reads_latest(database: tuple[str, list[str], list[RunData]]) -> None:
    """`latest` is the most recently started run."""
    url, ids, _ = database
    with open_database(url) as db, db.session() as session:
        assert build_run_report(session, "latest").run.id == ids[2]


def test_cli_report_diff_trend_cost(database: tuple[str, list[str], list[RunData]], tmp_path: Path) -> None:
    """The four commands write their files; diff exits 1 on a slower run and 0 when compared to itself."""
    url, ids, _ = database
    runner = CliRunner()
    out = tmp_path / "out"
    result = runner.invoke(cli, ["report", ids[0], "--db", url, "--out", str(out / "run.html")])
    assert result.exit_code == 0, result.output
    assert (out / "run.html").stat().st_size > 10_000
    # 15 units a provider, 1.6 times slower: significant at alpha 0.05 (Holm), not at the default 0.01.
    diff = ["diff", ids[0], ids[1], "--db", url, "--out", str(out / "diff.html")]
    result = runner.invoke(cli, [*diff, "--alpha", "0.05"])
    assert result.exit_code == 1, result.output
    assert "regressions" in result.output
    result = runner.invoke(cli, ["diff", ids[0], ids[0], "--db", url, "--out", str(out / "same.html")])
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        cli, ["trend", "nightly-smoke", "--last", "3", "--db", url, "--out", str(out / "t.html")]
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        cli, ["cost", "--db", url, "--by", "provider,day", "--html", str(out / "cost.html")]
    )
    assert result.exit_code == 0, result.output
    assert "total" in result.output
    assert (out / "cost.html").is_file()


def test_cli_errors_are_clear(database: tuple[str, list[str], list[RunData]]) -> None:
    """An unknown run, an unknown job and a bad --by are usage errors with a message, not tracebacks."""
    url, _, _ = database
    runner = CliRunner()
    result = runner.invoke(cli, ["report", "r-nope", "--db", url])
    assert result.exit_code == 2
    assert "no run 'r-nope'" in result.output
    result = runner.invoke(cli, ["trend", "nope", "--db", url])
    assert result.exit_code == 2
    assert "no runs of job 'nope'" in result.output
    result = runner.invoke(cli, ["cost", "--db", url, "--by", "colour"])
    assert result.exit_code == 2
    assert "cannot group by colour" in result.output


def test_cost_window_and_tags(database: tuple[str, list[str], list[RunData]]) -> None:
    """--since/--until select attempts by start time, and a run counts under each of its tags."""
    url, _, runs = database
    start = runs[0].run.started_at
    with open_database(url) as db, db.session() as session:
        first_day = build_cost_report(session, since=start, until=start + timedelta(days=1))
        by_tag = build_cost_report(session, by=("tag",))
    assert first_day.total.runs == 1
    assert first_day.total.attempts == sum(len(u.attempts) for u in runs[0].units)
    assert {row.keys[0] for row in by_tag.rows} == {"nightly", "<b>tag</b>", "smoke"}
    assert replace(by_tag.total).runs == 3


def test_cli_json_outputs_parse_back(database: tuple[str, list[str], list[RunData]], tmp_path: Path) -> None:
    """`--json` of runs, show, trend and cost is one JSON document on stdout with the documented keys."""
    url, ids, runs = database
    runner = CliRunner()

    def as_json(*args: str) -> dict[str, Any]:
        result = runner.invoke(cli, [*args, "--db", url, "--json"])
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        assert isinstance(data, dict)
        return data

    listed = as_json("runs")["runs"]
    assert [r["id"] for r in listed] == ids[::-1]
    assert listed[2]["units"]["total"] == len(runs[0].units)
    shown = as_json("show", ids[0])
    assert shown["run"]["id"] == ids[0]
    assert shown["units"]["total"] == sum(p["units"]["total"] for p in shown["providers"])
    failed = sum(1 for u in runs[0].units if u.status == "failed")
    assert shown["units"]["failed"] == failed
    trend = as_json("trend", "nightly-smoke", "--last", "3", "--out", str(tmp_path / "t.html"))
    assert [r["id"] for r in trend["runs"]] == ids
    assert {row["run_id"] for row in trend["rows"]} == set(ids)
    assert trend["report"] == str((tmp_path / "t.html").resolve())
    cost = as_json("cost", "--by", "provider,day")
    assert cost["by"] == ["provider", "day"]
    assert set(cost["rows"][0]["keys"]) == {"provider", "day"}
    assert cost["total"]["cost"] == pytest.approx(sum(r["cost"] for r in cost["rows"]))
    assert cost["report"] is None
