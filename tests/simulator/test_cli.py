"""`runner simulate` as a user runs it: prints its base URLs, and Ctrl-C stops it cleanly."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

# Slow (left out by `-m "not slow"`; CI runs them): `runner simulate` as a subprocess, signalled.
pytestmark = pytest.mark.slow


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_simulate_prints_urls_and_stops_on_signal(signum: signal.Signals) -> None:
    """The command announces every dialect's base URL, and a signal ends it with no traceback."""
    process = subprocess.Popen(
        [sys.executable, "-m", "runner", "simulate", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(4)]
        assert lines[0].startswith("openai-chat: http://127.0.0.1:")
        assert lines[1].startswith("anthropic-messages: http://127.0.0.1:")
        assert lines[3].strip() == "serving until Ctrl-C"
        process.send_signal(signum)
        out, err = process.communicate(timeout=10)
    finally:
        process.kill()
        process.wait(timeout=10)
    assert process.returncode == 0
    assert "simulator stopped" in out
    assert "Traceback" not in err
