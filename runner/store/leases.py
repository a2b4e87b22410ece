"""The run's work queue as the engine sees it: a thin adapter from the engine's UnitQueue protocol to
the repository, bound to one database, run and owner. Sync: the engine calls it on worker threads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from runner.store import repository

if TYPE_CHECKING:
    from collections.abc import Sequence

    from runner.store.db import Database
    from runner.store.records import ClaimedUnit


@dataclass(frozen=True, slots=True, kw_only=True)
class RunQueue:
    """Claims, renews and releases leases of ``run_id`` for ``owner`` (host:pid:random)."""

    database: Database
    run_id: str
    owner: str
    lease_seconds: float = 60.0

    # Each method is one unit of database work through Database.call: a dropped connection or a
    # lock held too long is retried (bounded), anything else is one StorageError naming the database.

    def claim(self, provider: str, limit: int) -> list[ClaimedUnit]:
        return self.database.call(self._claim, provider, limit)

    def _claim(self, provider: str, limit: int) -> list[ClaimedUnit]:
        with self.database.session() as session:
            return repository.claim_units(
                session,
                self.run_id,
                self.owner,
                limit=limit,
                lease_seconds=self.lease_seconds,
                provider=provider,
            )

    def renew(self) -> None:
        self.database.call(self._renew)

    def _renew(self) -> None:
        with self.database.session() as session:
            repository.renew_leases(session, self.run_id, self.owner, lease_seconds=self.lease_seconds)

    def release(self) -> None:
        self.database.call(self._release)

    def _release(self) -> None:
        with self.database.session() as session:
            repository.release_units(session, self.run_id, self.owner)

    def give_back(self, unit_ids: Sequence[int]) -> None:
        self.database.call(self._give_back, unit_ids)

    def _give_back(self, unit_ids: Sequence[int]) -> None:
        with self.database.session() as session:
            repository.release_units(session, self.run_id, self.owner, unit_ids=unit_ids)

    def outstanding(self) -> int:
        return self.database.call(self._outstanding)

    def _outstanding(self) -> int:
        with self.database.session() as session:
            # 0 or 1: the engine only asks whether anything is left, and a count would read the whole run.
            return int(repository.any_outstanding(session, self.run_id, excluding_owner=self.owner))
