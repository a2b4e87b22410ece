"""Lease owners: the ``host:pid:random`` name a process claims units under, and whether one may be alive.

``--resume`` takes every unit of a run back, so it must not run while another live process works the
run; a lease whose holder is known to be gone (this host, no such process) is what ``--resume`` is for.
"""

from __future__ import annotations

import os
import secrets
import socket
from typing import TYPE_CHECKING

from runner.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping


def new_owner() -> str:
    """This process's lease owner name: ``host:pid:random`` (random: two runs of one pid differ)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def refuse_if_worked(run_id: str, leases: Mapping[str, int]) -> None:
    """``--resume`` takes every unit back; with another live process on the run, each of its units
    would be requested twice. A lease whose holder is known dead (this host, no such pid) does not
    count: that is the crash ``--resume`` is for."""
    live = {owner: count for owner, count in leases.items() if another_live_process(owner)}
    if live:
        held = ", ".join(f"{count} by {owner}" for owner, count in sorted(live.items()))
        raise ConfigError(
            f"run {run_id} is being worked by another live process (units leased: {held})",
            fix=f"use --join {run_id} to work beside it, or --resume once it has stopped",
        )


def another_live_process(owner: str) -> bool:
    """Whether the lease owner ``host:pid:random`` is another process that may still be running.

    Another host: assume so (its leases expire if it is gone). This host: only if the pid exists.
    This very process: no (a lease left by an earlier run in the same process).
    """
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return True
    if int(pid_text) == os.getpid():
        return False
    try:
        os.kill(int(pid_text), 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, under another user
    return True
