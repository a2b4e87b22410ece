"""The SQL of shared limits: one bucket row per (run, provider), one holder row per (run, provider,
process), one worker row per (run, process). Each call is one short transaction that locks only its provider's
bucket row (PostgreSQL ``FOR UPDATE``; SQLite's single writer), so processes never double-grant.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from runner.store.models import Base
from runner.store.records import Peers, Take
from runner.store.repository.sql import transaction

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from sqlalchemy.engine import Connection
    from sqlalchemy.orm import Session

BUCKETS: Final = Base.metadata.tables["limit_buckets"]
HOLDERS: Final = Base.metadata.tables["limit_holders"]
WORKERS: Final = Base.metadata.tables["limit_workers"]

# Wait suggested when every slot is taken: an attempt ends at an unknown time, so the taker polls.
SLOT_POLL_SECONDS: Final = 0.02


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderBudget:
    """One provider's configured limits (per minute; None: unlimited)."""

    provider: str
    concurrency: int
    rpm: float | None
    tpm: float | None

    def capacity(self, per_minute: float | None) -> float:
        # One second's worth (at least 1), as runner.run.limits.TokenBucket bursts.
        return 0.0 if per_minute is None else max(1.0, per_minute / 60.0)


@contextlib.contextmanager
def _bookkeeping(session: Session) -> Iterator[Connection]:
    """One write transaction of limit bookkeeping. On PostgreSQL its commit does not wait for the
    WAL flush (``synchronous_commit = off``, this transaction only): a server crash may lose the
    last few milliseconds of bucket levels, which no result depends on, and a take + give then
    costs about a round trip instead of two disk flushes (see docs/schema.md)."""
    with transaction(session, write=True) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL synchronous_commit = off"))
        yield conn


def _insert(conn: Connection) -> Any:
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert


def _bucket(conn: Connection, run_id: str, budget: ProviderBudget, now: float) -> dict[str, Any]:
    """The provider's bucket row, locked, created full on first use (by whichever process comes first)."""
    conn.execute(
        _insert(conn)(BUCKETS)
        .values(
            run_id=run_id,
            provider=budget.provider,
            rpm_tokens=budget.capacity(budget.rpm),
            tpm_tokens=budget.capacity(budget.tpm),
            refilled_at=now,
            concurrency=budget.concurrency,
            epoch=0,
            successes=0,
        )
        .on_conflict_do_nothing()
    )
    query = select(BUCKETS).where(BUCKETS.c.run_id == run_id, BUCKETS.c.provider == budget.provider)
    return dict(conn.execute(query.with_for_update()).mappings().one())


def _refilled(tokens: float, per_minute: float | None, capacity: float, elapsed: float) -> float:
    if per_minute is None:
        return tokens
    return min(capacity, tokens + max(0.0, elapsed) * per_minute / 60.0)


def _in_flight(conn: Connection, run_id: str, provider: str, now: float) -> int:
    query = select(func.coalesce(func.sum(HOLDERS.c.slots), 0)).where(
        HOLDERS.c.run_id == run_id, HOLDERS.c.provider == provider, HOLDERS.c.expires_at >= now
    )
    return int(conn.execute(query).scalar_one())


def _spent(conn: Connection, run_id: str) -> float:
    """The run's spend: what it had before its first worker started, plus what each worker spent."""
    query = select(func.min(WORKERS.c.spent_before_usd) + func.sum(WORKERS.c.spent_usd))
    return float(conn.execute(query.where(WORKERS.c.run_id == run_id)).scalar() or 0.0)


def _wait_for(need: float, tokens: float, per_minute: float | None) -> float:
    if per_minute is None or tokens >= need:
        return 0.0
    return (need - tokens) / (per_minute / 60.0)


def take_slot(
    session: Session,
    run_id: str,
    owner: str,
    budget: ProviderBudget,
    *,
    tokens: int,
    now: float,
    lease_seconds: float,
    cap_usd: float | None,
) -> Take:
    """Grant one attempt of ``budget.provider`` to ``owner`` if a slot, one RPM token and ``tokens``
    TPM tokens are there (and the run's spend is under ``cap_usd``); else say how long to wait.

    A TPM take larger than the bucket passes once the bucket is full and leaves it in debt, as the
    in-process bucket does, so big requests still go at the right long-run rate.
    """
    with _bookkeeping(session) as conn:
        # The bucket row's lock first: what is read after it (the spend, the slots in flight)
        # includes every give committed before this take may proceed.
        row = _bucket(conn, run_id, budget, now)
        if cap_usd is not None and _spent(conn, run_id) >= cap_usd:
            return Take(granted=False, budget_spent=True)
        elapsed = now - row["refilled_at"]
        rpm = _refilled(row["rpm_tokens"], budget.rpm, budget.capacity(budget.rpm), elapsed)
        tpm = _refilled(row["tpm_tokens"], budget.tpm, budget.capacity(budget.tpm), elapsed)
        if _in_flight(conn, run_id, budget.provider, now) >= row["concurrency"]:
            return Take(granted=False, wait_s=SLOT_POLL_SECONDS)
        need_tpm = min(float(tokens), budget.capacity(budget.tpm))
        wait = max(_wait_for(1.0, rpm, budget.rpm), _wait_for(need_tpm, tpm, budget.tpm))
        if wait > 0:
            return Take(granted=False, wait_s=wait)
        conn.execute(
            update(BUCKETS)
            .where(BUCKETS.c.run_id == run_id, BUCKETS.c.provider == budget.provider)
            .values(
                rpm_tokens=rpm - 1.0 if budget.rpm else rpm,
                tpm_tokens=tpm - tokens if budget.tpm else tpm,
                refilled_at=max(now, row["refilled_at"]),
            )
        )
        _hold(conn, run_id, owner, budget.provider, +1, now + lease_seconds)
        return Take(granted=True, epoch=int(row["epoch"]))


def _hold(conn: Connection, run_id: str, owner: str, provider: str, delta: int, expires: float) -> None:
    stmt = _insert(conn)(HOLDERS).values(
        run_id=run_id, provider=provider, owner=owner, slots=max(0, delta), expires_at=expires
    )
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["run_id", "provider", "owner"],
            set_={"slots": HOLDERS.c.slots + delta, "expires_at": expires},
        )
    )


def give_slot(
    session: Session,
    run_id: str,
    owner: str,
    budget: ProviderBudget,
    *,
    token_correction: float,
    outcome: tuple[bool, int] | None,
    cost: float,
    now: float,
    lease_seconds: float,
    recover_after: int,
) -> None:
    """End ``owner``'s attempt: free its slot, return (or charge) TPM tokens, and feed the adaptive
    limit ``outcome`` = (rate limited, epoch granted at), if the attempt got an answer."""
    with _bookkeeping(session) as conn:
        row = _bucket(conn, run_id, budget, now)
        values: dict[str, Any] = {}
        if budget.tpm and token_correction:
            tpm = _refilled(
                row["tpm_tokens"], budget.tpm, budget.capacity(budget.tpm), now - row["refilled_at"]
            )
            rpm = _refilled(
                row["rpm_tokens"], budget.rpm, budget.capacity(budget.rpm), now - row["refilled_at"]
            )
            values |= {
                "tpm_tokens": min(budget.capacity(budget.tpm), tpm + token_correction),
                "rpm_tokens": rpm,
                "refilled_at": max(now, row["refilled_at"]),
            }
        if outcome is not None:
            values |= _adapted(row, budget.concurrency, outcome, recover_after)
        if values:
            conn.execute(
                update(BUCKETS)
                .where(BUCKETS.c.run_id == run_id, BUCKETS.c.provider == budget.provider)
                .values(**values)
            )
        _hold(conn, run_id, owner, budget.provider, -1, now + lease_seconds)
        if cost:
            conn.execute(
                update(WORKERS)
                .where(WORKERS.c.run_id == run_id, WORKERS.c.owner == owner)
                .values(spent_usd=WORKERS.c.spent_usd + cost)
            )


def _adapted(
    row: dict[str, Any], configured: int, outcome: tuple[bool, int], recover_after: int
) -> dict[str, Any]:
    """AIMD on the shared limit, as runner.run.limits.ProviderLimiter.on_outcome does in one process."""
    rate_limited, epoch = outcome
    if rate_limited:
        if epoch != row["epoch"]:
            return {"successes": 0}  # granted before the last decrease: the same congestion event
        return {"concurrency": max(1, row["concurrency"] // 2), "epoch": row["epoch"] + 1, "successes": 0}
    successes = row["successes"] + 1
    if successes >= recover_after and row["concurrency"] < configured:
        return {"concurrency": row["concurrency"] + 1, "successes": 0}
    return {"successes": successes}


def renew_holders(session: Session, run_id: str, owner: str, *, expires: float) -> None:
    """Keep ``owner`` alive and its in-flight slots counted until ``expires`` (its heartbeat)."""
    with _bookkeeping(session) as conn:
        conn.execute(
            update(HOLDERS)
            .where(HOLDERS.c.run_id == run_id, HOLDERS.c.owner == owner)
            .values(expires_at=expires)
        )
        conn.execute(
            update(WORKERS)
            .where(WORKERS.c.run_id == run_id, WORKERS.c.owner == owner)
            .values(expires_at=expires)
        )


def check_in(
    session: Session, run_id: str, owner: str, *, spent: tuple[float, float], now: float, expires: float
) -> Peers:
    """Register (or refresh) ``owner`` as a worker of the run that keeps its limits in memory, with
    ``spent`` = (the run's spend when it started, its own since); return the other live workers."""
    with _bookkeeping(session) as conn:
        _upsert_worker(conn, run_id, owner, shared=False, expires=expires, spent=spent)
        query = select(WORKERS.c.shared, func.count()).where(
            WORKERS.c.run_id == run_id, WORKERS.c.owner != owner, WORKERS.c.expires_at >= now
        )
        rows = conn.execute(query.group_by(WORKERS.c.shared)).all()
    counts = {bool(is_shared): int(count) for is_shared, count in rows}
    return Peers(shared=counts.get(True, 0), solo=counts.get(False, 0))


def _upsert_worker(
    conn: Connection, run_id: str, owner: str, *, shared: bool, expires: float, spent: tuple[float, float]
) -> None:
    before, own = spent
    values = {"shared": shared, "expires_at": expires, "spent_before_usd": before, "spent_usd": own}
    stmt = _insert(conn)(WORKERS).values(run_id=run_id, owner=owner, **values)
    conn.execute(stmt.on_conflict_do_update(index_elements=["run_id", "owner"], set_=values))


def go_shared(
    session: Session,
    run_id: str,
    owner: str,
    budgets: Mapping[str, ProviderBudget],
    *,
    local: Mapping[str, tuple[int, int, float | None, float | None]],
    spent: tuple[float, float],
    now: float,
    expires: float,
) -> None:
    """``owner`` moves its limits from memory to the run's rows: ``local`` = {provider: (attempts in
    flight, its adaptive concurrency, its RPM and TPM bucket levels)}; ``spent`` = (the run's spend
    when it started, its own since). The run keeps the lower of each (a bucket this process drained
    stays drained: no second burst when the run goes shared)."""
    with _bookkeeping(session) as conn:
        _upsert_worker(conn, run_id, owner, shared=True, expires=expires, spent=spent)
        for provider, (slots, concurrency, rpm, tpm) in local.items():
            budget = budgets[provider]
            row = _bucket(conn, run_id, budget, now)
            elapsed = now - row["refilled_at"]
            levels = (
                _refilled(row["rpm_tokens"], budget.rpm, budget.capacity(budget.rpm), elapsed),
                _refilled(row["tpm_tokens"], budget.tpm, budget.capacity(budget.tpm), elapsed),
            )
            conn.execute(
                update(BUCKETS)
                .where(BUCKETS.c.run_id == run_id, BUCKETS.c.provider == provider)
                .values(
                    concurrency=min(concurrency, row["concurrency"]),
                    rpm_tokens=levels[0] if rpm is None else min(rpm, levels[0]),
                    tpm_tokens=levels[1] if tpm is None else min(tpm, levels[1]),
                    refilled_at=max(now, row["refilled_at"]),
                )
            )
            if slots:
                _hold(conn, run_id, owner, provider, slots, expires)


def drop_holders(session: Session, run_id: str, owner: str, *, spent: float) -> None:
    """``owner`` stops, having spent ``spent`` USD: whatever it still counted as in flight is free at once."""
    with _bookkeeping(session) as conn:
        conn.execute(
            update(HOLDERS).where(HOLDERS.c.run_id == run_id, HOLDERS.c.owner == owner).values(slots=0)
        )
        conn.execute(
            update(WORKERS)
            .where(WORKERS.c.run_id == run_id, WORKERS.c.owner == owner)
            .values(expires_at=0.0, spent_usd=spent)
        )


def lapse_all(conn: Connection, run_id: str) -> None:
    """Every process's slots and heartbeat on ``run_id`` lapse now (what each spent stays booked).

    For ``--resume``, which runs only when no other live process works the run: slots held by
    processes that were killed would otherwise block the resumed run until their lease ran out.
    """
    conn.execute(delete(HOLDERS).where(HOLDERS.c.run_id == run_id))
    conn.execute(update(WORKERS).where(WORKERS.c.run_id == run_id).values(expires_at=0.0, shared=False))
