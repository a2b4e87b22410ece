"""The CLI says what went wrong in one line, with a documented exit code, and writes nothing it should not.

Every test runs ``python -m runner`` as a subprocess, so they are slow (left out by ``-m "not slow"``).
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from tests.cli.helpers import count_runs, one_error_line, runner

pytestmark = pytest.mark.slow

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")

JOB = """\
name = "tiny"
[[providers]]
name = "sim"
dialect = "openai-chat"
model = "sim-model"
simulator = {}
[[cases]]
id = "hello"
prompt = "Say hello."
"""

READ_COMMANDS = [
    pytest.param(["report", "latest"], id="report"),
    pytest.param(["export", "latest"], id="export"),
    pytest.param(["diff", "r-aaaaaa", "latest"], id="diff"),
    pytest.param(["trend", "tiny"], id="trend"),
    pytest.param(["cost"], id="cost"),
]


@pytest.mark.parametrize("args", READ_COMMANDS)
def test_read_commands_create_no_database(tmp_path: Path, args: list[str]) -> None:
    """Without a database a read command says where it looked, exits 2 and leaves no runner.db behind."""
    line = one_error_line(runner(*args, cwd=tmp_path))
    assert str(tmp_path / "runner.db") in line
    assert list(tmp_path.iterdir()) == []


def test_a_file_name_for_db_gets_the_url_it_meant(tmp_path: Path) -> None:
    """``--db results.db`` is not a URL: the error offers sqlite:///results.db and creates nothing."""
    line = one_error_line(runner("report", "latest", "--db", "results.db", cwd=tmp_path))
    assert "did you mean sqlite:///results.db" in line
    line = one_error_line(runner("run", "job.toml", "--db", "results.db", cwd=tmp_path))
    assert "did you mean sqlite:///results.db" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("port", ["-1", "99999", "65537"])
def test_simulate_refuses_a_port_out_of_range(tmp_path: Path, port: str) -> None:
    """A port outside 0-65535 is refused (it used to wrap around to another port and serve there)."""
    line = one_error_line(runner("simulate", "--port", port, cwd=tmp_path))
    assert "--port" in line
    assert "0<=x<=65535" in line


def test_simulate_says_the_port_is_in_use(tmp_path: Path) -> None:
    """A port another socket listens on gives one line naming it, not a trio traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = one_error_line(runner("simulate", "--port", str(port), cwd=tmp_path))
    assert f"127.0.0.1:{port}" in line
    assert "in use" in line


def test_simulate_with_workers_says_the_port_is_in_use(tmp_path: Path) -> None:
    """--workers 2 binds the port itself (SO_REUSEPORT) before serving: a taken port is still one line."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = one_error_line(runner("simulate", "--port", str(port), "--workers", "2", cwd=tmp_path))
    assert f"port {port}" in line
    assert "in use" in line


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        pytest.param(["--progress-interval", "-5"], "--progress-interval", id="negative-interval"),
        pytest.param(["--progress-interval", "0"], "--progress-interval", id="zero-interval"),
        pytest.param(["--report", "job.toml/report.html"], "is not a directory", id="report-under-a-file"),
        pytest.param(
            ["--report", "job.toml/new/r.html"], "is not a directory", id="report-deep-under-a-file"
        ),
        pytest.param(["--report", "."], "is a directory", id="report-is-a-directory"),
    ],
)
def test_bad_run_options_create_no_run(tmp_path: Path, options: list[str], expected: str) -> None:
    """Options are checked before the run is created: no junk failed run becomes ``latest``."""
    job = tmp_path / "job.toml"
    job.write_text(JOB)
    db = tmp_path / "r.db"
    line = one_error_line(runner("run", str(job), "--db", f"sqlite:///{db}", "-q", *options, cwd=tmp_path))
    assert expected in line
    assert count_runs(db) == 0


def test_export_into_a_missing_directory(tmp_path: Path) -> None:
    """``export --out`` into a folder that does not exist fails before reading, naming the folder."""
    job = tmp_path / "job.toml"
    job.write_text(JOB)
    db = f"sqlite:///{tmp_path / 'r.db'}"
    assert runner("run", str(job), "--db", db, "-q", "--report", "-", cwd=tmp_path).returncode == 0
    line = one_error_line(runner("export", "latest", "--db", db, "--out", "nowhere/x.csv", cwd=tmp_path))
    assert str(tmp_path / "nowhere") in line
    assert not (tmp_path / "nowhere").exists()


def test_runner_environment_variables_other_than_db_are_not_read(tmp_path: Path) -> None:
    """Only RUNNER_DB is read: RUNNER_<COMMAND>_<OPTION> no longer changes options behind --help's back."""
    db = f"sqlite:///{tmp_path / 'none.db'}"
    result = runner("trend", "tiny", cwd=tmp_path, env={"RUNNER_TREND_LAST": "0", "RUNNER_DB": db})
    line = one_error_line(result)
    assert "--last" not in line  # RUNNER_TREND_LAST=0 was not read (it used to be refused as --last 0)
    assert str(tmp_path / "none.db") in line  # RUNNER_DB was


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        pytest.param(
            "job.toml",
            JOB.replace('"tiny"', '"café"').encode("latin-1"),
            ":1: not UTF-8: byte 0xe9",
            id="latin1",
        ),
        pytest.param("job.json", b'{"name": "x"}', ": a .json job file is not read", id="json"),
        pytest.param(
            "job.yaml",
            b"name: a\nname: b\nproviders: []\n",
            ":2: name: duplicate key (first at line 1)",
            id="yaml-duplicate",
        ),
        pytest.param(
            "job.toml",
            (JOB + "repeats = 10000000\n").encode(),
            ":10: cases[0].repeats: the job plans",
            id="huge",
        ),
    ],
)
def test_bad_job_text_fails_in_one_line(tmp_path: Path, name: str, content: bytes, expected: str) -> None:
    """Undecodable, duplicated, misnamed or runaway job files: exit 2, file and line named, no run."""
    job = tmp_path / name
    job.write_bytes(content)
    db = tmp_path / "r.db"
    line = one_error_line(runner("run", str(job), "--db", f"sqlite:///{db}", "-q", cwd=tmp_path))
    assert f"{job}{expected}" in line
    assert count_runs(db) == 0


BUDGET_JOB = """\
name = "budget"
max_cost_usd = 0.001
[[providers]]
name = "sim"
dialect = "openai-chat"
model = "sim-model"
concurrency = 1
price = {input = 1000, output = 1000}
simulator = {}
[[cases]]
id = "c"
prompt = "Say something."
repeats = 20
"""


def test_a_budget_stop_is_not_called_an_interruption(tmp_path: Path) -> None:
    """The budget ends the run with "stopped: budget of $X reached" (exit 130), not "interrupted"."""
    job = tmp_path / "job.toml"
    job.write_text(BUDGET_JOB)
    result = runner("run", str(job), "--db", f"sqlite:///{tmp_path / 'r.db'}", "-q", cwd=tmp_path)
    assert result.returncode == 130, result.stderr
    lines = result.stderr.strip().splitlines()
    assert ": stopped: budget of $0.001 reached;" in lines[-2]
    assert "interrupted" not in result.stderr
    assert "--max-cost" in lines[-1]


def test_the_run_prints_the_url_an_absolute_report_path_and_a_next_step(tmp_path: Path) -> None:
    """No ``Database('...')`` repr, no relative path; the first run says what to do next, later ones not."""
    job = tmp_path / "job.toml"
    job.write_text(JOB)
    db = f"sqlite:///{tmp_path / 'r.db'}"
    first = runner("run", str(job), "--db", db, "-q", "--report", "out/new/report.html", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    report = tmp_path / "out" / "new" / "report.html"  # a report still makes its folders
    assert report.is_file()
    assert f" in {db}\n" in first.stderr
    assert "Database(" not in first.stderr
    assert f"report: {report}\n" in first.stderr
    assert f"next: open {report.as_uri()}; " in first.stderr
    assert "runner diff r-" in first.stderr
    assert first.stderr.strip().splitlines()[-1].startswith("run r-")  # the summary stays last
    second = runner("run", str(job), "--db", db, "-q", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "next:" not in second.stderr
    assert f"report: {tmp_path}/report-r-" in second.stderr


FAILING_JOB = JOB + '[cases.expect]\ncontains = "zzz-never-said"\n'
# One command per exit code README documents; the test below keeps the two lists equal.
EXIT_SCENARIOS = {
    0: (JOB, []),
    1: (FAILING_JOB, []),
    2: (JOB, ["--progress-interval", "-5"]),
    130: (BUDGET_JOB, []),
}
# Codes that need a fault a job file cannot cause, each tested where that fault is made.
EXIT_TESTED_ELSEWHERE = {
    3: "tests/run/test_db_faults.py (the database fails during the run)",
    4: "tests/run/test_workers.py (every --workers process killed with units left)",
}


def _documented_exit_codes() -> set[int]:
    section = README.split("### Exit codes", 1)[1].split("\n#", 1)[0]
    return {int(code) for code in re.findall(r"^\| (\d+) \|", section, flags=re.MULTILINE)}


@pytest.mark.parametrize("code", sorted(EXIT_SCENARIOS))
def test_every_documented_exit_code_happens(tmp_path: Path, code: int) -> None:
    """README's exit-code table lists exactly the codes runner uses, and each one really comes out."""
    assert _documented_exit_codes() == set(EXIT_SCENARIOS) | set(EXIT_TESTED_ELSEWHERE)
    text, options = EXIT_SCENARIOS[code]
    job = tmp_path / "job.toml"
    job.write_text(text)
    result = runner("run", str(job), "--db", f"sqlite:///{tmp_path / 'r.db'}", "-q", *options, cwd=tmp_path)
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [["report", "latest"], ["run", "job.toml"]])
def test_an_unreachable_database_is_one_line(tmp_path: Path, command: list[str]) -> None:
    """psycopg's message spans lines and SQLAlchemy appends a FAQ link: the user gets one line."""
    (tmp_path / "job.toml").write_text(JOB)
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/test"
    line = one_error_line(runner(*command, "--db", url, cwd=tmp_path))
    assert f"127.0.0.1:{port}" in line
    assert "sqlalche.me" not in line


def test_an_api_key_no_header_can_carry_is_refused_before_anything_is_stored(tmp_path: Path) -> None:
    """A key with a non-ASCII character (a pasted ellipsis) made every request fail inside httpx and
    stopped the run with a traceback: now exit 2 naming the variable, no run stored, the key never shown."""
    key = "sk-live-abc\u2026xyz"
    job = JOB.replace("simulator = {}", 'base_url = "http://127.0.0.1:9"\napi_key_env = "TINY_KEY"')
    (tmp_path / "job.toml").write_text(job, encoding="utf-8")
    result = runner("run", "job.toml", cwd=tmp_path, env={"TINY_KEY": key})
    line = one_error_line(result)
    assert "$TINY_KEY" in line
    assert "providers[0].api_key_env" in line
    assert "abc" not in result.stdout + result.stderr
    assert count_runs(tmp_path / "runner.db") == 0
