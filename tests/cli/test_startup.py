"""The CLI starts fast: ``--help`` of every command imports no engine library, and ``--version`` works."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from typing import get_args

import click

import runner
from runner.cli import cli
from runner.cli.run import CAPTURE_CHOICES
from runner.store.records import RawCapturePolicy

HEAVY = ("sqlalchemy", "alembic", "httpx", "trio", "jinja2")

# Runs every command's --help in one fresh interpreter, then prints the heavy modules it loaded.
_PROBE = """
import sys
from runner.cli import cli
names = [[]] + [[name] for name in cli.commands] + [["db", "upgrade"]]
for args in names:
    try:
        cli.main([*args, "--help"], standalone_mode=False)
    except SystemExit:
        pass
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[1:]))
print("HEAVY:" + ",".join(heavy))
"""


def test_help_imports_no_engine_library() -> None:
    """``runner --help`` and ``runner CMD --help`` load none of SQLAlchemy, Alembic, httpx, trio, Jinja2."""
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, *HEAVY], capture_output=True, text=True, check=True, timeout=60
    )
    assert "Usage: " in result.stdout  # the probe really printed help
    assert result.stdout.count("Usage: ") == len(cli.commands) + 2
    assert result.stdout.splitlines()[-1] == "HEAVY:", result.stdout.splitlines()[-1]


def test_probe_sees_a_heavy_import() -> None:
    """The probe's check is real: a command body that imports trio shows up in its answer."""
    probe = _PROBE.replace("heavy = ", "import trio\nheavy = ")
    result = subprocess.run(
        [sys.executable, "-c", probe, *HEAVY], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.splitlines()[-1] == "HEAVY:trio"


def test_version_prints_the_package_version() -> None:
    """``runner --version`` prints the version, which the installed package's metadata also carries."""
    result = subprocess.run(
        [sys.executable, "-m", "runner", "--version"], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == f"runner, version {runner.__version__}"
    assert importlib.metadata.version("runner") == runner.__version__  # the build read the same source


def test_capture_choices_are_the_raw_capture_policies() -> None:
    """``runner run --capture`` offers exactly the store's capture policies."""
    assert set(CAPTURE_CHOICES) == set(get_args(RawCapturePolicy))
    run = cli.commands["run"]
    option = next(p for p in run.params if p.name == "capture")
    assert isinstance(option.type, click.Choice)
    assert tuple(option.type.choices) == CAPTURE_CHOICES
