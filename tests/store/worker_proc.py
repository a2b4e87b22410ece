"""A separate OS process that works a run's queue: ``python -m tests.store.worker_proc URL RUN OWNER MODE``.

``drain``: claim and finish units until none is claimable, then print how many it finished.
``stall``: claim 4 units, finish 2, print ``ready`` and hang (to be killed with SIGKILL).
"""

from __future__ import annotations

import sys
import time

from runner.store import repository
from runner.store.db import open_database
from runner.store.records import UnitFinish

from .factories import ok_attempt


def main(url: str, run_id: str, owner: str, mode: str) -> None:
    """Work the queue of ``run_id`` as ``owner`` in ``mode``."""
    with open_database(url) as database, database.session() as session:
        done = 0
        while True:
            claimed = repository.claim_units(
                session, run_id, owner, limit=4 if mode == "stall" else 2, lease_seconds=60
            )
            if not claimed:
                break
            for unit in claimed[:2] if mode == "stall" else claimed:
                item = UnitFinish(
                    unit_id=unit.id, owner=owner, status="ok", attempt=ok_attempt(unit.key, unit.attempts + 1)
                )
                done += len(repository.write_batch(session, [item]).finished)
            if mode == "stall":
                print("ready", flush=True)
                time.sleep(600)
        print(done, flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:5])
