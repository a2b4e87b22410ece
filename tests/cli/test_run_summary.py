"""The end of `runner run`: the failure breakdown lines, the `--json` object, the `--retry` choices."""

from __future__ import annotations

import click

from runner.cli import cli
from runner.cli.subset import RETRY_CHOICES
from runner.cli.summary import breakdown_lines, summary_json
from runner.run import service
from runner.run.summary import RunSummary
from runner.spec import Subset
from runner.store.repository import ProviderFailures

FAILURES = (
    ProviderFailures(
        provider="flaky",
        failed=4,
        error_kinds={"server_error": 3, "timeout": 1},
        failed_units=("flaky/a/1", "flaky/b/1", "flaky/c/1"),
    ),
    ProviderFailures(
        provider="steady",
        failed_assertions=1,
        assertions={"contains": 1},
        assertion_units=("steady/d/1",),
    ),
)


def test_retry_choices_are_the_services() -> None:
    """``runner run --retry`` offers exactly what the service re-sends (spelled out for a fast --help)."""
    assert RETRY_CHOICES == service.RETRY_CHOICES
    option = next(p for p in cli.commands["run"].params if p.name == "retry")
    assert isinstance(option.type, click.Choice)
    assert tuple(option.type.choices) == RETRY_CHOICES


def test_breakdown_lines_per_provider_and_verdict() -> None:
    """One line per provider and verdict, counts by kind, and the first keys (elided past them)."""
    assert breakdown_lines(FAILURES) == [
        "failures:",
        "  flaky: failed (no result) 4: server_error 3, timeout 1; e.g. flaky/a/1, flaky/b/1, flaky/c/1, ...",
        "  steady: failed assertions 1: contains 1; e.g. steady/d/1",
    ]
    assert breakdown_lines(()) == []


def test_summary_json_keys() -> None:
    """The --json object carries the verdict counts, the exit code, the subset and the failures."""
    summary = RunSummary(
        run_id="r-abc234",
        status="finished",
        counts={"ok": 3, "failed": 4},
        spent_usd=0.5,
        assertions_failed=1,
    )
    data = summary_json(
        summary,
        job_name="j",
        report=None,
        failures=FAILURES,
        subset=Subset(providers=("flaky", "steady"), limit=10),
        budget_reached=False,
    )
    assert data["units"] == {
        "total": 7,
        "passed": 2,
        "failed_assertions": 1,
        "failed": 4,
        "not_done": 0,
        "reused": 0,
        "sent": 0,
    }
    assert (data["exit_code"], data["report"], data["loop_lag"]) == (1, None, None)
    assert data["subset"] == {"providers": ["flaky", "steady"], "cases": None, "limit": 10}
    assert data["failures"][0]["error_kinds"] == {"server_error": 3, "timeout": 1}
