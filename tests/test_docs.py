"""The docs stay true: every command has an example, the README's commands and job snippets run, the
example job files run offline, and docs/schema.md's SQL runs against a real database."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import click.testing
import pytest
import yaml

from runner.cli import cli
from runner.job.load import load_job, parse_provider_option

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
SCHEMA = (REPO / "docs" / "schema.md").read_text(encoding="utf-8")
# A job's custom-check module (jobs/checks.py beside jobs/checks.toml) is no job file.
JOB_FILES = sorted(p for p in (REPO / "jobs").iterdir() if p.is_file() and p.suffix != ".py")
TIMEOUT = 60  # seconds per command; the demo job takes about two

# README command lines that are shown but not run here, each with the reason. Matched as substrings.
NOT_RUN = {
    "runner simulate": "serves until Ctrl-C",
    "runner view": "serves until Ctrl-C; tests/view/test_cli.py runs it",
    "--provider dialect=": "a real provider: needs the network and an API key",
    "runner parse --attempt": "which attempts were captured depends on the faults the demo drew; "
    "tests/cli/test_parse.py replays a stored attempt",
}
RUN_ID = re.compile(r"\br-[a-z0-9]{6}\b")


def _blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)


def _commands(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    found: list[tuple[tuple[str, ...], click.Command]] = [(path, group)]
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            found += _commands(command, (*path, name))
        else:
            found.append(((*path, name), command))
    return found


COMMANDS = _commands(cli)


# --- help texts -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "command"), [pytest.param(p, c, id=" ".join(("runner", *p))) for p, c in COMMANDS]
)
def test_every_command_has_help_with_an_example(path: tuple[str, ...], command: click.Command) -> None:
    """Each command and group explains itself and shows a ``runner ...`` example in ``--help``."""
    result = click.testing.CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert command.help, f"runner {' '.join(path)} has no help text"
    example = re.search(r"Example:?\s*\n?\s*(runner .+)", result.output)
    assert example, f"runner {' '.join(path)} --help shows no example:\n{result.output}"
    # The example names this very command (a group's example may name one of its subcommands).
    assert example.group(1).startswith(" ".join(("runner", *path)))


@pytest.mark.parametrize("path", [pytest.param(p, id=" ".join(p)) for p, _ in COMMANDS if p])
def test_readme_mentions_every_command(path: tuple[str, ...]) -> None:
    """The README's guide names every command, so none is undocumented."""
    assert f"runner {' '.join(path)}" in README


# --- README command lines, run offline in a scratch directory ---------------------------------------


@dataclass(frozen=True)
class Ran:
    line: str
    returncode: int
    output: str


def _readme_lines() -> list[str]:
    lines = []
    for block in _blocks(README, "sh"):
        for line in block.replace("\\\n", " ").splitlines():
            if line.startswith("runner "):
                lines.append(line)
    return lines


def _env(db: str) -> dict[str, str]:
    # No provider key reaches the commands, so only simulated providers can run.
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    return {**env, "RUNNER_DB": db}


def _spawn(args: list[str], cwd: Path, db: str) -> subprocess.Popen[bytes]:
    """``runner ARGS`` as a real process (``runner run`` installs signal handlers and logging)."""
    return subprocess.Popen(
        [sys.executable, "-m", "runner", *args],
        cwd=cwd,
        env=_env(db),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _runner(args: list[str], cwd: Path, db: str, stdout: Path | None = None) -> Ran:
    """Run ``runner ARGS`` in ``cwd``: ``run`` in a subprocess, the rest in-process (fast)."""
    if args[:1] == ["run"]:
        proc = _spawn(args, cwd, db)
        _, err = proc.communicate(timeout=TIMEOUT)
        return Ran(" ".join(args), proc.returncode, err.decode(errors="replace"))
    with contextlib.chdir(cwd):
        result = click.testing.CliRunner().invoke(cli, args, env={"RUNNER_DB": db})
    if stdout is not None:
        stdout.write_bytes(result.stdout_bytes)
    output = result.output + (repr(result.exception) if result.exception else "")
    return Ran(" ".join(args), result.exit_code, output)


def _scratch(directory: Path) -> Path:
    shutil.copytree(REPO / "jobs", directory / "jobs")
    shutil.copytree(REPO / "examples", directory / "examples")
    return directory


@pytest.fixture(scope="module")
def readme_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[str, Ran]]]:
    """Every runnable README command line, run in order in one scratch directory and database."""
    work = _scratch(tmp_path_factory.mktemp("readme"))
    db = f"sqlite:///{work / 'runner.db'}"
    ran: list[tuple[str, Ran]] = []
    for line in _readme_lines():
        if any(marker in line for marker in NOT_RUN):
            continue
        words = shlex.split(line, comments=True)[1:]
        stdout = None
        if ">" in words:
            at = words.index(">")
            words, stdout = words[:at], work / words[at + 1]
        if any(RUN_ID.search(w) for w in words):
            # A run id in the README stands for the run before the latest (diff: earlier vs latest).
            with sqlite3.connect(work / "runner.db") as conn:
                query = "SELECT id FROM runs ORDER BY started_at DESC LIMIT 1 OFFSET 1"
                earlier = conn.execute(query).fetchone()[0]
            words = [RUN_ID.sub(earlier, w) for w in words]
        result = _runner(words, work, db, stdout)
        ran.append((line, result))
    return work, ran


@pytest.mark.slow
def test_readme_commands_run(readme_run: tuple[Path, list[tuple[str, Ran]]]) -> None:
    """Every README command that needs no network or key succeeds (diff may report a regression)."""
    _, ran = readme_run
    assert len(ran) >= 12, [line for line, _ in ran]
    for line, result in ran:
        allowed = (0, 1) if line.startswith("runner diff") else (0,)
        assert result.returncode in allowed, f"{line}\nexit {result.returncode}\n{result.output}"


@pytest.mark.slow  # needs the README's commands run (the readme_run fixture, ~20 s)
def test_readme_commands_cover_the_guide(readme_run: tuple[Path, list[tuple[str, Ran]]]) -> None:
    """The run covers parse, run, export, report, diff, trend, cost and db, and wrote their files."""
    work, ran = readme_run
    commands = {line.split()[1] for line, _ in ran}
    assert {"parse", "run", "export", "report", "diff", "trend", "cost", "db"} <= commands
    for name in ("results.jsonl", "results.csv", "tonight.html", "cost.html", "trend-demo.html"):
        assert (work / name).stat().st_size > 0, name
    records = [json.loads(line) for line in (work / "results.jsonl").read_text().splitlines()]
    assert records
    assert {r["status"] for r in records} == {"ok"}


def test_readme_toml_snippets_are_valid_jobs(tmp_path: Path) -> None:
    """Each TOML block of the README loads as a job (a snippet gets a minimal case added)."""
    work = _scratch(tmp_path)
    blocks = _blocks(README, "toml")
    assert blocks
    for index, block in enumerate(blocks):
        text = block if "[[cases]]" in block else block + '\n[[cases]]\nid = "c"\nprompt = "hi"\n'
        path = work / "jobs" / f"readme-{index}.toml"
        path.write_text(text, encoding="utf-8")
        load_job(path)  # simulator tables and expectations are parsed at load


def test_readme_cases_file_line_is_valid(tmp_path: Path) -> None:
    """The README's cases_file example line loads as a case."""
    (line,) = [b.strip() for b in _blocks(README, "json")]
    (tmp_path / "cases.jsonl").write_text(line + "\n", encoding="utf-8")
    job = tmp_path / "job.toml"
    job.write_text(
        'cases_file = "cases.jsonl"\n[[providers]]\nname = "p"\ndialect = "runware"\n'
        'model = "m"\nsimulator = {}\n',
        encoding="utf-8",
    )
    assert [c.id for c in load_job(job).cases] == [json.loads(line)["id"]]


# --- the example job files ---------------------------------------------------------------------------


def _offline(path: Path, work: Path) -> tuple[Path, list[str]]:
    """The job file as it is when it runs offline, else a copy with every provider simulated."""
    if path.suffix == ".jsonl":
        return work / "jobs" / path.name, ["--provider", "simulator"]
    text = path.read_text(encoding="utf-8")
    doc = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    if all("simulator" in p for p in doc["providers"]):
        return work / "jobs" / path.name, []
    for provider in doc["providers"]:
        for key in ("base_url", "api_key_env", "allow_insecure"):
            provider.pop(key, None)
        provider["simulator"] = {}
    copy = work / "jobs" / f"offline-{path.stem}.yaml"
    copy.write_text(json.dumps(doc), encoding="utf-8")  # JSON is YAML
    return copy, []


@pytest.fixture(scope="module")
def job_runs(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[Path, tuple[subprocess.Popen[bytes], Path]]]:
    """Every job under jobs/ started at once on the simulator, each in its own directory and database.

    A run no test waited for (``-k`` picked some of the jobs) is stopped and reaped at the end: left
    running, its process and pipes failed a later test with ResourceWarnings when collected.
    """
    started = {}
    for path in JOB_FILES:
        work = _scratch(tmp_path_factory.mktemp(path.stem))
        job, extra = _offline(path, work)
        args = ["run", str(job), *extra, "--quiet", "--report", "-"]
        started[path] = (_spawn(args, work, f"sqlite:///{work / 'jobs.db'}"), work)
    yield started
    for proc, _ in started.values():
        if proc.poll() is None:
            proc.kill()
        proc.communicate()  # reaps it and closes its pipes


@pytest.mark.slow
@pytest.mark.parametrize("path", [pytest.param(p, id=p.name) for p in JOB_FILES])
def test_job_file_runs(path: Path, job_runs: dict[Path, tuple[subprocess.Popen[bytes], Path]]) -> None:
    """Each job under jobs/ loads, and runs to the end on the simulator with every unit ok."""
    provider = parse_provider_option("simulator") if path.suffix == ".jsonl" else None
    load_job(path, provider=provider)  # simulator tables and expectations are parsed at load
    proc, work = job_runs[path]
    _, err = proc.communicate(timeout=TIMEOUT)
    # 1 is allowed: the simulator's text cannot satisfy assertions written for real models.
    assert proc.returncode in (0, 1), err.decode(errors="replace")
    ran = _runner(["export", "latest", "--out", "out.jsonl"], work, f"sqlite:///{work / 'jobs.db'}")
    assert ran.returncode == 0, ran.output
    records = [json.loads(line) for line in (work / "out.jsonl").read_text().splitlines()]
    assert records
    assert {r["status"] for r in records} == {"ok"}, [r["error"] for r in records if r["error"]]


# --- docs/schema.md ----------------------------------------------------------------------------------


@pytest.mark.slow  # needs the README's commands run (the readme_run fixture, ~20 s)
def test_schema_queries_run(readme_run: tuple[Path, list[tuple[str, Ran]]]) -> None:
    """Every SQLite query of docs/schema.md runs against the database the README's demo wrote."""
    work, _ = readme_run
    queries = [q for q in _blocks(SCHEMA, "sql") if "json_array_elements" not in q]  # PostgreSQL only
    assert len(queries) >= 8
    with sqlite3.connect(work / "runner.db") as conn:
        for query in queries:
            conn.execute(query).fetchall()
        assert conn.execute(queries[0]).fetchall(), "no runs"


@pytest.mark.slow  # needs the README's commands run (the readme_run fixture, ~20 s)
def test_schema_documents_every_column(readme_run: tuple[Path, list[tuple[str, Ran]]]) -> None:
    """docs/schema.md names every table and column of a freshly migrated database."""
    work, _ = readme_run
    with sqlite3.connect(work / "runner.db") as conn:
        for (table,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name != 'alembic_version'"
        ):
            assert f"`{table}`" in SCHEMA, table
            for row in conn.execute(f"PRAGMA table_info({table})"):
                assert f"`{row[1]}`" in SCHEMA, f"{table}.{row[1]}"
