"""`runner run` as a user calls it: exit codes, error messages, and nothing written on a bad job."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.cli.helpers import runner

# Slow (left out by `-m "not slow"`; CI runs them): `runner run` as a subprocess.
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("transport")]

REPO = Path(__file__).resolve().parents[2]


def count_runs(db: Path) -> int:
    """How many runs the SQLite file holds (0 when it does not exist)."""
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        return int(conn.execute("select count(*) from runs").fetchone()[0])


JOB_NEEDING_KEY = """\
name = "needs-key"
[[providers]]
name = "real"
dialect = "openai-chat"
base_url = "https://api.example.com/v1"
model = "m"
api_key_env = "RUNNER_TEST_UNSET_KEY"
[[cases]]
id = "hi"
prompt = "hi"
"""


@pytest.mark.parametrize(
    ("job_text", "expected"),
    [
        pytest.param(JOB_NEEDING_KEY, "RUNNER_TEST_UNSET_KEY", id="missing-env-var"),
        pytest.param(JOB_NEEDING_KEY.replace("model =", "modle ="), "did you mean 'model'", id="unknown-key"),
        pytest.param(
            JOB_NEEDING_KEY.replace('prompt = "hi"', 'prompt = "hi"\nproviders = ["nope"]'),
            "nope",
            id="unknown-provider-in-case",
        ),
    ],
)
def test_bad_job_exits_2_and_writes_nothing(tmp_path: Path, job_text: str, expected: str) -> None:
    """A bad job file fails with exit 2, names the file and the problem, and creates no run."""
    job = tmp_path / "job.toml"
    job.write_text(job_text)
    db = tmp_path / "r.db"
    result = runner("run", str(job), "--db", f"sqlite:///{db}", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert str(job) in result.stderr
    assert expected in result.stderr
    assert count_runs(db) == 0


def test_demo_job_runs_offline_and_reports(tmp_path: Path) -> None:
    """The README's demo job runs on the built-in simulator, exits 0 and writes its HTML report."""
    db = tmp_path / "r.db"
    result = runner(
        "run", str(REPO / "jobs" / "demo.toml"), "--db", f"sqlite:///{db}", "--quiet", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "finished; units passed 51, units with failed assertions 0, failed (no result) 0" in result.stderr
    assert "(grading $" in result.stderr  # the judged case's grading requests, priced apart
    reports = list(tmp_path.glob("report-r-*.html"))
    assert len(reports) == 1
    assert count_runs(db) == 1


MISSING_WORD_JOB = """\
name = "missing-word"
[[providers]]
name = "sim"
dialect = "openai-chat"
model = "sim-model"
simulator = {}
[[cases]]
id = "asks"
prompt = "Say something."
[cases.expect]
contains = "zzz-never-said"
not_contains = "zzz-also-never"
"""


def test_summary_counts_units_with_failed_assertions(tmp_path: Path) -> None:
    """A unit that answered but failed an assertion exits 1; the summary says it counts units, not checks."""
    job = tmp_path / "job.toml"
    job.write_text(MISSING_WORD_JOB)
    result = runner("run", str(job), "--db", f"sqlite:///{tmp_path / 'r.db'}", "--quiet", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    summary = result.stderr.strip().splitlines()[-1]
    assert "units passed 0, units with failed assertions 1, failed (no result) 0, not done 0" in summary
    assert "assertions failed" not in result.stderr


def test_resume_and_join_exclude_each_other(tmp_path: Path) -> None:
    """Usage errors exit 2 with a message, before touching any database."""
    result = runner("run", "--resume", "latest", "--join", "r-x", cwd=tmp_path)
    assert result.returncode == 2
    assert "exclude each other" in result.stderr
    result = runner("run", cwd=tmp_path)
    assert result.returncode == 2
    assert "name a job file" in result.stderr
