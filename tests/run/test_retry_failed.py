"""`runner run --resume RUN --retry failed`, the subset options and the end-of-run breakdown / `--json`,
with `runner` as a real process on a simulator (in the test's own loop, so its per-request attempt
counts outlive each `runner` process) injecting faults by header: SQLite, and PostgreSQL with --workers.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
import trio

from runner.store.db import open_database
from tests.cli.helpers import one_error_line
from tests.jobfile import write_job
from tests.run.processes import RunnerProcess, RunState, UnitRow, run_runner
from tests.run.stores import database_url
from tests.run.test_lifecycle import summary_run_id

if TYPE_CHECKING:
    from pathlib import Path

    from tests.conftest import StartSimulator

# Slow: `runner` as subprocesses.
pytestmark = [pytest.mark.slow]


def retry_job(base_url: str) -> str:
    """Three providers on one simulator, one attempt per unit: `flaky` fails its first attempt of each
    request (a 500), `denied` every attempt (401), `steady` none; case `c` fails an assertion on steady."""
    providers = []
    for name, faults in (("steady", None), ("flaky", "1=http_500"), ("denied", "http_401@1")):
        headers = f'\nheaders = {{ "x-sim-faults" = "{faults}" }}' if faults else ""
        providers.append(
            f'[[providers]]\nname = "{name}"\ndialect = "openai-chat"\nbase_url = "{base_url}"\n'
            # The simulator counts attempts per request body: a model per provider keeps them apart.
            f'model = "{name}"{headers}'
        )
    cases = '[[cases]]\nid = "a"\nprompt = "Say a."\n\n[[cases]]\nid = "b"\nprompt = "Say b."\n\n'
    cases += (
        '[[cases]]\nid = "c"\nprompt = "Say c."\nproviders = ["steady"]\n[cases.expect]\ncontains = "zzz"\n'
    )
    return 'name = "retry"\n[defaults.retry]\nmax_attempts = 1\n\n' + "\n\n".join(providers) + "\n\n" + cases


def last_json(process: RunnerProcess) -> dict[str, Any]:
    """The one JSON object `--json` printed on stdout."""
    lines = process.stdout.strip().splitlines()
    assert len(lines) == 1, process.stdout
    data: dict[str, Any] = json.loads(lines[0])
    return data


async def run_then_retry(
    tmp_path: Path, url: str, start_simulator: StartSimulator, *retry_options: str
) -> tuple[RunnerProcess, RunnerProcess, dict[str, UnitRow], int]:
    """Run the job, then `--resume RUN --retry failed --json` (plus ``retry_options``); return both
    processes, the units as stored after the retry, and how many requests the simulator served."""
    simulator = await start_simulator()
    job = write_job(tmp_path, retry_job(simulator.base_url("openai-chat")))
    db = ["--db", url, "--quiet"]
    first = await run_runner("run", str(job), *db, "--report", str(tmp_path / "first.html"), cwd=tmp_path)
    assert first.process.returncode == 1, first.stderr
    assert len(simulator.log) == 7
    run_id = summary_run_id(first)
    again = await run_runner(
        "run", "--resume", run_id, "--retry", "failed", "--json", *db, *retry_options, cwd=tmp_path, within=60
    )
    with open_database(url) as database:
        units = await trio.to_thread.run_sync(RunState(database).units, run_id)
    return first, again, dict(units), len(simulator.log)


def assert_retried(again: RunnerProcess, units: dict[str, UnitRow], served: int) -> None:
    """Only the 4 failed units were sent again; flaky's now passed, denied's failed again; history kept."""
    assert again.process.returncode == 1, again.stderr  # denied still failed, c still misses its word
    assert served == 7 + 4
    flaky, denied, missed = units["flaky/a/1"], units["denied/a/1"], units["steady/c/1"]
    assert (flaky.status, flaky.kinds, flaky.numbers, flaky.results) == (
        "ok",
        ("server_error", None),
        (1, 2),
        1,
    )
    assert (denied.status, denied.kinds, denied.numbers) == ("failed", ("auth_error", "auth_error"), (1, 2))
    assert (missed.status, missed.numbers) == ("ok", (1,))  # failed assertions: a result, not re-sent
    data = last_json(again)
    assert data["units"] == {
        "total": 7,
        "passed": 4,
        "failed_assertions": 1,
        "failed": 2,
        "not_done": 0,
        "reused": 0,
        "sent": 7,
    }
    assert data["exit_code"] == 1
    assert data["failures"] == [
        {
            "provider": "denied",
            "failed": 2,
            "error_kinds": {"auth_error": 2},
            "failed_units": ["denied/a/1", "denied/b/1"],
            "failed_assertions": 0,
            "assertions": {},
            "assertion_units": [],
        },
        {
            "provider": "steady",
            "failed": 0,
            "error_kinds": {},
            "failed_units": [],
            "failed_assertions": 1,
            "assertions": {"contains": 1},
            "assertion_units": ["steady/c/1"],
        },
    ]


async def test_retry_failed_resends_only_failed_units_on_sqlite(
    tmp_path: Path, start_simulator: StartSimulator
) -> None:
    """--retry failed sends the failed units again as attempt 2 and leaves the others; the end of each
    run breaks its failures down per provider and names the report's absolute path."""
    url = f"sqlite:///{tmp_path / 'runner.db'}"
    first, again, units, served = await run_then_retry(tmp_path, url, start_simulator)
    assert "failures:\n" in first.stderr
    assert "  denied: failed (no result) 2: auth_error 2; e.g. denied/a/1, denied/b/1\n" in first.stderr
    assert "  flaky: failed (no result) 2: server_error 2; e.g. flaky/a/1, flaky/b/1\n" in first.stderr
    assert "  steady: failed assertions 1: contains 1; e.g. steady/c/1\n" in first.stderr
    assert f"report: {tmp_path / 'first.html'}\n" in first.stderr
    assert "sending its 4 failed units again" in again.stderr
    assert_retried(again, units, served)
    report = last_json(again)["report"]
    assert isinstance(report, str)
    assert report.startswith("/")
    assert report.endswith(".html")


@pytest.mark.postgres
async def test_retry_failed_with_workers_on_postgresql(
    tmp_path: Path, start_simulator: StartSimulator
) -> None:
    """On PostgreSQL, `--retry failed --workers 2` reopens the failed units once and the workers share
    them: each is sent exactly once more."""
    with database_url("postgresql", tmp_path) as (url, _schema):
        _, again, units, served = await run_then_retry(tmp_path, url, start_simulator, "--workers", "2")
        assert "2 worker processes" in again.stderr
        assert_retried(again, units, served)


async def test_subset_runs_and_resumes_the_same_units(
    tmp_path: Path, start_simulator: StartSimulator
) -> None:
    """--providers / --cases / --limit plan only the subset; the run stores it and --json reports it."""
    simulator = await start_simulator()
    job = write_job(tmp_path, retry_job(simulator.base_url("openai-chat")))
    db = ["--db", f"sqlite:///{tmp_path / 'runner.db'}", "--quiet"]
    run = await run_runner(
        "run",
        str(job),
        "--report",
        str(tmp_path / "subset.html"),
        "--providers",
        "steady,flaky",
        "--cases",
        "[ab]",
        "--limit",
        "3",
        "--json",
        *db,
        cwd=tmp_path,
    )
    assert run.process.returncode == 1, run.stderr  # flaky/a/1 failed its one attempt
    data = last_json(run)
    assert data["subset"] == {"providers": ["steady", "flaky"], "cases": "[ab]", "limit": 3}
    assert data["units"]["total"] == 3
    report = (tmp_path / "subset.html").read_text()
    assert "A subset of the job: providers steady,flaky; cases &#39;[ab]&#39;; limit 3" in report
    run_id = summary_run_id(run)
    with open_database(db[1]) as database:
        units = await trio.to_thread.run_sync(RunState(database).units, run_id)
    assert sorted(units) == ["flaky/a/1", "steady/a/1", "steady/b/1"]
    resumed = await run_runner(
        "run", "--resume", run_id, "--retry", "failed", "--json", "--report", "-", *db, cwd=tmp_path
    )
    assert resumed.process.returncode == 0, resumed.stderr
    assert last_json(resumed)["subset"] == data["subset"]
    assert last_json(resumed)["units"]["passed"] == 3
    assert len(simulator.log) == 4


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(
            ["--providers", "steady,nope"], "no provider 'nope' in job 'retry'; its providers:", id="provider"
        ),
        pytest.param(["--cases", "zz*"], "--cases: 'zz*' matches no case id of job 'retry'", id="glob"),
        pytest.param(["--retry", "failed"], "--retry failed needs --resume RUN", id="retry-new-run"),
        pytest.param(
            ["--retry", "all"], "Invalid value for '--retry': 'all' is not 'failed'", id="retry-value"
        ),
        pytest.param(["--limit", "0"], "Invalid value for '--limit'", id="limit"),
        pytest.param(
            ["--join", "r-abc234", "--retry", "failed"], "--retry failed needs --resume RUN", id="join"
        ),
        pytest.param(
            ["--resume", "latest", "--limit", "3"],
            "--limit: only a new run's units are chosen",
            id="resume-subset",
        ),
    ],
)
def test_bad_subset_or_retry_is_one_error_line(tmp_path: Path, args: list[str], expected: str) -> None:
    """A bad subset or --retry exits 2 with one line naming it, and creates no run or database."""
    from tests.cli.helpers import runner

    job = write_job(tmp_path, retry_job("http://127.0.0.1:9/v1"))
    result = runner("run", str(job), "--db", f"sqlite:///{tmp_path / 'r.db'}", *args, cwd=tmp_path)
    assert expected in one_error_line(result, 2)
    assert not (tmp_path / "r.db").exists()
