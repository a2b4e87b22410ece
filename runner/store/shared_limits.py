"""The run's shared limits as the engine sees them: a thin adapter from runner.run.limits' SharedGate
protocol to the repository, bound to one database, run and process. Sync: called on worker threads.

Every process joined on a run uses it, so the providers' concurrency, RPM, TPM, adaptive back-off and
the run's budget cap hold for the run, not per process (design and overhead: docs/schema.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from runner.store.repository import limits as sql
from runner.store.repository.limits import ProviderBudget

if TYPE_CHECKING:
    from collections.abc import Iterable

    from runner.spec import ProviderSpec
    from runner.store.db import Database
    from runner.store.records import Peers, Take


@dataclass(frozen=True, slots=True, kw_only=True)
class SharedLimits:
    """Takes and gives ``run_id``'s per-provider capacity for ``owner``; adds to the run's spend."""

    database: Database
    run_id: str
    owner: str
    budgets: dict[str, ProviderBudget] = field(default_factory=dict)
    lease_seconds: float = 60.0
    cap_usd: float | None = None
    recover_after: int = 10
    spent_before_usd: float = 0.0  # what the run had booked when this process started

    @classmethod
    def of(
        cls,
        providers: Iterable[ProviderSpec],
        *,
        database: Database,
        run_id: str,
        owner: str,
        lease_seconds: float = 60.0,
        cap_usd: float | None = None,
        spent_before_usd: float = 0.0,
    ) -> SharedLimits:
        """The run's limits for ``providers`` (their configured concurrency, RPM and TPM)."""
        budgets = {
            p.name: ProviderBudget(provider=p.name, concurrency=p.concurrency, rpm=p.rpm, tpm=p.tpm)
            for p in providers
        }
        return cls(
            database=database,
            run_id=run_id,
            owner=owner,
            budgets=budgets,
            lease_seconds=lease_seconds,
            cap_usd=cap_usd,
            spent_before_usd=spent_before_usd,
        )

    def take(self, provider: str, tokens: int) -> Take:
        return self.database.call(self._take, provider, tokens)

    def _take(self, provider: str, tokens: int) -> Take:
        with self.database.session() as session:
            return sql.take_slot(
                session,
                self.run_id,
                self.owner,
                self.budgets[provider],
                tokens=tokens,
                now=time.time(),
                lease_seconds=self.lease_seconds,
                cap_usd=self.cap_usd,
            )

    def give(
        self, provider: str, token_correction: float, outcome: tuple[bool, int] | None, cost: float
    ) -> None:
        self.database.call(self._give, provider, token_correction, outcome, cost)

    def _give(
        self, provider: str, token_correction: float, outcome: tuple[bool, int] | None, cost: float
    ) -> None:
        with self.database.session() as session:
            sql.give_slot(
                session,
                self.run_id,
                self.owner,
                self.budgets[provider],
                token_correction=token_correction,
                outcome=outcome,
                cost=cost,
                now=time.time(),
                lease_seconds=self.lease_seconds,
                recover_after=self.recover_after,
            )

    def check_in(self, spent_here: float) -> Peers:
        return self.database.call(self._check_in, spent_here)

    def _check_in(self, spent_here: float) -> Peers:
        now = time.time()
        with self.database.session() as session:
            return sql.check_in(
                session,
                self.run_id,
                self.owner,
                spent=(self.spent_before_usd, spent_here),
                now=now,
                expires=now + self.lease_seconds,
            )

    def go_shared(
        self, local: dict[str, tuple[int, int, float | None, float | None]], spent_here: float
    ) -> None:
        self.database.call(self._go_shared, local, spent_here)

    def _go_shared(
        self, local: dict[str, tuple[int, int, float | None, float | None]], spent_here: float
    ) -> None:
        now = time.time()
        with self.database.session() as session:
            sql.go_shared(
                session,
                self.run_id,
                self.owner,
                self.budgets,
                local=local,
                spent=(self.spent_before_usd, spent_here),
                now=now,
                expires=now + self.lease_seconds,
            )

    def renew(self) -> None:
        self.database.call(self._renew)

    def _renew(self) -> None:
        with self.database.session() as session:
            sql.renew_holders(session, self.run_id, self.owner, expires=time.time() + self.lease_seconds)

    def release(self, spent_here: float) -> None:
        self.database.call(self._release, spent_here)

    def _release(self, spent_here: float) -> None:
        with self.database.session() as session:
            sql.drop_holders(session, self.run_id, self.owner, spent=spent_here)
