"""`runner runs` and `runner show` as a user calls them, on a run of the simulator with retries, failed
units and failed assertions: text, --json parsed back, --raw against the stored capture, error lines."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from tests.cli.helpers import one_error_line, runner

if TYPE_CHECKING:
    from pathlib import Path

# Slow (left out by `-m "not slow"`; CI runs them): `runner run` and `runner show` as subprocesses.
pytestmark = pytest.mark.slow

JOB = """\
name = "inspect"

[defaults]
repeats = 2
[defaults.retry]
max_attempts = 2
backoff_initial = 0.01
backoff_max = 0.02

[[providers]]
name = "flaky"
dialect = "openai-chat"
model = "m"
simulator = { seed = 1, faults = "1=http_503" }

[[providers]]
name = "broken"
dialect = "anthropic-messages"
model = "c"
simulator = { seed = 2, faults = "close_clean@1" }

[[cases]]
id = "strict"
prompt = "Say something."
[cases.expect]
contains = "zzz-never-said"

[[cases]]
id = "count"
prompt = "Count to {{ n }}."
vars = [{ n = 3 }, { n = 5 }]
"""
DB = "sqlite:///r.db"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder whose r.db holds two runs of JOB (the second is ``latest``), every attempt captured."""
    path = tmp_path_factory.mktemp("inspect")
    (path / "job.toml").write_text(JOB)
    for _ in range(2):
        result = runner(
            "run", "job.toml", "--db", DB, "--capture", "all", "--quiet", "--report", "-", cwd=path
        )
        assert result.returncode == 1, result.stderr  # failed units: exit 1
    return path


def _json(workdir: Path, *args: str) -> dict:  # type: ignore[type-arg]
    result = runner(*args, "--db", DB, "--json", cwd=workdir)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert isinstance(data, dict)
    return data


def test_runs_lists_newest_first_with_verdicts(workdir: Path) -> None:
    """`runner runs` prints one line per run; --json carries the same counts, newest first."""
    data = _json(workdir, "runs")
    runs = data["runs"]
    assert len(runs) == 2
    assert runs[0]["started_at"] >= runs[1]["started_at"]
    assert runs[0]["units"] == {"total": 12, "passed": 4, "failed_assertions": 2, "failed": 6, "not_done": 0}
    assert runs[0]["attempts"]["error_kinds"]["early_close"] == 12
    text = runner("runs", "--db", DB, "--last", "1", cwd=workdir)
    assert text.returncode == 0, text.stderr
    header, line = text.stdout.strip().splitlines()
    assert header.split()[:4] == ["run", "job", "status", "started"]
    assert line.startswith(runs[0]["id"] + "  inspect  finished")
    assert _json(workdir, "runs", "--job", "other")["runs"] == []


def test_show_run_prints_the_summary_and_failures(workdir: Path) -> None:
    """`runner show RUN` gives the totals, a line per provider and the failure breakdown."""
    result = runner("show", "latest", "--db", DB, cwd=workdir)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "units 12: passed 4, failed assertions 2, failed (no result) 6, not done 0" in out
    assert "  broken: failed (no result) 6: early_close 6; e.g. broken/strict/1" in out
    assert "  flaky: failed assertions 2: contains 2; e.g. flaky/strict/1, flaky/strict/2" in out
    data = _json(workdir, "show", "latest")
    assert [p["name"] for p in data["providers"]] == ["broken", "flaky"]
    assert data["providers"][1]["units"]["passed"] == 4
    assert data["providers"][0]["ttft_p50_s"] is None  # no successful attempt
    assert data["failures"][0]["error_kinds"] == {"early_close": 6}


def test_show_unit_with_a_slash_in_its_case_id(workdir: Path) -> None:
    """A templated case's id holds a `/`; the unit shows its request, both attempts and the answer."""
    # The simulator fails attempt 1 of each distinct request: one of the two repeats got the 503.
    retried = [
        data
        for repeat in (1, 2)
        if len((data := _json(workdir, "show", f"latest/flaky/count/1/{repeat}"))["attempt_details"]) == 2
    ]
    assert len(retried) == 1
    data = retried[0]
    assert (data["provider"], data["case"], data["verdict"]) == ("flaky", "count/1", "passed")
    assert [a["number"] for a in data["attempt_details"]] == [1, 2]
    assert data["attempt_details"][0]["error"]["kind"] == "server_error"
    assert data["attempt_details"][1]["timing"]["ttft_s"] > 0
    assert json.loads(data["request"]["body"])["messages"][0]["content"] == "Count to 3."
    assert data["choices"][0]["text"]
    result = runner("show", f"latest/{data['unit']}", "--db", DB, cwd=workdir)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"unit {data['unit']} of run" in out
    assert "case count/1, repeat" in out
    assert '"content": "Count to 3."' in out
    assert "HTTP 503, server_error, retryable" in out
    assert "HTTP 200, ok" in out
    assert f"answer, finish reason stop:\n  {data['choices'][0]['text']}" in out


def test_show_unit_failed_assertions(workdir: Path) -> None:
    """An ok unit whose check failed lists the outcome as FAIL."""
    result = runner("show", "latest/flaky/strict/2", "--db", DB, cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "): failed assertions" in result.stdout.splitlines()[0]
    assert "  FAIL  contains: " in result.stdout


def test_raw_replays_the_capture_read_by_read(workdir: Path) -> None:
    """--raw --json: the reads, in order and time, put back together, are the stored capture exactly."""
    data = _json(workdir, "show", "latest/broken/strict/1", "--raw")
    first, second = data["attempts"]
    assert first["captured"]
    assert second["captured"]
    reads = second["reads"]
    assert [r["offset"] for r in reads] == sorted(r["offset"] for r in reads)
    times = [r["at_s"] for r in reads]
    assert times == sorted(times)
    assert times[0] >= 0
    assert second["completion"]["complete"] is False  # close_clean: cut before the end
    unit = _json(workdir, "show", "latest/broken/strict/1")
    attempt_id = unit["attempt_details"][1]["id"]
    stored = runner("parse", "--attempt", str(attempt_id), "--raw", "--db", DB, cwd=workdir)
    assert "".join(r["text"] for r in reads) == stored.stdout
    events = [e["event"] for r in reads for e in r["events"]]
    assert events[0] == "message_start"
    text = runner("show", "latest/broken/strict/1", "--raw", "--attempt", "2", "--db", DB, cwd=workdir)
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith("attempt 2: HTTP 200, ")
    assert "  read 1 at +" in text.stdout
    assert "    | event: message_start" in text.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(("show", "r-zzzzzz"), "error: no run 'r-zzzzzz'; closest: r-", id="unknown-run"),
        pytest.param(
            ("show", "latest/flaky/strikt/1"),
            "has no unit 'flaky/strikt/1'; closest: flaky/strict/1",
            id="unknown-unit",
        ),
        pytest.param(
            ("show", "latest/flaky"), "(a unit key is provider/case/repeat); closest: flaky/", id="no-repeat"
        ),
        pytest.param(("show", "latest", "--raw"), "--raw and --attempt need a unit", id="raw-without-unit"),
        pytest.param(
            # broken's units always make both attempts (flaky's 503 lands on either repeat: a race)
            ("show", "latest/broken/strict/1", "--raw", "--attempt", "9"),
            "has no attempt 9 (its attempts: 1, 2)",
            id="unknown-attempt",
        ),
    ],
)
def test_errors_are_one_line_with_the_fix(workdir: Path, args: tuple[str, ...], expected: str) -> None:
    """A run, unit or attempt that does not exist: exit 2, one error line naming the closest ones."""
    line = one_error_line(runner(*args, "--db", DB, cwd=workdir))
    assert expected in line
