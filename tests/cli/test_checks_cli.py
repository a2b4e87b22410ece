"""`runner run` with custom checks and pass rates, as a user calls it: exit codes, the error line, JUnit."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

import pytest

from tests.cli.helpers import count_runs, one_error_line, runner
from tests.jobfile import write_checked_job

if TYPE_CHECKING:
    from pathlib import Path

# Slow (left out by `-m "not slow"`; CI runs them): `runner run` as a subprocess.
pytestmark = pytest.mark.slow

CHECKS = """\
CALLS = []

def four_of_five(completion, vars):
    CALLS.append(1)
    return len(CALLS) != 3

def three_of_five(completion, vars):
    CALLS.append(1)
    return len(CALLS) not in (2, 4)
"""


def _run(tmp_path: Path, check: str) -> tuple[int, str]:
    write_checked_job(tmp_path, CHECKS, check=check, rate=0.8, repeats=5)
    result = runner("run", "job.toml", "--db", "sqlite:///r.db", "--quiet", "--report", "-", cwd=tmp_path)
    return result.returncode, result.stderr


@pytest.mark.parametrize(
    ("check", "code", "below"),
    [
        pytest.param("checks:four_of_five", 0, 0, id="met"),
        pytest.param("checks:three_of_five", 1, 1, id="missed"),
    ],
)
def test_exit_code_follows_the_pass_rate(tmp_path: Path, check: str, code: int, below: int) -> None:
    """4 of 5 repeats passing meets pass_rate 0.8 (exit 0); 3 of 5 does not (exit 1)."""
    returncode, stderr = _run(tmp_path, check)
    assert returncode == code, stderr
    assert f"cases below their pass_rate {below}" in stderr
    junit = runner("export", "latest", "--db", "sqlite:///r.db", "--format", "junit", cwd=tmp_path)
    assert junit.returncode == 0, junit.stderr
    suite = ET.fromstring(junit.stdout).find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures")) == ("5", str(5 - (4 if code == 0 else 3)))


def test_a_missing_function_is_one_error_line_naming_file_and_line(tmp_path: Path) -> None:
    """A check that does not exist stops the run before anything is stored: exit 2, file:line, fix."""
    _run(tmp_path, "checks:five_of_five")
    line = one_error_line(runner("run", "job.toml", "--db", "sqlite:///r.db", cwd=tmp_path))
    assert "job.toml:17: cases[0].expect.python" in line
    assert "no function 'five_of_five'" in line
    assert "did you mean" in line
    assert count_runs(tmp_path / "r.db") == 0
