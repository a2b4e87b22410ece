"""``runner run JOB --dry-run`` as a user calls it (a real process): the plan is printed, nothing is sent,
no database or run is created; a template error is one ``error:`` line naming the vars file's row."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.cli.helpers import one_error_line, runner
from tests.jobfile import provider_toml, write_job

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.slow

# The "real" provider points at a port nothing listens on and names a key nobody set: a dry run must
# need neither (a run would fail on both).
JOB = (
    """\
name = "cities"

[defaults]
params = { max_tokens = 100 }

"""
    + provider_toml(
        "priced",
        base_url="http://127.0.0.1:9/v1",
        api_key_env="RUNNER_TEST_UNSET_KEY",
        price={"input": 1.0, "output": 10.0},
    )
    + provider_toml("free", dialect="anthropic-messages", simulator={})
    + """\
[[cases]]
id = "cap"
prompt = "What is the capital of {{ country }}? Answer in one word."
vars_file = "data/countries.csv"
repeats = 2
"""
)
ROWS = "id,country\nfr,France\njp,Japan\n,Kenya\n"


def _job(tmp_path: Path, rows: str = ROWS, text: str = JOB) -> None:
    write_job(tmp_path, text, files={"data/countries.csv": rows})


def test_dry_run_prints_the_plan_and_creates_nothing(tmp_path: Path) -> None:
    """Units per provider, the estimated cost and sample rendered prompts on stdout; exit 0; no files."""
    _job(tmp_path)
    result = runner("run", "job.toml", "--dry-run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "job.toml (job 'cities'): 3 cases, 12 units" in out
    # "What is the capital of France? Answer in one word." is 51 characters: 13 tokens at 4 per token.
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.split()}
    # 6 units x 13 tokens in; 6 x 100 out; (78 x $1 + 600 x $10) / 1M = $0.006078.
    assert lines["priced"][1:] == ["6", "78", "600", "$0.0061"]
    # anthropic-messages caps at max_tokens; a simulated provider has no price of its own.
    assert lines["free"][1:] == ["6", "78", "600", "no", "price"]
    assert "estimated cost: up to $0.0061 (not counted, no price: free)" in out
    assert "cap/fr: [user] What is the capital of France? Answer in one word." in out
    assert "cap/3: [user] What is the capital of Kenya? Answer in one word." in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "job.toml"]  # no runner.db, no report


def test_dry_run_refuses_a_stored_run(tmp_path: Path) -> None:
    """--dry-run plans a job file: with --resume it is a usage error (exit 2), and creates nothing."""
    line = one_error_line(runner("run", "--resume", "latest", "--dry-run", cwd=tmp_path))
    assert "--dry-run" in line
    assert list(tmp_path.iterdir()) == []


def test_a_missing_column_fails_before_anything_with_the_row_line(tmp_path: Path) -> None:
    """A row without the column a template names: one error line at the vars file's row, exit 2."""
    _job(tmp_path, rows="id,kountry\nfr,France\n")
    line = one_error_line(runner("run", "job.toml", "--dry-run", cwd=tmp_path))
    # Paths as the user gave them: the vars file relative to the job file, the job file as named.
    assert line.startswith("error: data/countries.csv:2: row 1: template cases[0].prompt (job.toml:22)")
    assert "'country' is undefined (the row has: id, kountry)" in line
    assert "fix: add a 'country' column (or field) to data/countries.csv" in line
    # Without --dry-run the same error comes before a database or run exists.
    one_error_line(runner("run", "job.toml", cwd=tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "job.toml"]


def test_dry_run_shows_a_plan_too_large_to_run_without_yes(tmp_path: Path) -> None:
    """A dry run stores nothing, so it shows a plan over the --yes limit and says the run needs --yes."""
    _job(tmp_path, text=JOB.replace("repeats = 2", "repeats = 20000"))
    result = runner("run", "job.toml", "--dry-run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "3 cases, 120000 units" in result.stdout
    assert "note: more than 100,000 units: runner run needs --yes to plan them" in result.stdout
    assert "--yes" not in runner("run", "job.toml", "--dry-run", "--yes", cwd=tmp_path).stdout
