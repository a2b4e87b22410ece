"""`runner prices`: what a run would use per model or per provider of a job, offline, as text or JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import TYPE_CHECKING

from click.testing import CliRunner

from runner.cli import cli
from runner.job.catalog import catalog_name
from tests.jobfile import provider_toml, write_job

if TYPE_CHECKING:
    from pathlib import Path

OPENAI = "https://api.openai.com/v1"
JOB = (
    'name = "priced"\n'
    + provider_toml("declared", base_url=OPENAI, model="gpt-4o-mini", price={"input": 1.0, "output": 2.0})
    + provider_toml("catalogued", base_url=OPENAI, model="gpt-4o-mini")
    + provider_toml("sim", model="gpt-4o-mini", simulator={})
    + '[[cases]]\nid = "hi"\nprompt = "hi"\n'
)


def test_models_as_json() -> None:
    """A known model has the catalog's four figures and its entry; an unknown one has none and says so."""
    result = CliRunner().invoke(cli, ["prices", "gpt-4o-mini", "no-such-model-x", "--json"])
    assert result.exit_code == 0, result.output
    known, unknown = json.loads(result.output)
    assert known == {
        "model": "gpt-4o-mini",
        "source": "catalog",
        "note": f"{catalog_name()}: openai/gpt-4o-mini",
        "catalog": catalog_name(),
        "input": 0.15,
        "output": 0.6,
        "cached_input": 0.075,
        "cache_write": 0.15,
    }
    assert unknown["source"] == "none"
    assert unknown["input"] is None
    assert unknown["note"] == f"no price: {catalog_name()} does not know model 'no-such-model-x'"


def test_models_as_text() -> None:
    """Text output names the figures and the catalog entry they came from, one line per model."""
    result = CliRunner().invoke(cli, ["prices", "gpt-4o-mini", "no-such-model-x"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "gpt-4o-mini: input $0.15, output $0.6, cached input $0.075, cache write $0.15 per million tokens; "
        f"from {catalog_name()}: openai/gpt-4o-mini",
        f"no-such-model-x: no price: {catalog_name()} does not know model 'no-such-model-x'",
    ]


def test_job_providers(tmp_path: Path) -> None:
    """With --job, a declared price wins, an undeclared one is the catalog's, a simulated one has none."""
    job = write_job(tmp_path, JOB, "priced.toml")
    result = CliRunner().invoke(cli, ["prices", "--job", str(job), "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["provider"]: row for row in json.loads(result.output)}
    assert (rows["declared"]["source"], rows["declared"]["input"]) == ("job file", 1.0)
    assert (rows["catalogued"]["source"], rows["catalogued"]["input"]) == ("catalog", 0.15)
    assert (rows["sim"]["source"], rows["sim"]["input"]) == ("simulated", None)


def test_usage_errors(tmp_path: Path) -> None:
    """No model and no job, or a bad job file, is a usage error (exit 2) with one clear line."""
    result = CliRunner().invoke(cli, ["prices"])
    assert result.exit_code == 2
    assert "name at least one MODEL, or --job JOB" in result.output
    bad = write_job(tmp_path, "name = \n", "bad.toml")
    result = CliRunner().invoke(cli, ["prices", "--job", str(bad)])
    assert result.exit_code == 2
    assert "bad.toml" in result.output
    assert "Traceback" not in result.output


# Runs `runner prices` with an audit hook that refuses every network look-up and connection.
_OFFLINE = """
import sys
def refuse(event, args):
    if event in ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname"):
        raise RuntimeError(f"network used: {event} {args!r}")
sys.addaudithook(refuse)
from runner.cli import cli
cli(["prices", "gpt-4o-mini", "claude-sonnet-4-5"])
"""


def test_prices_work_offline() -> None:
    """The catalog is read from the installed package: no name look-up, no connection."""
    result = subprocess.run(
        [sys.executable, "-c", _OFFLINE], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "network used" not in result.stderr
    assert "anthropic/claude-sonnet-4-5" in result.stdout
