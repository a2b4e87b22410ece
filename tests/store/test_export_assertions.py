"""Assertion outcomes in the exports: a list per unit in JSON Lines, counts and failed names in CSV."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

from click.testing import CliRunner

from runner.cli import cli
from runner.grading.assertions import AssertionOutcome
from runner.report.export import write_export
from runner.store import repository

from .factories import FAKE_KEY, HELD, finished_run

if TYPE_CHECKING:
    from pathlib import Path

    from sqlalchemy.orm import Session

    from runner.store.db import Database

SCORED = AssertionOutcome(name="python", passed=False, score=0.25, detail="too vague")
UNJUDGED = AssertionOutcome(name="python", passed=False, error=True, detail="KeyError: 'city'")


def graded_run(session: Session) -> str:
    """A run with a passing unit, one with a failed and an unjudged assertion, and a failed unit."""
    run_id, _ = finished_run(session, [("ok", (HELD,)), ("ok", (HELD, SCORED, UNJUDGED)), ("failed", None)])
    return run_id


def test_jsonl_gives_each_unit_its_assertions(session: Session) -> None:
    """name, passed, score and reason per outcome, error only when it could not be judged."""
    run_id = graded_run(session)
    out = io.StringIO()
    write_export(repository.iter_units(session, run_id), out)
    passing, failing, cut = (json.loads(line) for line in out.getvalue().splitlines())
    assert passing["assertions"] == [
        {"name": "contains", "passed": True, "score": None, "reason": "all found"}
    ]
    assert failing["assertions"] == [
        {"name": "contains", "passed": True, "score": None, "reason": "all found"},
        {"name": "python", "passed": False, "score": 0.25, "reason": "too vague"},
        {"name": "python", "passed": False, "score": None, "reason": "KeyError: 'city'", "error": True},
    ]
    assert cut["assertions"] == []  # no result: not graded


def test_csv_counts_passed_and_failed_and_names_the_failed(session: Session) -> None:
    """CSV has the passed and failed counts (errors among the failed) and the failed names."""
    run_id = graded_run(session)
    out = io.StringIO()
    write_export(repository.iter_units(session, run_id), out, "csv")
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    got = [(r["assertions_passed"], r["assertions_failed"], r["failed_assertions"]) for r in rows]
    assert got == [("1", "0", ""), ("1", "2", "python;python"), ("0", "0", "")]


def test_cli_export_junit(db: Database, session: Session, tmp_path: Path) -> None:
    """``runner export RUN --format junit --out FILE`` writes XML that parses back, one case per unit."""
    run_id = graded_run(session)
    out = tmp_path / "junit.xml"
    result = CliRunner().invoke(
        cli, ["export", run_id, "--db", db.url, "--format", "junit", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    root = ET.parse(out).getroot()
    assert root.get("name") == f"nightly ({run_id})"
    (suite,) = root.findall("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "0", "2")
    assert [c.get("name") for c in suite.iter("testcase")] == ["case-0#0", "case-1#0", "case-2#0"]
    assert FAKE_KEY not in out.read_text()
    printed = CliRunner().invoke(cli, ["export", run_id, "--db", db.url, "--format", "junit"])
    assert printed.exit_code == 0, printed.output
    assert printed.output == out.read_text()
