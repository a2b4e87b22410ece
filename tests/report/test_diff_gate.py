"""`runner diff` as a gate: unmatched runs, missing units, significance, and unknown run ids (issue 11).

The runs are real: jobs served by the built-in simulator, stored in a migrated SQLite file by
`runner run`, then compared by `runner diff`, all through the command line.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner

from runner.cli import cli
from runner.report.api import build_diff_report
from runner.report.diff import Thresholds, build_diff_context, summary_lines
from runner.store.db import open_database
from tests.report.dbfixture import store_run
from tests.report.factories import make_run

if TYPE_CHECKING:
    from pathlib import Path

    from click.testing import Result


def _job(name: str, provider: str, cases: range, ttft: float) -> str:
    """A job of one simulated provider with a fixed time to first token and one unit per case."""
    lines = [
        f'name = "{name}"',
        "[[providers]]",
        f'name = "{provider}"',
        'dialect = "openai-chat"',
        'model = "m"',
        "concurrency = 16",
        f'simulator = {{ latency = "ttft={ttft}" }}',
    ]
    for i in cases:
        lines += ["[[cases]]", f'id = "c{i}"', f'prompt = "question {i}"']
    return "\n".join(lines) + "\n"


def _run(tmp_path: Path, url: str, job: str) -> str:
    """Run ``job`` with `runner run` into ``url``; return the new run's id."""
    path = tmp_path / f"job-{len(list(tmp_path.glob('job-*')))}.toml"
    path.write_text(job, encoding="utf-8")
    result = CliRunner().invoke(cli, ["run", str(path), "--db", url, "--quiet", "--report", "-"])
    assert result.exit_code == 0, result.output
    found = re.search(r"run (r-[a-z0-9]{6})", result.output)
    assert found, result.output
    return found.group(1)


def _diff(tmp_path: Path, url: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["diff", *args, "--db", url, "--out", str(tmp_path / "diff.html")])


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'runs.db'}"


def test_unrelated_runs_are_not_a_pass(tmp_path: Path, url: str) -> None:
    """Two runs that share no unit exit 2 and say that nothing was compared, not "0 regressions"."""
    a = _run(tmp_path, url, _job("gate", "p", range(12), 0.01))
    b = _run(tmp_path, url, _job("other", "q", range(3), 0.01))
    result = _diff(tmp_path, url, a, b)
    assert result.exit_code == 2, result.output
    assert "0 units matched" in result.output
    assert "--min-matched" in result.output
    assert "not a pass" in (tmp_path / "diff.html").read_text(encoding="utf-8").lower()


def test_too_few_matched_units_are_not_a_pass(tmp_path: Path, url: str) -> None:
    """Fewer matched units than --min-matched exit 2; lowering the threshold makes the diff a gate again."""
    a = _run(tmp_path, url, _job("gate", "p", range(4), 0.01))
    b = _run(tmp_path, url, _job("gate", "p", range(4), 0.01))
    result = _diff(tmp_path, url, a, b)
    assert result.exit_code == 2, result.output
    assert "4 units matched" in result.output
    assert _diff(tmp_path, url, a, b, "--min-matched", "4").exit_code == 0


def test_units_missing_in_b_are_regressions(tmp_path: Path, url: str) -> None:
    """Units of run A that run B does not have count as regressions of their own kind (missing)."""
    a = _run(tmp_path, url, _job("gate", "p", range(14), 0.01))
    b = _run(tmp_path, url, _job("gate", "p", range(11), 0.01))
    result = _diff(tmp_path, url, a, b)
    assert result.exit_code == 1, result.output
    assert "3 units missing in B" in result.output
    html = (tmp_path / "diff.html").read_text(encoding="utf-8")
    assert "missing in B" in html
    # The other way round the extra units are new, not a regression.
    assert _diff(tmp_path, url, b, a).exit_code == 0


def test_real_slowdown_regresses_with_its_p_value(tmp_path: Path, url: str) -> None:
    """TTFT 0.01 s -> 0.3 s on 12 units is significant: exit 1, the p-value in the output and the report."""
    a = _run(tmp_path, url, _job("gate", "p", range(12), 0.01))
    b = _run(tmp_path, url, _job("gate", "p", range(12), 0.3))
    result = _diff(tmp_path, url, a, b)
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    header = next(line for line in lines if line.strip().startswith("provider"))
    assert header.split() == [
        "provider",
        "figure",
        "A",
        "B",
        "change",
        "test",
        "p",
        "Holm",
        "p",
        "n",
        "A/B",
        "verdict",
    ]
    line = next(line for line in lines if "TTFT p50" in line)
    assert line.rstrip().endswith("regressed")
    assert re.search(r"Mann-Whitney U\s+(\d\.\d+e-\d+|0\.0\d+)\s", line), line
    # --json: the same verdict for scripts, the exit code unchanged.
    as_json = _diff(tmp_path, url, a, b, "--json")
    assert as_json.exit_code == 1, as_json.output
    data = json.loads(as_json.stdout)
    ttft = next(f for f in data["figures"] if f["provider"] == "p" and f["figure"] == "TTFT p50")
    assert (ttft["verdict"], data["regressions"] >= 1, data["conclusive"]) == ("regressed", True, True)
    assert ttft["p_holm"] < 0.01
    html = (tmp_path / "diff.html").read_text(encoding="utf-8")
    assert "Mann-Whitney" in html
    assert "Holm" in html


def test_chance_differences_are_not_regressions(tmp_path: Path) -> None:
    """Two runs drawn from one distribution, 9 units a provider, differ by chance only: no regression."""
    url = f"sqlite:///{tmp_path / 'same.db'}"
    with open_database(url) as db, db.session() as session:
        a = store_run(session, make_run(27, seed=11, run_id="a"))
        b = store_run(session, make_run(27, seed=12, run_id="b"))
        context = build_diff_report(session, a, b)
    assert context.matched == 27
    assert context.regressions == 0, [
        (m.provider, m.metric, m.before, m.after) for m in context.metrics if m.verdict == "regressed"
    ]
    tested = [m for m in context.metrics if m.p_value is not None]
    assert tested, "no figure was tested"
    assert all(0 <= m.p_value <= 1 for m in tested if m.p_value is not None)


def test_large_slowdown_is_a_significant_regression(tmp_path: Path) -> None:
    """A run 1.6 times slower over 150 units regresses on duration with a small adjusted p-value."""
    url = f"sqlite:///{tmp_path / 'slow.db'}"
    with open_database(url) as db, db.session() as session:
        a = store_run(session, make_run(150, seed=11, run_id="a"))
        b = store_run(session, make_run(150, seed=12, run_id="b", slower=1.6))
        context = build_diff_report(session, a, b)
    regressed = [m for m in context.metrics if m.verdict == "regressed"]
    assert any(m.metric.startswith("duration") for m in regressed), context.metrics
    assert all(m.p_adjusted is not None and m.p_adjusted < 0.01 for m in regressed)


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["report", "r-nope"], id="report"),
        pytest.param(["diff", "r-nope", "latest"], id="diff-a"),
        pytest.param(["diff", "latest", "r-nope"], id="diff-b"),
        pytest.param(["export", "r-nope"], id="export"),
        pytest.param(["trend", "no-such-job"], id="trend"),
        pytest.param(["parse", "--attempt", "999999"], id="parse"),
        pytest.param(["run", "--resume", "r-nope"], id="run-resume"),
        pytest.param(["run", "--join", "r-nope"], id="run-join"),
    ],
)
def test_unknown_run_ids_are_usage_errors(tmp_path: Path, url: str, args: list[str]) -> None:
    """An unknown run (or job, or attempt) exits 2 with one line naming it, never 1 ("regressed")."""
    _run(tmp_path, url, _job("gate", "p", range(2), 0.01))
    result = CliRunner().invoke(cli, [*args, "--db", url])
    assert result.exit_code == 2, result.output
    assert result.output.count("error:") == 1
    assert "Traceback" not in result.output
    assert re.search(r"no (run|runs of job|attempt) '?(r-nope|no-such-job|999999)", result.output)


@pytest.mark.parametrize("command", [pytest.param(c, id=c) for c in ["report", "export", "diff"]])
def test_latest_in_an_empty_database_is_a_usage_error(tmp_path: Path, url: str, command: str) -> None:
    """`latest` with no runs at all exits 2 and says so."""
    with open_database(url):
        pass
    args = [command, "latest", "latest"] if command == "diff" else [command, "latest"]
    result = CliRunner().invoke(cli, [*args, "--db", url])
    assert result.exit_code == 2, result.output
    assert "no runs in this database" in result.output


def test_too_few_samples_are_shown_untested() -> None:
    """Fewer samples than --min-samples: no test, no regression, and the summary says so."""
    a, b = make_run(9, seed=11, run_id="a"), make_run(9, seed=12, run_id="b", slower=3.0)
    context = build_diff_context(a, b, thresholds=Thresholds(min_matched=1))
    assert {m.verdict for m in context.metrics} <= {"untested", "same"}
    assert context.regressions == context.tests == 0
    assert any("not tested: fewer than 5 samples" in line for line in summary_lines(context))


@pytest.mark.parametrize(
    "attempt", [pytest.param("99999999999999999999", id="over-int64"), pytest.param("0", id="zero")]
)
def test_attempt_id_out_of_range_is_a_usage_error(tmp_path: Path, url: str, attempt: str) -> None:
    """An attempt id no database can hold exits 2 with a usage message, not a traceback and exit 1."""
    _run(tmp_path, url, _job("gate", "p", range(2), 0.01))
    result = CliRunner().invoke(cli, ["parse", "--attempt", attempt, "--db", url])
    assert result.exit_code == 2, (result.output, result.exception)
    assert "--attempt" in result.output or f"no attempt {attempt}" in result.output
