"""Fixtures of the report tests: report contexts made in Python, and one headless Chromium per session."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from runner.report.cost import build_cost_context
from runner.report.diff import build_diff_context
from runner.report.render import make_environment
from runner.report.run import build_run_context
from runner.report.trend import build_trend_context
from tests.report.browser import CHROMIUM, Browser
from tests.report.factories import attempt_costs, make_run

# The store's database fixtures (a migrated SQLite file, a fresh PostgreSQL schema) for reports read
# from a database on both backends.
from tests.store.conftest import db_url, pg_prefix  # noqa: F401

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from jinja2 import Environment

    from runner.report.render import ReportContext

GENERATED = datetime(2025, 11, 21, 7, 0, tzinfo=UTC)


def all_contexts(*, hostile: bool) -> dict[str, ReportContext]:
    """One context of each report type, from synthetic runs (hostile model output on request)."""
    base = make_run(60, hostile=hostile)
    later = make_run(
        60,
        seed=8,
        run_id="r-fix002",
        hostile=hostile,
        slower=1.5,
        start=base.run.started_at + timedelta(days=1),
    )
    third = make_run(
        45, seed=9, run_id="r-fix003", hostile=hostile, start=base.run.started_at + timedelta(days=2)
    )
    facts = attempt_costs(base) + attempt_costs(later) + attempt_costs(third)
    return {
        "run": build_run_context(base, generated_at=GENERATED),
        "diff": build_diff_context(base, later, generated_at=GENERATED),
        "trend": build_trend_context("nightly-smoke", [third, base, later], generated_at=GENERATED),
        "cost": build_cost_context(facts, by=("provider", "day"), generated_at=GENERATED),
    }


@pytest.fixture(scope="session")
def env() -> Environment:
    return make_environment()


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """A headless Chromium shared by the browser tests (starting one takes about a second)."""
    if not CHROMIUM or not __import__("os").path.exists(CHROMIUM):
        pytest.fail("chromium is not installed: .ci/run installs it (apt-get install chromium)")
    profile = tmp_path_factory.mktemp("chromium") / "profile"
    profile.mkdir()
    browser = Browser(profile)
    yield browser
    browser.close()


@pytest.fixture
def report_dir(tmp_path: Path) -> Path:
    return tmp_path
