"""Lease owner names and liveness: what lets --resume tell a crashed run from one still being worked."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from runner.errors import ConfigError
from runner.run.owners import another_live_process, new_owner, refuse_if_worked


def test_owner_names_this_host_and_process() -> None:
    """host:pid:random, and two names of one process differ."""
    host, pid, tag = new_owner().split(":")
    assert (host, int(pid)) == (socket.gethostname(), os.getpid())
    assert tag != new_owner().split(":")[2]


def test_liveness_of_a_real_process_and_of_a_gone_one() -> None:
    """A running process on this host is alive; once it has exited and been reaped it is not."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    owner = f"{socket.gethostname()}:{child.pid}:abc123"
    try:
        assert another_live_process(owner)
    finally:
        child.kill()
        child.wait()
    assert not another_live_process(owner)


def test_another_host_is_assumed_alive_and_this_process_is_not_another() -> None:
    """Another host cannot be asked (its leases expire instead); our own name is not another process."""
    assert another_live_process("some-other-host.example:1:abc123")
    assert not another_live_process(new_owner())


def test_resume_is_refused_only_for_live_holders() -> None:
    """The refusal names the run and --join; leases of a gone process do not count."""
    with pytest.raises(ConfigError, match="being worked by another live process") as caught:
        refuse_if_worked("r-abc123", {"other-host:7:aa": 3})
    assert "--join r-abc123" in str(caught.value)
    refuse_if_worked("r-abc123", {new_owner(): 3})
