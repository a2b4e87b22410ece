"""``runner view`` as a user runs it: a real process that prints its URL, serves, and stops cleanly on
Ctrl-C (SIGINT) or SIGTERM with exit 0; bad input is one ``error:`` line."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.view.conftest import store_runs

if TYPE_CHECKING:
    from pathlib import Path


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "runner", "view", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize(
    "signum", [pytest.param(signal.SIGINT, id="ctrl-c"), pytest.param(signal.SIGTERM, id="term")]
)
def test_serves_then_stops_cleanly(tmp_path: Path, signum: signal.Signals) -> None:
    """The first line names the database and the loopback URL; a signal stops it with exit 0."""
    url = f"sqlite:///{tmp_path / 'runner.db'}"
    stored = store_runs(url)
    process = _start("--db", url, "--port", "0")
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.fullmatch(
            r"runner view: serving (\S+) read-only at (http://127\.0\.0\.1:\d+/) \(Ctrl-C stops\)\n", line
        )
        assert match, line
        assert match.group(1) == url
        page = httpx.get(match.group(2) + f"runs/{stored.runs[0]}", timeout=30)
        assert page.status_code == 200
        process.send_signal(signum)
        out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert out == "runner view: stopped\n"
    assert "Traceback" not in err


def test_missing_database_is_one_error_line(tmp_path: Path) -> None:
    """A database that does not exist: one error line naming it, exit 2, and no file created."""
    process = _start("--db", f"sqlite:///{tmp_path / 'none.db'}", "--port", "0")
    out, err = process.communicate(timeout=30)
    assert process.returncode == 2
    assert out == ""
    assert err.startswith("error: no database at ")
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "none.db").exists()


def test_port_in_use_is_one_error_line(tmp_path: Path) -> None:
    """A port another process holds: one error line that says to choose another, exit 2."""
    url = f"sqlite:///{tmp_path / 'runner.db'}"
    store_runs(url)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        process = _start("--db", url, "--port", str(taken.getsockname()[1]))
        _out, err = process.communicate(timeout=30)
    assert process.returncode == 2
    assert err.startswith("error: cannot listen on 127.0.0.1:")
    assert "--port" in err
    assert len(err.splitlines()) == 1
